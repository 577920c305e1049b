// Authentication as middleware: the credentials are checked before the
// handler runs; a rejection (UnauthenticatedError) ends the call there.
// Health and reflection are separate services that middleware never wraps,
// so probes and grpcurl `list` need no credentials.
import type { Authenticator } from '../auth.js';
import type { ServerMiddleware } from './compose.js';

export function authMiddleware(authenticate: Authenticator): ServerMiddleware {
  return (call, next) => authenticate(call.metadata).then(next);
}
