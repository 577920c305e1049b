// Authentication of WebSocket clients (AUTH_MODE): none (local development),
// api-key (verified by CustomerService.VerifyApiKey, verdicts cached briefly)
// or jwt (a signed token checked with jose). Credentials arrive in the `auth`
// op, never only in the URL.
import { createHash } from 'node:crypto';
import { Metadata, status } from '@grpc/grpc-js';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { isServiceError } from '@tickmesh/kit';
import type { CustomerServiceClient } from '@tickmesh/kit/proto';
import { TtlCache } from './ttl-cache.js';

export type AuthResult =
  | {
      ok: true;
      principal: string;
      /** Unix ms after which the credentials are no longer valid. */ expiresAt?: number;
    }
  | { ok: false; kind: 'rejected' | 'unavailable'; reason: string };

export interface Authenticator {
  readonly required: boolean;
  authenticate(token: string): Promise<AuthResult>;
}

export const openAuthenticator: Authenticator = {
  required: false,
  authenticate: () => Promise.resolve({ ok: true, principal: 'anonymous' }),
};

/** Verifies API keys with the customer service (the deadline comes from the client's interceptor). */
export type VerifyApiKey = (secret: string) => Promise<{ customerId: string; keyId: string }>;

export function verifyWithCustomerService(client: CustomerServiceClient, deadlineMs: number): VerifyApiKey {
  return (secret) =>
    new Promise((resolve, reject) => {
      client.verifyApiKey({ secret }, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
}

export class ApiKeyAuthenticator implements Authenticator {
  readonly required = true;
  private readonly cache: TtlCache<AuthResult>;
  private readonly inFlight = new Map<string, Promise<AuthResult>>();

  constructor(
    private readonly verify: VerifyApiKey,
    private readonly opts: { ttlMs: number; negativeTtlMs: number; maxEntries: number; now?: () => number },
  ) {
    this.cache = new TtlCache(opts.maxEntries, opts.now);
  }

  authenticate(token: string): Promise<AuthResult> {
    // Keyed by a hash: the cache never holds a secret.
    const key = createHash('sha256').update(token).digest('base64url');
    const cached = this.cache.get(key);
    if (cached) return Promise.resolve(cached);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.check(key, token).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async check(key: string, token: string): Promise<AuthResult> {
    try {
      const res = await this.verify(token);
      const result: AuthResult = { ok: true, principal: `customer:${res.customerId}` };
      this.cache.set(key, result, this.opts.ttlMs);
      return result;
    } catch (err) {
      if (
        isServiceError(err) &&
        (err.code === status.UNAUTHENTICATED ||
          err.code === status.INVALID_ARGUMENT ||
          err.code === status.NOT_FOUND ||
          err.code === status.PERMISSION_DENIED)
      ) {
        const result: AuthResult = { ok: false, kind: 'rejected', reason: 'unknown or revoked API key' };
        this.cache.set(key, result, this.opts.negativeTtlMs);
        return result;
      }
      const code = isServiceError(err) ? (status[err.code] ?? String(err.code)) : 'error';
      return { ok: false, kind: 'unavailable', reason: `customer service: ${code}` };
    }
  }
}

export interface JwtOptions {
  secret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  clockToleranceS: number;
  /** Timeout of a JWKS fetch. */
  fetchTimeoutMs?: number;
}

export class JwtAuthenticator implements Authenticator {
  readonly required = true;
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];

  constructor(private readonly opts: JwtOptions) {
    if (opts.jwksUrl) {
      this.key = createRemoteJWKSet(new URL(opts.jwksUrl), { timeoutDuration: opts.fetchTimeoutMs ?? 2000 });
      this.algorithms = [
        'RS256',
        'RS384',
        'RS512',
        'PS256',
        'PS384',
        'PS512',
        'ES256',
        'ES384',
        'ES512',
        'EdDSA',
      ];
    } else if (opts.secret) {
      this.key = new TextEncoder().encode(opts.secret);
      this.algorithms = ['HS256', 'HS384', 'HS512'];
    } else {
      throw new Error('JwtAuthenticator needs a secret or a JWKS URL');
    }
  }

  async authenticate(token: string): Promise<AuthResult> {
    try {
      const verifyOpts = {
        algorithms: this.algorithms,
        issuer: this.opts.issuer || undefined,
        audience: this.opts.audience || undefined,
        clockTolerance: this.opts.clockToleranceS,
        requiredClaims: ['exp'],
      };
      const { payload } =
        this.key instanceof Uint8Array
          ? await jwtVerify(token, this.key, verifyOpts)
          : await jwtVerify(token, this.key, verifyOpts);
      const sub = typeof payload.sub === 'string' && payload.sub.length > 0 ? payload.sub : 'unknown';
      return {
        ok: true,
        principal: `jwt:${sub.slice(0, 128)}`,
        expiresAt: (payload.exp as number) * 1000 + this.opts.clockToleranceS * 1000,
      };
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout)
        return { ok: false, kind: 'unavailable', reason: 'token keys unreachable' };
      if (err instanceof joseErrors.JOSEError) {
        return { ok: false, kind: 'rejected', reason: jwtReason(err) };
      }
      // A JWKS fetch failing (network) is not the client's fault.
      return { ok: false, kind: 'unavailable', reason: 'token keys unavailable' };
    }
  }
}

function jwtReason(err: InstanceType<typeof joseErrors.JOSEError>): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim ${err.claim} invalid`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  return 'invalid token';
}
