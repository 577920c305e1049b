// Typed configuration from environment variables: one declaration per
// variable with its default and a one-line description, validated at start.
import { z } from 'zod';

export interface ConfigVar<T> {
  /** zod schema applied to the raw string (use the helpers below). */
  schema: z.ZodType<T>;
  /** Used when the variable is unset or empty; omit to make it required. */
  default?: string;
  /** One line for `--help`, the README and docs/configuration.md. */
  doc: string;
  /** Never printed (passwords, keys). */
  secret?: boolean;
}

export type ConfigSpec = Record<string, ConfigVar<unknown>>;
export type ConfigOf<S extends ConfigSpec> = { [K in keyof S]: S[K] extends ConfigVar<infer T> ? T : never };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses `env` against `spec`; throws ConfigError naming every bad variable. */
export function parseConfig<S extends ConfigSpec>(
  spec: S,
  env: NodeJS.ProcessEnv = process.env,
): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, v] of Object.entries(spec)) {
    const raw = env[name] === undefined || env[name] === '' ? v.default : env[name];
    if (raw === undefined) {
      problems.push(`${name}: required (${v.doc})`);
      continue;
    }
    const parsed = v.schema.safeParse(raw);
    if (parsed.success) {
      out[name] = parsed.data;
    } else {
      const shown = v.secret ? '<redacted>' : JSON.stringify(raw);
      problems.push(`${name}=${shown}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/**
 * Parses the config or exits the process with status 2 and a message naming
 * each bad variable and what is allowed. Services call this first in main.
 */
export function loadConfig<S extends ConfigSpec>(service: string, spec: S): ConfigOf<S> {
  if (process.argv.includes('--help')) {
    process.stdout.write(describeConfig(service, spec));
    process.exit(0);
  }
  try {
    return parseConfig(spec);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * A configuration that contradicts what the system already stored (found
 * after start, e.g. the partition count of the tick stream): the same exit as
 * loadConfig, status 2, as one line naming the problem.
 */
export function exitOnConfigError(service: string, err: ConfigError): never {
  process.stderr.write(`${service}: invalid configuration: ${err.problems.join('; ')}\n`);
  process.exit(2);
}

/** Markdown table of the variables: the source of docs/configuration.md. */
export function describeConfig(service: string, spec: ConfigSpec): string {
  const rows = Object.entries(spec).map(
    ([name, v]) =>
      `| \`${name}\` | ${v.default === undefined ? '(required)' : `\`${v.default}\``} | ${v.doc} |`,
  );
  return `### ${service}\n\n| variable | default | meaning |\n|---|---|---|\n${rows.join('\n')}\n`;
}

/** Returns a copy safe to log: secret variables are redacted. */
export function redactConfig<S extends ConfigSpec>(spec: S, config: ConfigOf<S>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(spec)) out[key] = spec[key]!.secret ? '<redacted>' : config[key as keyof S];
  return out;
}

// Schema helpers: each takes the raw string and explains what is allowed.

export const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^-?\d+$/, { message: `must be an integer from ${min} to ${max}` })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { message: `must be an integer from ${min} to ${max}` });

export const port = () => int(0, 65535);

export const num = (min: number, max: number) =>
  z
    .string()
    .transform(Number)
    .refine((n) => Number.isFinite(n) && n >= min && n <= max, {
      message: `must be a number from ${min} to ${max}`,
    });

export const bool = () =>
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
    .transform((s) => s === 'true' || s === '1');

export const oneOf = <T extends string>(...values: [T, ...T[]]) =>
  z.enum(values, { message: `must be one of: ${values.join(', ')}` });

export const str = () => z.string();

export const list = () =>
  z.string().transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x.length > 0),
  );

export const url = (...protocols: string[]) =>
  z.string().refine(
    (s) => {
      try {
        return protocols.includes(new URL(s).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `must be a URL with scheme ${protocols.join(' or ')}` },
  );

/** Variables every service shares. Spread into a service's spec. */
export const commonConfig = {
  LOG_LEVEL: {
    schema: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
    default: 'info',
    doc: 'pino log level',
  },
  METRICS_PORT: {
    schema: port(),
    default: '0',
    doc: 'HTTP port for /metrics, /healthz and /readyz (0: none)',
  },
  METRICS_HOST: { schema: str(), default: '0.0.0.0', doc: 'Bind address of the metrics HTTP server' },
  SHUTDOWN_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '20000',
    doc: 'On SIGTERM, how long in-flight calls may drain before the process exits anyway',
  },
  HEALTH_CHECK_INTERVAL_MS: {
    schema: int(100, 60_000),
    default: '1000',
    doc: 'How often dependency checks run (readiness follows them)',
  },
} satisfies ConfigSpec;

/** Variables of a service that serves gRPC. */
export const grpcServerConfig = {
  GRPC_HOST: { schema: str(), default: '0.0.0.0', doc: 'Bind address of the gRPC server' },
  GRPC_MAX_CONNECTION_AGE_MS: {
    schema: int(0, 86_400_000),
    default: '300000',
    doc: 'Connections older than this are closed (GOAWAY) so clients re-resolve and reach new pods; 0 disables',
  },
  GRPC_MAX_CONNECTION_AGE_GRACE_MS: {
    schema: int(0, 86_400_000),
    default: '30000',
    doc: 'How long calls on an aged-out connection may finish',
  },
  GRPC_KEEPALIVE_TIME_MS: {
    schema: int(1000, 3_600_000),
    default: '20000',
    doc: 'Server keepalive ping interval',
  },
  GRPC_KEEPALIVE_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '10000',
    doc: 'Keepalive ping ack timeout',
  },
  GRPC_MAX_MESSAGE_BYTES: {
    schema: int(1024, 64 * 1024 * 1024),
    default: '4194304',
    doc: 'Largest gRPC message accepted or sent',
  },
  GRPC_REFLECTION: {
    schema: bool(),
    default: 'true',
    doc: 'Serve gRPC server reflection (grpcurl list/describe)',
  },
  GRPC_AUTH_MODE: {
    schema: oneOf('none', 'jwt'),
    default: 'none',
    doc: 'none (local development) or jwt: calls need `authorization: Bearer <HS256 JWT>` (health and reflection never do)',
  },
  GRPC_TLS_CERT_FILE: {
    schema: str(),
    default: '',
    doc: 'PEM certificate: serve gRPC over TLS (with GRPC_TLS_KEY_FILE)',
  },
  GRPC_TLS_KEY_FILE: {
    schema: str(),
    default: '',
    doc: 'PEM private key of GRPC_TLS_CERT_FILE',
    secret: true,
  },
  GRPC_TLS_CLIENT_CA_FILE: {
    schema: str(),
    default: '',
    doc: 'PEM CA: require client certificates signed by it (mTLS)',
  },
} satisfies ConfigSpec;

/** JWT settings shared by servers that check tokens and clients that mint them. */
export const jwtConfig = {
  GRPC_JWT_SECRET: {
    schema: str(),
    default: '',
    doc: 'HS256 secret (at least 32 characters) for GRPC_AUTH_MODE=jwt and for tokens this service sends',
    secret: true,
  },
  GRPC_JWT_ISSUER: { schema: str(), default: 'tickmesh', doc: 'Expected and issued JWT issuer' },
  GRPC_JWT_AUDIENCE: { schema: str(), default: 'tickmesh', doc: 'Expected and issued JWT audience' },
} satisfies ConfigSpec;

/** Variables of a service that calls other services over gRPC. */
export const grpcClientConfig = {
  GRPC_CLIENT_TLS_CA_FILE: { schema: str(), default: '', doc: 'PEM CA of the servers: call them over TLS' },
  GRPC_CLIENT_TLS_CERT_FILE: { schema: str(), default: '', doc: 'PEM client certificate for mTLS' },
  GRPC_CLIENT_TLS_KEY_FILE: {
    schema: str(),
    default: '',
    doc: 'PEM key of the client certificate',
    secret: true,
  },
  GRPC_CLIENT_SEND_JWT: {
    schema: bool(),
    default: 'false',
    doc: 'Attach a service JWT signed with GRPC_JWT_SECRET to every call (when the servers run GRPC_AUTH_MODE=jwt)',
  },
  GRPC_UNARY_DEADLINE_MS: {
    schema: int(50, 120_000),
    default: '3000',
    doc: 'Deadline of unary calls to other services',
  },
  GRPC_CLIENT_RECONNECT_MAX_MS: {
    schema: int(100, 120_000),
    default: '2000',
    doc: 'Longest wait between reconnect attempts to a lost server (from 250 ms, x1.6 per attempt, +-20% jitter)',
  },
} satisfies ConfigSpec;
