// The local cluster from a test: its scripts (deploy/k8s-local), kubectl with the cluster's
// kubeconfig, names resolved by the cluster's DNS, grpcurl against what a Service names.
// Every address here is inside the cluster's network namespace on this machine.
import { execFile, spawn } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, findTool } from '../lib/render.js';

const run = promisify(execFile);
const SCRIPTS = join(REPO_ROOT, 'deploy', 'k8s-local');

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
