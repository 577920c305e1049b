// Request decoding that never throws: bad bytes become a MalformedMessage,
// which the errors middleware answers with INVALID_ARGUMENT (grpc-js itself
// would answer INTERNAL).
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/** What a request deserializes to when its bytes are not a valid message. */
export class MalformedMessage {
  constructor(readonly reason: string) {}
}

/** Returns a copy of `definition` whose request deserializers never throw. */
export function withSafeDeserializers<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (err) {
          return new MalformedMessage(err instanceof Error ? err.message : 'cannot decode');
        }
      },
    };
  }
  return out as D;
}
