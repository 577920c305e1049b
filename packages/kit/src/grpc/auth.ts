// Authentication of gRPC calls outside local development: a JWT in the
// `authorization: Bearer <token>` metadata, HS256 with a shared secret.
// Health and reflection are separate services that these checks never wrap,
// so probes and grpcurl `list` need no credentials.
import { InterceptingCall, Metadata, type Interceptor } from '@grpc/grpc-js';
import { jwtVerify, SignJWT } from 'jose';
import { UnauthenticatedError } from '../errors.js';

export interface JwtSettings {
  secret: string;
  issuer?: string;
  audience?: string;
}

export type Authenticator = (metadata: Metadata) => Promise<void>;

function key(secret: string): Uint8Array {
  if (secret.length < 32) throw new Error('the JWT secret must be at least 32 characters');
  return new TextEncoder().encode(secret);
}

/** Rejects a call without a valid bearer token with UNAUTHENTICATED (never saying which check failed). */
export function jwtAuthenticator(settings: JwtSettings): Authenticator {
  const secret = key(settings.secret);
  return async (metadata) => {
    const header = metadata.get('authorization')[0];
    const token = typeof header === 'string' && /^Bearer [\w.-]+$/.test(header) ? header.slice(7) : undefined;
    if (!token) throw new UnauthenticatedError('missing bearer token');
    try {
      await jwtVerify(token, secret, {
        algorithms: ['HS256'],
        ...(settings.issuer ? { issuer: settings.issuer } : {}),
        ...(settings.audience ? { audience: settings.audience } : {}),
      });
    } catch {
      throw new UnauthenticatedError('invalid token');
    }
  };
}

/** Signs a short-lived token for service-to-service calls. */
export async function mintToken(
  settings: JwtSettings & { subject: string; ttlSeconds: number },
): Promise<string> {
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(settings.subject).setIssuedAt();
  jwt = jwt.setExpirationTime(`${settings.ttlSeconds}s`);
  if (settings.issuer) jwt = jwt.setIssuer(settings.issuer);
  if (settings.audience) jwt = jwt.setAudience(settings.audience);
  return jwt.sign(key(settings.secret));
}

/**
 * Adds `authorization: Bearer <token>` to every call, minting a fresh token
 * when the cached one is past half its life. (grpc-js call credentials only
 * work over TLS; an interceptor works on plaintext channels too.)
 */
export function bearerTokenInterceptor(
  settings: JwtSettings & { subject: string; ttlSeconds?: number },
): Interceptor {
  const ttl = settings.ttlSeconds ?? 600;
  let token: { value: string; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const current = async (): Promise<string> => {
    if (token && Date.now() < token.renewAt) return token.value;
    pending ??= mintToken({ ...settings, ttlSeconds: ttl }).finally(() => (pending = undefined));
    const value = await pending;
    token = { value, renewAt: Date.now() + (ttl * 1000) / 2 };
    return value;
  };
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        current().then(
          (value) => {
            metadata.set('authorization', `Bearer ${value}`);
            next(metadata, listener);
          },
          () => next(metadata, listener),
        );
      },
    });
}

export { Metadata };
