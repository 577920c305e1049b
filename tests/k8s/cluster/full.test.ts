// make test-k8s-full: what changes a running mesh, on the local cluster (deploy/k8s-local):
// a rolling upgrade from the last release's image to the current one under ingest load
// (persisted formats must carry across one version step: Redis keys, checkpoints, subjects,
// protos), a rolling restart of the gateway with its WebSocket clients, and the ghz Job.
// Starts the cluster when none runs and stops it afterwards (TICKMESH_K8S_KEEP=1 keeps it).
import './grpc-env.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { loadUniverse } from '@tickmesh/kit';
import { waitUntil } from '@tickmesh/harness';
import { ProducerLoad } from '../../faults/lib/producers.js';
import { REPO_ROOT } from '../lib/render.js';
import {
  Cluster,
  NS,
  assertServedExactly,
  buildAll,
  clusterEnv,
  clusterRunning,
  script,
  type Workload,
} from './lib.js';

const RELEASE = /^PREVIOUS_RELEASE=(\S+)$/m.exec(
  readFileSync(join(REPO_ROOT, 'deploy', 'versions.env'), 'utf8'),
)?.[1];
const TICKMESH_DEPLOYMENTS = ['ticker', 'simulator', 'price-cache', 'customers', 'gateway'];

let cluster: Cluster;
let startedHere = false;
let previousOverlay: string;

/** The images every pod of the tickmesh Deployments runs (pods on their way out aside). */
async function runningImages(): Promise<string[]> {
  const pods = await cluster.json<{
    items: (Workload & {
      metadata: { deletionTimestamp?: string };
      spec: { containers: { image: string }[] };
    })[];
  }>(['-n', NS, 'get', 'pods', '-l', `app.kubernetes.io/name in (${TICKMESH_DEPLOYMENTS.join(',')})`]);
  const live = pods.items.filter((p) => !p.metadata.deletionTimestamp);
  return [...new Set(live.flatMap((p) => p.spec.containers.map((c) => c.image)))].sort();
}

/** A WebSocket client through the gateway Service that reconnects after every close. */
class Client {
  ws: WebSocket | undefined;
  closes: number[] = [];
  welcomes: { upstream?: string }[] = [];
  quotesAt: number[] = [];
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly symbols: string[],
  ) {}

  connect(): void {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { type: string; upstream?: string };
      if (msg.type === 'welcome') {
        this.welcomes.push(msg);
        ws.send(JSON.stringify({ op: 'subscribe', id: 1, symbols: this.symbols }));
      }
      if (msg.type === 'quotes' || msg.type === 'snapshot') this.quotesAt.push(Date.now());
    });
    ws.on('error', () => undefined);
    ws.on('close', (code: number) => {
      this.closes.push(code);
      // reconnect with jitter, as the close code 1001 asks
      if (!this.stopped) setTimeout(() => this.connect(), 100 + Math.random() * 400);
    });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.close();
  }
}

void describe('k8s: upgrades and restarts on a local cluster', { timeout: 45 * 60_000 }, () => {
  before(
    async () => {
      assert.ok(RELEASE, 'PREVIOUS_RELEASE missing from deploy/versions.env');
      const env = await clusterEnv();
      startedHere = !clusterRunning(env);
      await buildAll();
      await script('images.sh', ['build-previous']);
      await script('cluster.sh', ['up']);
      await script('images.sh', ['load', `tickmesh:${RELEASE}`]);
      cluster = new Cluster(env);
      // the local overlay with the release's image in place of the current one
      previousOverlay = mkdtempSync(join(tmpdir(), 'tickmesh-previous-'));
      writeFileSync(
        join(previousOverlay, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          'resources:',
          // kustomize takes no absolute path here
          `  - ${relative(previousOverlay, join(REPO_ROOT, 'k8s', 'overlays', 'local'))}`,
          'images:',
          '  - name: tickmesh',
          `    newTag: ${RELEASE}`,
          '',
        ].join('\n'),
      );
    },
    { timeout: 30 * 60_000 },
  );

  after(
    async () => {
      if (previousOverlay) rmSync(previousOverlay, { recursive: true, force: true });
      if (startedHere && process.env.TICKMESH_K8S_KEEP !== '1') await script('cluster.sh', ['down']);
    },
    { timeout: 5 * 60_000 },
  );

  void it(`deploys the last release (${RELEASE}) on a fresh namespace`, async () => {
    await cluster.kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--timeout=300s'], 320_000);
    await script('cluster.sh', ['volumes']);
    await script('deploy.sh', [previousOverlay]);
    assert.deepEqual(await runningImages(), [`tickmesh:${RELEASE}`]);
  });

  void it('rolls to the current image under ingest load with no acknowledged tick lost', async () => {
    const universe = loadUniverse('bist30');
    const instruments = universe.instruments.slice(4, 8);
    const producer = new ProducerLoad(
      `k8s-upgrade-${Date.now().toString(36)}`,
      cluster.grpcTarget('ticker', 50051),
      instruments,
      200,
      Date.now() % 100_000,
    );
    producer.start();
    try {
      await sleep(3000);
      // the upgrade itself: the same apply with the current image; every Deployment rolls
      await script('deploy.sh');
      assert.deepEqual(await runningImages(), ['tickmesh:local']);
      await sleep(3000);
    } finally {
      await producer.pause();
    }
    // the ticker pods the producer knew are gone: it reconnects through the new addresses
    await producer.flush(90_000);
    await producer.stop();
    assert.deepEqual([...producer.rejected], [], 'ticks the ticker rejected');
    assert.ok(producer.sent.length >= 1000, `only ${producer.sent.length} ticks sent`);
    await assertServedExactly(cluster, universe, producer, instruments);
  });

  void it('a rolling restart of the gateway moves every client with 1001 to a pod whose feed is up', async () => {
    const [gw] = await cluster.resolve('gateway');
    const clients = Array.from({ length: 20 }, () => new Client(`ws://${gw}:8080/ws`, ['THYAO', 'GARAN']));
    for (const c of clients) c.connect();
    try {
      await waitUntil(() => clients.every((c) => c.quotesAt.length > 0), {
        timeoutMs: 30_000,
        what: 'quotes at every client',
      });
      const before = (
        await cluster.json<{ items: Workload[] }>([
          '-n',
          NS,
          'get',
          'pods',
          '-l',
          'app.kubernetes.io/name=gateway',
        ])
      ).items.map((p) => p.metadata.name);
      await cluster.kubectl(['-n', NS, 'rollout', 'restart', 'deployment/gateway']);
      await cluster.kubectl(['-n', NS, 'rollout', 'status', 'deployment/gateway', '--timeout=300s'], 320_000);
      await waitUntil(
        async () => {
          const now = (
            await cluster.json<{ items: Workload[] }>([
              '-n',
              NS,
              'get',
              'pods',
              '-l',
              'app.kubernetes.io/name=gateway',
            ])
          ).items.map((p) => p.metadata.name);
          return now.every((n) => !before.includes(n)) ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1000, what: 'the old gateway pods gone' },
      );
      const moved = Date.now();
      await waitUntil(() => clients.every((c) => c.quotesAt.some((t) => t > moved)), {
        timeoutMs: 30_000,
        what: 'quotes at every client after the restart',
      });
      for (const [i, c] of clients.entries()) {
        assert.ok(c.closes.length >= 1, `client ${i} was never moved`);
        assert.deepEqual([...new Set(c.closes)], [1001], `client ${i} close codes`);
        // make-before-break: the pod a client lands on already has its upstream feed
        assert.deepEqual(
          c.welcomes.map((w) => w.upstream),
          c.welcomes.map(() => 'up'),
          `client ${i} welcomes`,
        );
      }
    } finally {
      for (const c of clients) c.stop();
    }
  });

  void it('the ghz Job completes with its figures in the log', async (t) => {
    const job = join(REPO_ROOT, 'k8s', 'overlays', 'local', 'ghz');
    await cluster.kubectl(['delete', '-k', job, '--ignore-not-found', '--wait=true']);
    await cluster.kubectl(['apply', '--server-side', '-k', job]);
    await cluster.kubectl(
      ['-n', NS, 'wait', '--for=condition=complete', 'job/ghz', '--timeout=300s'],
      320_000,
    );
    const log = await cluster.kubectl(['-n', NS, 'logs', 'job/ghz']);
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(log)?.[1];
    const ok = Number(/\[OK\]\s+(\d+) responses/.exec(log)?.[1] ?? 0);
    t.diagnostic(`ghz: ${rps} requests/s, ${ok} OK; ${/99 % in [^\n]+/.exec(log)?.[0] ?? ''}`);
    assert.ok(rps && ok > 1000, `no ghz figures in the log:\n${log}`);
    // ghz ends at --duration with its 50 calls still in flight and reports those as
    // Unavailable (closed connection); any other failure is the mesh's
    const failed = [...log.matchAll(/\[(\w+)\]\s+(\d+) responses/g)]
      .filter((m) => m[1] !== 'OK')
      .reduce((sum, m) => sum + Number(m[2]), 0);
    assert.ok(failed <= 50, `${failed} failed calls:\n${log}`);
    const errors = log.split('\n').filter((l) => l.includes('rpc error'));
    assert.deepEqual(
      errors.filter((l) => !l.includes('use of closed network connection')),
      [],
      'errors other than the calls in flight at the end',
    );
  });
});
