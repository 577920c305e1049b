// Server reflection from the descriptor set that `make proto` builds with buf
// (ts-proto emits no descriptors), plus the health proto shipped by
// grpc-health-check, so grpcurl lists and describes everything with no
// proto files at hand, including messages imported from other files.
import { readFileSync } from 'node:fs';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { projectPath } from '../paths.js';

export const DESCRIPTOR_SET_PATH = projectPath('services', 'common', 'descriptors', 'tickmesh.binpb');

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true };

export function loadPackageDefinition(descriptorSetPath = DESCRIPTOR_SET_PATH): protoLoader.PackageDefinition {
  const tickmesh = protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(descriptorSetPath), LOADER_OPTIONS);
  const health = protoLoader.loadSync(healthProtoPath, LOADER_OPTIONS);
  return { ...tickmesh, ...health };
}

/** A reflection service exposing `services` (fully-qualified names) and the health service. */
export function createReflectionService(services: string[]): ReflectionService {
  return new ReflectionService(loadPackageDefinition(), { services: [...services, 'grpc.health.v1.Health'] });
}
