// Domain errors and their gRPC status codes. Handlers throw these; the
// server boundary (grpc/middleware/errors.ts) turns them into a status + message.
// Anything else becomes INTERNAL with a generic message: internals never leak.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

export abstract class DomainError extends Error {
  abstract readonly code: status;
}

/** A request field is malformed. The message names the field. */
export class InvalidArgumentError extends DomainError {
  readonly code = status.INVALID_ARGUMENT;
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'InvalidArgumentError';
  }
}

export class NotFoundError extends DomainError {
  readonly code = status.NOT_FOUND;
}

export class AlreadyExistsError extends DomainError {
  readonly code = status.ALREADY_EXISTS;
}

/** A dependency (Redis, NATS, MySQL, an upstream service) is down: retry later. */
export class UnavailableError extends DomainError {
  readonly code = status.UNAVAILABLE;
}

/** A limit was hit (rate, size, slow consumer). */
export class ResourceExhaustedError extends DomainError {
  readonly code = status.RESOURCE_EXHAUSTED;
}

export class UnauthenticatedError extends DomainError {
  readonly code = status.UNAUTHENTICATED;
}

export class PermissionDeniedError extends DomainError {
  readonly code = status.PERMISSION_DENIED;
}

export class FailedPreconditionError extends DomainError {
  readonly code = status.FAILED_PRECONDITION;
}

/** The status object grpc-js sends for `err`, plus whether it was expected. */
export function toServiceError(err: unknown): { error: Partial<ServiceError>; expected: boolean } {
  if (err instanceof DomainError) {
    const metadata = new Metadata();
    if (err instanceof InvalidArgumentError) metadata.set('tickmesh-field', err.field);
    return { error: { code: err.code, details: err.message, metadata }, expected: true };
  }
  if (isServiceError(err)) {
    // A status from an upstream call: pass the code, not the upstream's details.
    const code = err.code === status.UNKNOWN ? status.INTERNAL : err.code;
    return { error: { code, details: status[code] ?? 'error' }, expected: false };
  }
  return { error: { code: status.INTERNAL, details: 'internal error' }, expected: false };
}

export function isServiceError(err: unknown): err is ServiceError {
  return (
    typeof err === 'object' && err !== null && 'code' in err && typeof (err as ServiceError).code === 'number'
  );
}
