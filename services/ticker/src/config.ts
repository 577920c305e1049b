// Configuration of the ticker's processes (ingest API and feed simulator):
// one declaration per environment variable, with its default and meaning.
import {
  bool,
  commonConfig,
  grpcClientConfig,
  grpcServerConfig,
  int,
  jwtConfig,
  num,
  port,
  str,
  url,
  ConfigError,
  loadConfig,
  type ConfigOf,
  type ConfigSpec,
  DEFAULT_TICK_PARTITIONS,
} from '@tickmesh/kit';
import { producerIdProblem } from './producer-ids.js';
import { MAX_ENCODED_TICK_BYTES } from './tick-validation.js';

/** NATS and the TICKS stream: shared by the ingest API and the simulator. */
export const jetstreamConfig = {
  NATS_URL: {
    schema: str().refine((s) => s.split(',').every((u) => url('nats', 'tls').safeParse(u.trim()).success), {
      message: 'must be nats:// (or tls://) URLs, comma-separated',
    }),
    default: 'nats://127.0.0.1:4222',
    doc: 'NATS server URL(s), comma-separated',
  },
  NATS_CONNECT_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '30000',
    doc: 'How long the process waits for NATS at start before it gives up (exit 1)',
  },
  MARKET: {
    schema: str().min(1),
    default: 'bist30',
    doc: 'Market universe: a name under packages/kit/markets (bist30) or a path to a universe JSON file',
  },
  TICKS_STREAM: {
    schema: str().regex(
      /^[A-Za-z0-9_-]{1,64}$/,
      'must be a JetStream stream name ([A-Za-z0-9_-], 1-64 chars)',
    ),
    default: 'TICKS',
    doc: 'JetStream stream holding the raw ticks (subjects ticks.>)',
  },
  TICK_PARTITIONS: {
    schema: int(1, 1024),
    default: String(DEFAULT_TICK_PARTITIONS),
    doc: 'Number of tick partitions (subjects ticks.<n>); must match the price-cache',
  },
  CHECKPOINT_BUCKET: {
    schema: str().regex(
      /^[A-Za-z0-9_-]{1,64}$/,
      'must be a JetStream KV bucket name ([A-Za-z0-9_-], 1-64 chars)',
    ),
    default: 'tickmesh_checkpoints',
    doc: "The price-cache's checkpoint bucket (its CHECKPOINT_BUCKET): ticks after its positions are kept from the stream's byte limit",
  },
  TICKS_STREAM_REPLICAS: {
    schema: int(1, 5),
    default: '1',
    doc: 'Replicas of the TICKS stream (1 on a single server)',
  },
  TICKS_STREAM_MAX_AGE_MS: {
    schema: int(0, 365 * 86_400_000),
    default: '86400000',
    doc: 'Ticks older than this are dropped from the stream (0: no age limit)',
  },
  TICKS_STREAM_MAX_BYTES: {
    schema: int(-1, Number.MAX_SAFE_INTEGER),
    default: '1073741824',
    doc: 'Size cap of the stream in bytes; the oldest ticks go first (-1: no cap)',
  },
  TICKS_STREAM_DUPLICATE_WINDOW_MS: {
    schema: int(1000, 86_400_000),
    default: '120000',
    doc: 'JetStream duplicate window: a retried batch (same Nats-Msg-Id) within it is stored once',
  },
  TICKS_STREAM_MAX_MSG_SIZE: {
    schema: int(64 * 1024, 64 * 1024 * 1024),
    default: '1048576',
    doc: 'Largest message the stream accepts; batches are sized to fit (must not exceed the server max_payload)',
  },
  PUBLISH_MAX_BATCH_TICKS: {
    schema: int(1, 5000),
    default: '500',
    doc: 'Most ticks in one JetStream message (one producer, one partition)',
  },
  PUBLISH_QUEUE_TICKS: {
    schema: int(10, 1_000_000),
    default: '10000',
    doc: 'Ticks waiting per partition before producers are pushed back (the memory bound)',
  },
  PUBLISH_TIMEOUT_MS: {
    schema: int(100, 120_000),
    default: '2000',
    doc: 'Timeout of one JetStream publish (waiting for its ack); a timed-out batch is retried with the same message id, so a publish lost in a NATS restart costs this long',
  },
  PUBLISH_RETRY_MIN_MS: {
    schema: int(1, 60_000),
    default: '100',
    doc: 'First retry delay of a failed publish',
  },
  PUBLISH_RETRY_MAX_MS: {
    schema: int(1, 600_000),
    default: '2000',
    doc: 'Longest retry delay of a failed publish',
  },
} satisfies ConfigSpec;

/** host:port, optionally dns:/// first (several addresses behind one name, round robin). */
const ADDRESS = /^(dns:\/\/\/)?([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/** Daily price bands: the previous close comes from the price-cache (docs/ingest.md#price-bands). */
export const priceBandConfig = {
  // TLS and service JWTs for the calls to PriceService.
  ...grpcClientConfig,
  PRICE_CACHE_ADDRESS: {
    schema: str().refine((s) => {
      if (s === '') return true;
      const m = ADDRESS.exec(s);
      return m !== null && Number(m[4]) >= 1 && Number(m[4]) <= 65535;
    }, 'must be host:port or dns:///host:port, or empty'),
    default: '',
    doc: "PriceService (price-cache) whose quotes give each instrument's previous close for the daily price band; empty: no price bands (a warning at start)",
  },
  GRPC_UNARY_DEADLINE_MS: {
    schema: int(50, 60_000),
    default: '1000',
    doc: 'Deadline of one GetQuote to the price-cache (a reference lookup for the price band)',
  },
  PRICE_BAND_RECHECK_MS: {
    schema: int(100, 600_000),
    default: '1000',
    doc: "How long a provisional band reference (the previous day's last price before today's first tick is applied, or the market file's price) is used before the price-cache is asked again",
  },
} satisfies ConfigSpec;

/** The ingest API (services/ticker/src/main.ts). */
export const ingestConfigSpec = {
  ...commonConfig,
  ...grpcServerConfig,
  ...jwtConfig,
  METRICS_PORT: {
    schema: port(),
    default: '9101',
    doc: 'HTTP port for /metrics, /healthz and /readyz (0: none)',
  },
  GRPC_PORT: { schema: port(), default: '50051', doc: 'gRPC port of IngestService' },
  ...jetstreamConfig,
  INGEST_OPEN_MODE: {
    schema: bool(),
    default: 'false',
    doc: 'Accept symbols outside the market universe (tick size 0.0001); otherwise they are rejected',
  },
  INGEST_MAX_FUTURE_MS: {
    schema: int(0, 86_400_000),
    default: '60000',
    doc: 'Reject ticks whose event time is further than this in the future',
  },
  INGEST_STREAM_MAX_IN_FLIGHT: {
    schema: int(1, 1_000_000),
    default: '20000',
    doc: 'Unacknowledged ticks per PublishTicks stream before the server stops reading it',
  },
  INGEST_ACK_INTERVAL_MS: {
    schema: int(0, 1000),
    default: '5',
    doc: 'Acks of a stream are coalesced: at most one ack message per this interval',
  },
  INGEST_UNAVAILABLE_AFTER_MS: {
    schema: int(100, 600_000),
    default: '10000',
    doc: 'A PublishTicks stream ends with UNAVAILABLE after NATS is down, or its ack does not move (nothing stored, or a tick held back), this long',
  },
  INGEST_UNARY_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '10000',
    doc: 'Longest wait of PublishTick for JetStream to store the tick (the call deadline also applies)',
  },
  INGEST_UNARY_PRODUCER_ID: {
    schema: str(),
    default: '',
    doc: 'Producer id given to unary ticks sent without one (default unary-<hostname>); one per ticker replica, since each replica numbers them on its own clock',
  },
  ...priceBandConfig,
} satisfies ConfigSpec;

/** The feed simulator (services/ticker/src/simulator-main.ts). */
export const simulatorConfigSpec = {
  ...commonConfig,
  METRICS_PORT: { schema: port(), default: '9105', doc: 'HTTP port for /metrics, /healthz and /readyz' },
  ...jetstreamConfig,
  SIM_SEED: {
    schema: str().regex(/^(\d{1,10})?$/, 'must be an integer from 0 to 4294967295 or empty'),
    default: '',
    doc: 'RNG seed (0-4294967295): the same seed gives the same ticks; empty picks one and logs it',
  },
  SIM_MIN_INTERVAL_MS: {
    schema: int(1, 3_600_000),
    default: '50',
    doc: 'Shortest interval between two ticks of one symbol',
  },
  SIM_MAX_INTERVAL_MS: {
    schema: int(1, 3_600_000),
    default: '500',
    doc: 'Longest interval between two ticks of one symbol',
  },
  SIM_TICKS_PER_SECOND: {
    schema: num(0, 1_000_000),
    default: '0',
    doc: 'Total tick rate over all symbols (load testing); overrides the intervals when > 0',
  },
  SIM_ALWAYS_OPEN: {
    schema: bool(),
    default: 'true',
    doc: 'Ignore the market session clock (demos, tests); false: tick only while the session is open',
  },
  SIM_PRODUCER_ID: {
    schema: str(),
    default: '',
    doc: 'Producer id of the simulated ticks (default sim-<market>)',
  },
  ...jwtConfig,
  ...priceBandConfig,
} satisfies ConfigSpec;

export type JetStreamConfig = ConfigOf<typeof jetstreamConfig>;
export type IngestConfig = ConfigOf<typeof ingestConfigSpec>;
export type SimulatorConfig = ConfigOf<typeof simulatorConfigSpec>;

/** Room for the message headers (Nats-Msg-Id, Nats-Expected-Stream) beside a batch. */
const HEADER_ALLOWANCE_BYTES = 1024;

/** Rules across variables that the per-variable schemas cannot express. */
export function jetstreamConfigProblems(c: JetStreamConfig): string[] {
  const problems: string[] = [];
  const worst = c.PUBLISH_MAX_BATCH_TICKS * MAX_ENCODED_TICK_BYTES + HEADER_ALLOWANCE_BYTES;
  if (worst > c.TICKS_STREAM_MAX_MSG_SIZE) {
    problems.push(
      `PUBLISH_MAX_BATCH_TICKS=${c.PUBLISH_MAX_BATCH_TICKS}: a full batch may take ${worst} bytes, more than TICKS_STREAM_MAX_MSG_SIZE=${c.TICKS_STREAM_MAX_MSG_SIZE}`,
    );
  }
  if (c.PUBLISH_QUEUE_TICKS < c.PUBLISH_MAX_BATCH_TICKS) {
    problems.push(
      `PUBLISH_QUEUE_TICKS=${c.PUBLISH_QUEUE_TICKS} must be >= PUBLISH_MAX_BATCH_TICKS=${c.PUBLISH_MAX_BATCH_TICKS}`,
    );
  }
  if (c.PUBLISH_RETRY_MIN_MS > c.PUBLISH_RETRY_MAX_MS) {
    problems.push(
      `PUBLISH_RETRY_MIN_MS=${c.PUBLISH_RETRY_MIN_MS} must be <= PUBLISH_RETRY_MAX_MS=${c.PUBLISH_RETRY_MAX_MS}`,
    );
  }
  return problems;
}

/** A service JWT is signed with GRPC_JWT_SECRET: sending one needs it. */
function priceBandProblems(c: ConfigOf<typeof priceBandConfig> & { GRPC_JWT_SECRET: string }): string[] {
  return c.GRPC_CLIENT_SEND_JWT && c.PRICE_CACHE_ADDRESS !== '' && c.GRPC_JWT_SECRET.length < 32
    ? ['GRPC_CLIENT_SEND_JWT=true needs GRPC_JWT_SECRET (at least 32 characters) to sign its calls']
    : [];
}

export function ingestConfigProblems(c: IngestConfig): string[] {
  const problems = [...jetstreamConfigProblems(c), ...priceBandProblems(c)];
  const idProblem =
    c.INGEST_UNARY_PRODUCER_ID === '' ? undefined : producerIdProblem(c.INGEST_UNARY_PRODUCER_ID);
  if (idProblem)
    problems.push(`INGEST_UNARY_PRODUCER_ID=${JSON.stringify(c.INGEST_UNARY_PRODUCER_ID)}: ${idProblem}`);
  return problems;
}

export function simulatorConfigProblems(c: SimulatorConfig): string[] {
  const problems = [...jetstreamConfigProblems(c), ...priceBandProblems(c)];
  if (c.SIM_MIN_INTERVAL_MS > c.SIM_MAX_INTERVAL_MS) {
    problems.push(
      `SIM_MIN_INTERVAL_MS=${c.SIM_MIN_INTERVAL_MS} must be <= SIM_MAX_INTERVAL_MS=${c.SIM_MAX_INTERVAL_MS}`,
    );
  }
  if (c.SIM_SEED !== '' && Number(c.SIM_SEED) > 0xffffffff)
    problems.push(`SIM_SEED=${c.SIM_SEED} must be <= 4294967295`);
  if (c.SIM_PRODUCER_ID !== '') {
    const idProblem = producerIdProblem(c.SIM_PRODUCER_ID);
    if (idProblem) problems.push(`SIM_PRODUCER_ID=${JSON.stringify(c.SIM_PRODUCER_ID)}: ${idProblem}`);
  }
  return problems;
}

/** loadConfig plus the cross-variable rules: exits 2 naming every problem, like loadConfig does. */
export function loadCheckedConfig<S extends ConfigSpec>(
  service: string,
  spec: S,
  problems: (c: ConfigOf<S>) => string[],
): ConfigOf<S> {
  const config = loadConfig(service, spec);
  const found = problems(config);
  if (found.length > 0) {
    process.stderr.write(`${service}: ${new ConfigError(found).message}\n`);
    process.exit(2);
  }
  return config;
}
