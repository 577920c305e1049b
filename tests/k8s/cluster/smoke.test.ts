// make test-k8s: the mesh in pods on the local single-node cluster (deploy/k8s-local),
// deployed as skaffold's kubectl deployer does it, and used through the cluster's Services:
// health of every service, quotes moving, a WebSocket client fed through the gateway, and
// a price-cache pod deleted under ingest with no acknowledged tick lost. Starts the cluster
// when none runs and stops it afterwards (TICKMESH_K8S_KEEP=1 keeps it for a look around).
import './grpc-env.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
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

const GRPC = {
  ticker: { port: 50051, health: 'tickmesh.ingest.v1.IngestService' },
  'price-cache': { port: 50052, health: 'tickmesh.price.v1.PriceService' },
  customers: { port: 50053, health: 'tickmesh.customer.v1.CustomerService' },
} as const;

let cluster: Cluster;
let startedHere = false;

void describe('k8s: the mesh on a local cluster', { timeout: 30 * 60_000 }, () => {
  before(
    async () => {
      const env = await clusterEnv();
      startedHere = !clusterRunning(env);
      // everything up to a running, empty cluster (binaries and images cached after a first run)
      await buildAll();
      await script('cluster.sh', ['up']);
      cluster = new Cluster(env);
    },
    { timeout: 25 * 60_000 },
  );

  after(
    async () => {
      if (startedHere && process.env.TICKMESH_K8S_KEEP !== '1') await script('cluster.sh', ['down']);
    },
    { timeout: 5 * 60_000 },
  );

  void it('both overlays pass a server-side dry run', async () => {
    // the namespace first: a dry run creates nothing, and every other object lives in it
    await cluster.kubectl(['apply', '--server-side', '-f', `${REPO_ROOT}/k8s/base/namespace.yaml`]);
    // a Job's pod template is immutable: the one of an earlier deploy goes (as deploy.sh does)
    await cluster.kubectl(['-n', NS, 'delete', 'job', 'customers-migrate', '--ignore-not-found']);
    for (const overlay of ['kind', 'local']) {
      const out = await cluster.kubectl([
        'apply',
        '--server-side',
        '--dry-run=server',
        '-k',
        `${REPO_ROOT}/k8s/overlays/${overlay}`,
      ]);
      assert.match(out, /deployment\.apps\/gateway serverside-applied \(server dry run\)/, overlay);
    }
  });

  void it('deploys (kubectl apply --server-side -k k8s/overlays/local): every workload ready', async () => {
    await script('deploy.sh');
    const problems: string[] = [];
    for (const kind of ['deployments', 'statefulsets'] as const) {
      const list = await cluster.json<{ items: Workload[] }>(['-n', NS, 'get', kind]);
      assert.ok(list.items.length > 0, `no ${kind}`);
      for (const w of list.items) {
        const want = w.spec?.replicas ?? 1;
        if ((w.status?.readyReplicas ?? 0) < want)
          problems.push(`${kind}/${w.metadata.name}: ${w.status?.readyReplicas ?? 0}/${want} ready`);
      }
    }
    const jobs = await cluster.json<{ items: Workload[] }>(['-n', NS, 'get', 'jobs']);
    for (const j of jobs.items)
      if ((j.status?.succeeded ?? 0) < (j.spec?.completions ?? 1))
        problems.push(`job/${j.metadata.name}: not complete`);
    assert.deepEqual(problems, []);
    const pc = await cluster.json<Workload>(['-n', NS, 'get', 'deployment', 'price-cache']);
    assert.equal(pc.status?.readyReplicas, 2, 'the local overlay runs two price-cache replicas');
  });

  void it('every gRPC service answers health SERVING on every address its Service gives', async () => {
    for (const [svc, { port, health }] of Object.entries(GRPC)) {
      const ips = await cluster.resolve(svc);
      assert.ok(ips.length > 0, `${svc}: no address`);
      for (const ip of ips) {
        const r = await cluster.grpcurl(`${ip}:${port}`, 'grpc.health.v1.Health/Check', { service: health });
        assert.equal(r.status, 'SERVING', `${svc} at ${ip}`);
      }
    }
    const gw = await cluster.resolve('gateway');
    assert.equal(gw.length, 1, 'gateway is a ClusterIP Service: one virtual address');
    const res = await fetch(`http://${gw[0]}:8080/readyz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, 'gateway /readyz through its Service');
  });

  void it('GetQuote moves (the simulator feeds the mesh)', async () => {
    const addr = async () => `${(await cluster.resolve('price-cache'))[0]}:50052`;
    const seqOf = async () =>
      Number(
        (
          (
            await cluster.grpcurl(await addr(), 'tickmesh.price.v1.PriceService/GetQuote', {
              symbol: 'THYAO',
            })
          ).quote as { seq: string }
        ).seq,
      );
    const first = await waitUntil(async () => (await seqOf().catch(() => 0)) || undefined, {
      timeoutMs: 60_000,
      what: 'a THYAO quote',
    });
    const later = await waitUntil(async () => ((await seqOf()) > first ? true : undefined), {
      timeoutMs: 30_000,
      what: `THYAO seq past ${first}`,
    });
    assert.ok(later);
  });

  void it('a WebSocket client gets a snapshot and live quotes through the gateway Service', async () => {
    const [gw] = await cluster.resolve('gateway');
    const ws = new WebSocket(`ws://${gw}:8080/ws`);
    const seen: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no live quotes within 30 s; got ${seen.join(',')}`)),
        30_000,
      );
      ws.on('error', reject);
      ws.on('message', (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as { type: string };
        seen.push(msg.type);
        if (msg.type === 'welcome')
          ws.send(JSON.stringify({ op: 'subscribe', id: 1, symbols: ['THYAO', 'GARAN'] }));
        if (msg.type === 'quotes' && seen.includes('snapshot')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    try {
      await done;
    } finally {
      ws.close();
    }
  });

  void it('deleting a price-cache pod under ingest loses no acknowledged tick', async () => {
    const universe = loadUniverse('bist30');
    const instruments = universe.instruments.slice(0, 4);
    const producerId = `k8s-smoke-${Date.now().toString(36)}`;
    const producer = new ProducerLoad(
      producerId,
      cluster.grpcTarget('ticker', 50051),
      instruments,
      200,
      Date.now() % 100_000,
    );
    producer.start();
    try {
      await sleep(3000);
      const pods = await cluster.json<{ items: Workload[] }>([
        '-n',
        NS,
        'get',
        'pods',
        '-l',
        'app.kubernetes.io/name=price-cache',
      ]);
      const victim = pods.items[0]?.metadata.name;
      assert.ok(victim, 'no price-cache pod');
      await cluster.kubectl(['-n', NS, 'delete', 'pod', victim, '--wait=false']);
      await waitUntil(
        async () => {
          const d = await cluster.json<Workload>(['-n', NS, 'get', 'deployment', 'price-cache']);
          const names = (
            await cluster.json<{ items: Workload[] }>([
              '-n',
              NS,
              'get',
              'pods',
              '-l',
              'app.kubernetes.io/name=price-cache',
            ])
          ).items.map((p) => p.metadata.name);
          return d.status?.readyReplicas === 2 && !names.includes(victim) ? true : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 1000, what: `two ready price-cache pods without ${victim}` },
      );
      await sleep(3000);
    } finally {
      await producer.pause();
    }
    await producer.flush(60_000);
    await producer.stop();
    assert.deepEqual([...producer.rejected], [], 'ticks the ticker rejected');
    assert.ok(producer.sent.length >= 1000, `only ${producer.sent.length} ticks sent`);

    await assertServedExactly(cluster, universe, producer, instruments);
  });
});
