// The designed deployment, written down once: the tests compare the rendered
// manifests with these facts (docs/kubernetes.md). Change them together.
import { readFileSync } from 'node:fs';
import type { TargetName } from './render.js';

/** The image built by skaffold (artifact `tickmesh`, deploy/Dockerfile). */
export const OUR_IMAGE = 'tickmesh';
export const NAMESPACE = 'tickmesh';
export const RUN_AS_USER = 10001;
/** Services drain within SHUTDOWN_TIMEOUT_MS; the pod grace period must cover preStop + drain. */
export const SHUTDOWN_TIMEOUT_MS = 20000;
export const GRACE_SECONDS = 45;
export const PRESTOP_SLEEP_SECONDS = 5;

export type ProbeSpec =
  { grpc: { port: number; service: string } } | { http: { path: string; port: number } };

export interface ServiceDesign {
  command: string[];
  /** container ports by name */
  ports: Record<string, number>;
  liveness: ProbeSpec;
  readiness: ProbeSpec;
  hpa: boolean;
  service: 'headless' | 'clusterip' | 'none';
  /** the port Prometheus scrapes */
  metricsPort: number;
}

const grpcProbe = (port: number, service: string): ProbeSpec => ({ grpc: { port, service } });
const httpProbe = (port: number, path: string): ProbeSpec => ({ http: { port, path } });

/** The tickmesh Deployments (the table in docs/kubernetes.md), by Deployment name. */
export const SERVICES: Record<string, ServiceDesign> = {
  ticker: {
    command: ['node', 'dist/services/ticker/src/main.js'],
    ports: { grpc: 50051, metrics: 9101 },
    liveness: grpcProbe(50051, 'liveness'),
    readiness: grpcProbe(50051, 'tickmesh.ingest.v1.IngestService'),
    hpa: true,
    service: 'headless',
    metricsPort: 9101,
  },
  simulator: {
    command: ['node', 'dist/services/ticker/src/simulator-main.js'],
    ports: { metrics: 9105 },
    liveness: httpProbe(9105, '/healthz'),
    readiness: httpProbe(9105, '/readyz'),
    hpa: false,
    service: 'none',
    metricsPort: 9105,
  },
  'price-cache': {
    command: ['node', 'dist/services/price-cache/src/main.js'],
    ports: { grpc: 50052, metrics: 9102 },
    liveness: grpcProbe(50052, 'liveness'),
    readiness: grpcProbe(50052, 'tickmesh.price.v1.PriceService'),
    hpa: true,
    service: 'headless',
    metricsPort: 9102,
  },
  customers: {
    command: ['node', 'dist/services/customers/src/main.js'],
    ports: { grpc: 50053, metrics: 9103 },
    liveness: grpcProbe(50053, 'liveness'),
    readiness: grpcProbe(50053, 'tickmesh.customer.v1.CustomerService'),
    hpa: true,
    service: 'headless',
    metricsPort: 9103,
  },
  gateway: {
    command: ['node', 'dist/services/gateway/src/main.js'],
    ports: { http: 8080 },
    liveness: httpProbe(8080, '/healthz'),
    readiness: httpProbe(8080, '/readyz'),
    hpa: true,
    service: 'clusterip',
    metricsPort: 8080,
  },
};

export const MIGRATION_JOB = {
  name: 'customers-migrate',
  command: ['node', 'dist/services/customers/src/migrate-main.js', 'latest'],
};

/** Every command the image must be able to run (the Dockerfile checks these files exist). */
export const ALL_COMMANDS: string[][] = [
  ...Object.values(SERVICES).map((s) => s.command),
  MIGRATION_JOB.command,
];

/** Expected environment: a string is the exact value, `true` means "set (any value)", `'secret'` means from a Secret. */
export type EnvExpectation = Record<string, string | true | 'secret' | 'optional-secret'>;

const COMMON: EnvExpectation = {
  LOG_LEVEL: true,
  SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
};
const GRPC: EnvExpectation = {
  GRPC_HOST: '0.0.0.0',
  GRPC_MAX_CONNECTION_AGE_MS: true,
  GRPC_MAX_CONNECTION_AGE_GRACE_MS: true,
};
const MYSQL: EnvExpectation = {
  MYSQL_HOST: 'mysql',
  MYSQL_PORT: '3306',
  MYSQL_USER: true,
  MYSQL_PASSWORD: 'secret',
  MYSQL_DATABASE: true,
};

const isLocal = (target: TargetName) => target !== 'base';

/** The environment each workload must see, per rendered target. */
export function expectedEnv(target: TargetName): Record<string, EnvExpectation> {
  const replicas = isLocal(target) ? '1' : '3';
  return {
    ticker: {
      ...COMMON,
      ...GRPC,
      GRPC_PORT: '50051',
      METRICS_PORT: '9101',
      NATS_URL: 'nats://nats:4222',
      TICKS_STREAM_REPLICAS: replicas,
      MARKET: 'bist30',
      PRICE_CACHE_ADDRESS: 'dns:///price-cache:50052',
    },
    simulator: {
      ...COMMON,
      METRICS_PORT: '9105',
      NATS_URL: 'nats://nats:4222',
      TICKS_STREAM_REPLICAS: replicas,
      MARKET: 'bist30',
      PRICE_CACHE_ADDRESS: 'dns:///price-cache:50052',
    },
    'price-cache': {
      ...COMMON,
      ...GRPC,
      GRPC_PORT: '50052',
      METRICS_PORT: '9102',
      NATS_URL: 'nats://nats:4222',
      REDIS_URL: 'redis://redis:6379',
      CHECKPOINT_REPLICAS: replicas,
    },
    customers: { ...COMMON, ...GRPC, GRPC_PORT: '50053', METRICS_PORT: '9103', ...MYSQL },
    gateway: {
      ...COMMON,
      HTTP_PORT: '8080',
      PRICE_SERVICE_TARGET: 'dns:///price-cache:50052',
      CUSTOMER_SERVICE_TARGET: 'dns:///customers:50053',
      AUTH_MODE: isLocal(target) ? 'none' : 'api-key',
      ALLOWED_ORIGINS: true,
      JWT_SECRET: 'optional-secret',
    },
    'customers-migrate': { ...COMMON, ...MYSQL },
  };
}

/** NATS nodes (StatefulSet replicas) per target; TICKS_STREAM_REPLICAS must equal it. */
export const natsReplicas = (target: TargetName): number => (isLocal(target) ? 1 : 3);
/** The image of the nats-server version the project pins (deploy/versions.env): tests run what is deployed. */
export const NATS_IMAGE = `nats:${pinnedVersion('NATS_SERVER_VERSION').replace(/^v/, '')}-alpine`;

function pinnedVersion(name: string): string {
  const text = readFileSync(new URL('../../../deploy/versions.env', import.meta.url), 'utf8');
  const version = new RegExp(`^${name}=(\\S+)$`, 'm').exec(text)?.[1];
  if (!version) throw new Error(`deploy/versions.env has no ${name}`);
  return version;
}

/** Secrets the base expects the operator to create (the local overlays bring examples). */
export const EXTERNAL_SECRETS = ['tickmesh-mysql', 'tickmesh-gateway'];

/** The HPA targets (CPU), and what must never autoscale. */
export const HPA_TARGETS = Object.entries(SERVICES)
  .filter(([, s]) => s.hpa)
  .map(([n]) => n)
  .sort();
export const NO_HPA = ['simulator'];

/** Services that carry gRPC: headless, for client-side round_robin over dns:///. */
export const GRPC_SERVICES = Object.entries(SERVICES)
  .filter(([, s]) => s.service === 'headless')
  .map(([n]) => n)
  .sort();

/**
 * Peers outside the namespace used for the flow computation:
 *  internet        an address outside the cluster
 *  other-namespace a pod in an unlabelled namespace
 *  monitoring      Prometheus in a namespace labelled monitoring.tickmesh.io/scrape=true
 *  kube-dns        CoreDNS in kube-system
 */
export const MONITORING_NAMESPACE_LABEL = { 'monitoring.tickmesh.io/scrape': 'true' };

/** The designed flows: exactly these, nothing else (port/protocol on the destination). */
export function expectedFlows(workloads: string[]): string[] {
  const flows: string[] = [];
  // "anywhere": outside the cluster, any pod in any namespace (kube-dns included)
  for (const src of ['internet', 'other-namespace', 'monitoring', 'kube-dns']) {
    flows.push(`${src} -> gateway:8080/TCP`, `${src} -> ticker:50051/TCP`);
  }
  flows.push(
    'monitoring -> ticker:9101/TCP',
    'monitoring -> price-cache:9102/TCP',
    'monitoring -> customers:9103/TCP',
    'monitoring -> simulator:9105/TCP',
    'gateway -> price-cache:50052/TCP',
    'gateway -> customers:50053/TCP',
    'ticker -> price-cache:50052/TCP',
    'simulator -> price-cache:50052/TCP',
    'ticker -> nats:4222/TCP',
    'simulator -> nats:4222/TCP',
    'price-cache -> nats:4222/TCP',
    'price-cache -> redis:6379/TCP',
    'customers -> mysql:3306/TCP',
    'customers-migrate -> mysql:3306/TCP',
    'nats -> nats:6222/TCP',
    'ghz -> ticker:50051/TCP',
    'ghz -> price-cache:50052/TCP',
    'ghz -> customers:50053/TCP',
  );
  for (const w of workloads) flows.push(`${w} -> kube-dns:53/UDP`, `${w} -> kube-dns:53/TCP`);
  return [...new Set(flows)].sort();
}

/** Every workload a deployable render (plus the ghz Job) must contain. */
export const ALL_WORKLOADS = [
  ...Object.keys(SERVICES),
  'customers-migrate',
  'nats',
  'redis',
  'mysql',
  'ghz',
].sort();
