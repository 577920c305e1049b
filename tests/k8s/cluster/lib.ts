// The local cluster from a test: its scripts (deploy/k8s-local), kubectl with the cluster's
// kubeconfig, names resolved by the cluster's DNS, grpcurl against what a Service names.
// Every address here is inside the cluster's network namespace on this machine.
import { execFile, spawn } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { fromUnits, type Instrument, type Universe } from '@tickmesh/kit';
import { waitUntil } from '@tickmesh/harness';
import type { ProducerLoad } from '../../faults/lib/producers.js';
import { TickModel, catchUp, compareWithRedis, readRedisQuotes } from '../../faults/lib/model.js';
import { REPO_ROOT, findTool } from '../lib/render.js';

const run = promisify(execFile);
const SCRIPTS = join(REPO_ROOT, 'deploy', 'k8s-local');

export const NS = 'tickmesh';

export interface Workload {
  metadata: { name: string };
  spec?: {
    replicas?: number;
    completions?: number;
    template?: { spec?: { containers: { image: string }[] } };
  };
  status?: { readyReplicas?: number; replicas?: number; succeeded?: number; updatedReplicas?: number };
}

/** What deploy/k8s-local/lib.sh computes (cache and state paths, addresses). */
export interface ClusterEnv {
  kubectl: string;
  kubeconfig: string;
  dnsIp: string;
  logs: string;
}

export async function clusterEnv(): Promise<ClusterEnv> {
  const { stdout } = await run('bash', [
    '-c',
    `source ${join(SCRIPTS, 'lib.sh')} && printf '%s\\n' "$BIN/kubectl" "$KUBECONFIG_ADMIN" "$DNS_IP" "$LOGS"`,
  ]);
  const [kubectl, kubeconfig, dnsIp, logs] = stdout.trim().split('\n') as [string, string, string, string];
  return { kubectl, kubeconfig, dnsIp, logs };
}

export function clusterRunning(env: ClusterEnv): boolean {
  return existsSync(env.kubeconfig);
}

/** Runs one of the deploy/k8s-local scripts, its output going to the test's stderr. */
export function script(name: string, args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', [join(SCRIPTS, name), ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, ...extraEnv },
    });
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`deploy/k8s-local/${name} ${args.join(' ')} exited ${code}`)),
    );
  });
}

/**
 * The cached binaries and the images, built side by side as `make k8s-up` does (the Go
 * builds wait for CPU, the image builds mostly for the package registries).
 */
export async function buildAll(): Promise<void> {
  const results = await Promise.allSettled([script('build.sh'), script('images.sh', ['build'])]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

export class Cluster {
  private readonly resolver = new Resolver({ timeout: 2000, tries: 2 });
  readonly grpcurlBin: string;

  constructor(readonly env: ClusterEnv) {
    this.resolver.setServers([env.dnsIp]);
    const g = findTool('grpcurl');
    if (!g) throw new Error('grpcurl not found (make tools)');
    this.grpcurlBin = g;
  }

  async kubectl(args: string[], timeoutMs = 120_000): Promise<string> {
    try {
      const { stdout } = await run(this.env.kubectl, ['--kubeconfig', this.env.kubeconfig, ...args], {
        maxBuffer: 64 * 1024 * 1024,
        timeout: timeoutMs,
      });
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')}: ${err.stderr?.trim() || err.message}`, { cause: e });
    }
  }

  async json<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.kubectl([...args, '-o', 'json'])) as T;
  }

  /** The addresses the cluster's DNS gives for a Service (every ready pod, for a headless one). */
  async resolve(service: string, namespace = 'tickmesh'): Promise<string[]> {
    const ips = await this.resolver.resolve4(`${service}.${namespace}.svc.cluster.local`);
    return ips.sort();
  }

  /** A gRPC target that resolves a Service through the cluster's DNS (see grpc-env.ts). */
  grpcTarget(service: string, port: number, namespace = NS): string {
    return `dns://${this.env.dnsIp}/${service}.${namespace}.svc.cluster.local:${port}`;
  }

  async grpcurl(address: string, method: string, data: unknown): Promise<Record<string, unknown>> {
    try {
      const { stdout } = await run(
        this.grpcurlBin,
        ['-plaintext', '-max-time', '5', '-d', JSON.stringify(data), address, method],
        { timeout: 15_000 },
      );
      return JSON.parse(stdout) as Record<string, unknown>;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`grpcurl ${address} ${method}: ${err.stderr?.trim() || err.message}`, {
        cause: e,
      });
    }
  }
}

/**
 * Once a producer's ticks are all acknowledged: every acknowledged tick is in the TICKS
 * stream, and Redis and what every price-cache pod serves equal the stream folded into a
 * model (the exactness check of tests/faults). The simulator is stopped meanwhile, so the
 * stream holds still, and started again afterwards.
 */
export async function assertServedExactly(
  cluster: Cluster,
  universe: Universe,
  producer: ProducerLoad,
  instruments: Instrument[],
): Promise<void> {
  // The feed stops, so the stream holds still while it is compared with what is served.
  await cluster.kubectl(['-n', NS, 'scale', 'deployment/simulator', '--replicas=0']);
  const nc = await connect({ servers: `${(await cluster.resolve('nats'))[0]}:4222` });
  const redis = new Redis({ host: (await cluster.resolve('redis'))[0], port: 6379, lazyConnect: true });
  try {
    await cluster.kubectl([
      '-n',
      NS,
      'wait',
      '--for=delete',
      'pod',
      '-l',
      'app.kubernetes.io/name=simulator',
      '--timeout=90s',
    ]);
    // the truth: the TICKS stream folded into a model, as the fault tests do
    const model = new TickModel(universe, [producer.producerId]);
    await catchUp(nc, model);
    const lost = [...producer.storedSeqs()].filter((seq) => !model.has(producer.producerId, seq));
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged ticks are not in the stream`);

    await redis.connect();
    let problems: string[] = [];
    const served = async (): Promise<string[]> => {
      const out = compareWithRedis(model, await readRedisQuotes(redis));
      // and what every price-cache pod serves over gRPC equals it, for the producer's symbols
      for (const ip of await cluster.resolve('price-cache')) {
        for (const i of instruments) {
          const m = model.symbols.get(i.symbol);
          if (!m) {
            out.push(`${i.symbol}: not in the stream`);
            continue;
          }
          const r = await cluster.grpcurl(`${ip}:50052`, 'tickmesh.price.v1.PriceService/GetQuote', {
            symbol: i.symbol,
          });
          const q = r.quote as { seq: string; last: number; volume: string; sessionDate: string };
          if (Number(q.seq) !== m.count) out.push(`${ip} ${i.symbol}: seq ${q.seq}, stream ${m.count}`);
          else if (q.last !== fromUnits(m.last, i.decimals))
            out.push(`${ip} ${i.symbol}: last ${q.last}, stream ${fromUnits(m.last, i.decimals)}`);
          else if (q.sessionDate === m.day && Number(q.volume) !== m.volume)
            out.push(`${ip} ${i.symbol}: volume ${q.volume}, stream ${m.volume}`);
        }
      }
      return out;
    };
    try {
      await waitUntil(
        async () => {
          problems = await served();
          return problems.length === 0 ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 1000, what: 'served quotes equal to the stream' },
      );
    } catch {
      assert.deepEqual(problems, []);
    }
  } finally {
    redis.disconnect();
    await nc.close();
    await cluster.kubectl(['-n', NS, 'scale', 'deployment/simulator', '--replicas=1']);
  }
}
