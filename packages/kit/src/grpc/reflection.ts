// Server reflection from the descriptor sets that `make proto` builds with
// buf (ts-proto emits no descriptors): ours, and the health proto shipped by
// grpc-health-check. grpcurl then lists, describes and calls everything with
// no proto files at hand, including messages imported from other files.
//
// The file descriptors are handed to @grpc/reflection exactly as buf wrote
// them. Passing them through proto-loader first would re-serialize them with
// relative type names and merged files, which breaks `grpcurl describe` on
// any message that imports another file (grpc/grpc-node#3018) and mangles map
// entries (grpcurl then cannot call grpc.health.v1.Health/List).
import { readFileSync } from 'node:fs';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { kitPath } from '../paths.js';

export const DESCRIPTOR_SET_PATH = kitPath('descriptors', 'tickmesh.binpb');
export const HEALTH_DESCRIPTOR_SET_PATH = kitPath('descriptors', 'health.binpb');

/** Splits a serialized google.protobuf.FileDescriptorSet into its files' original bytes. */
export function splitFileDescriptorSet(set: Uint8Array): Uint8Array[] {
  const reader = new BinaryReader(set);
  const files: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) files.push(reader.bytes());
    else reader.skip(wireType);
  }
  return files;
}

/** A package definition whose only content is the files, in the shape @grpc/reflection reads. */
export function reflectionPackageDefinition(
  descriptorSets = [DESCRIPTOR_SET_PATH, HEALTH_DESCRIPTOR_SET_PATH],
): protoLoader.PackageDefinition {
  const files = descriptorSets.flatMap((path) => splitFileDescriptorSet(readFileSync(path)));
  return {
    'tickmesh.files': {
      format: 'Protocol Buffer 3 FileDescriptorProto',
      type: {},
      fileDescriptorProtos: files,
    },
  } as never;
}

/** A reflection service exposing `services` (fully-qualified names) and the health service. */
export function createReflectionService(services: string[]): ReflectionService {
  return new ReflectionService(reflectionPackageDefinition(), {
    services: [...services, 'grpc.health.v1.Health'],
  });
}
