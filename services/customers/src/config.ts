// Configuration of the customers service and of its migration CLI: one
// declaration per environment variable, with a default and a one-line doc.
import {
  commonConfig,
  grpcServerConfig,
  jwtConfig,
  int,
  port,
  str,
  type ConfigOf,
  type ConfigSpec,
} from '@tickmesh/kit';

/** The MySQL/MariaDB connection: shared by the service and migrate-main (the Kubernetes Job). */
export const mysqlConnectionConfig = {
  MYSQL_HOST: { schema: str().min(1), default: '127.0.0.1', doc: 'MySQL/MariaDB host' },
  MYSQL_PORT: { schema: port(), default: '3306', doc: 'MySQL/MariaDB port' },
  MYSQL_USER: { schema: str().min(1), default: 'tickmesh', doc: 'MySQL user' },
  MYSQL_PASSWORD: {
    schema: str(),
    default: 'tickmesh',
    doc: 'MySQL password (from a Secret in Kubernetes)',
    secret: true,
  },
  MYSQL_DATABASE: {
    schema: str().regex(/^[A-Za-z0-9_]{1,64}$/, 'must match ^[A-Za-z0-9_]{1,64}$'),
    default: 'tickmesh',
    doc: 'Database (schema) name',
  },
  MYSQL_CONNECT_TIMEOUT_MS: {
    schema: int(100, 60_000),
    default: '2000',
    doc: 'Timeout of one connection attempt',
  },
} satisfies ConfigSpec;

/** The service's pool and query bounds. */
export const mysqlPoolConfig = {
  MYSQL_POOL_MIN: { schema: int(0, 100), default: '0', doc: 'Connections the pool keeps open when idle' },
  MYSQL_POOL_MAX: {
    schema: int(1, 200),
    default: '10',
    doc: 'Most connections the pool opens (calls beyond wait for one, bounded by MYSQL_ACQUIRE_TIMEOUT_MS)',
  },
  MYSQL_ACQUIRE_TIMEOUT_MS: {
    schema: int(100, 60_000),
    default: '3000',
    doc: 'How long a call waits for a pooled connection before failing with UNAVAILABLE',
  },
  MYSQL_QUERY_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '5000',
    doc: 'Timeout of one query; the connection of a timed-out query is discarded',
  },
} satisfies ConfigSpec;

export const mysqlConfig = { ...mysqlConnectionConfig, ...mysqlPoolConfig } satisfies ConfigSpec;

export const customersConfigSpec = {
  ...commonConfig,
  METRICS_PORT: { ...commonConfig.METRICS_PORT, default: '9103' },
  ...grpcServerConfig,
  ...jwtConfig,
  GRPC_PORT: { schema: port(), default: '50053', doc: 'gRPC port of CustomerService' },
  ...mysqlConfig,
  WATCHLIST_MAX_SYMBOLS: {
    schema: int(1, 200),
    default: '200',
    doc: 'Most symbols a watchlist may hold (the proto promises at most 200)',
  },
  API_KEYS_MAX_ACTIVE: {
    schema: int(1, 1000),
    default: '20',
    doc: 'Most unrevoked API keys one customer may hold',
  },
  API_KEY_LAST_USED_RESOLUTION_MS: {
    schema: int(0, 86_400_000),
    default: '60000',
    doc: "VerifyApiKey writes a key's last-used time at most this often (no write per verify)",
  },
} satisfies ConfigSpec;

export const migrateConfigSpec = {
  LOG_LEVEL: commonConfig.LOG_LEVEL,
  ...mysqlConnectionConfig,
  MIGRATE_WAIT_MS: {
    schema: int(0, 600_000),
    default: '30000',
    doc: 'migrate-main: how long to wait for MySQL to accept connections before failing',
  },
} satisfies ConfigSpec;

export type MysqlConnectionConfig = ConfigOf<typeof mysqlConnectionConfig>;
export type MysqlConfig = ConfigOf<typeof mysqlConfig>;
export type CustomersConfig = ConfigOf<typeof customersConfigSpec>;
