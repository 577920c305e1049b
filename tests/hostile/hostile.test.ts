// Hostile and slow clients against a private stack in non-development mode (gateway
// AUTH_MODE=api-key, simulator at 1,000 ticks/s): a WebSocket client that never reads, 1,000
// connections from one IP, subscribe and message floods, an `auth` that never comes, and
// gRPC StreamQuotes calls that never read. Each limit must hold with its documented code,
// the server's memory must stay within a stated bound (RSS from /proc), and a well-behaved
// client's latency (tick event time -> receipt) is measured before and during the abuse.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import * as grpc from '@grpc/grpc-js';
import {
  CustomerServiceClient,
  type CreateApiKeyResponse,
  type CreateCustomerResponse,
  PriceServiceClient,
  type StreamQuotesResponse,
} from '@tickmesh/kit/proto';
import { createClient } from '@tickmesh/kit';
import { metricValue, startStack, waitUntil, type Stack } from '@tickmesh/harness';
import { TrackedClient } from '../faults/lib/ws-tracker.js';

/** Stated bounds (docs/reliability.md). */
const GATEWAY_RSS_BOUND = 96 * 2 ** 20; // growth under any single abuse below
const PRICE_CACHE_RSS_BOUND = 64 * 2 ** 20; // growth with 20 never-reading streams
const PER_IP = 200;

let stack: Stack;
let apiKey: string;
let reference: TrackedClient;
const latencies: Array<{ at: number; ms: number }> = [];

before(async () => {
  stack = await startStack({
    simRate: 1000,
    log: (l) => process.stderr.write(`# ${l}\n`),
    env: {
      gateway: { AUTH_MODE: 'api-key', MAX_CONNECTIONS_PER_IP: String(PER_IP) },
      'price-cache': { STREAM_SLOW_TIMEOUT_MS: '5000' },
    },
  });
  apiKey = await createApiKey();
  // The well-behaved client whose latency is watched, from its own address (not the abusers').
  reference = new TrackedClient({
    url: stack.wsUrl,
    symbols: ['THYAO', 'GARAN', 'AKBNK'],
    token: apiKey,
    localAddress: '127.0.0.9',
    onLatency: (ms) => {
      if (latencies.length < 1_000_000) latencies.push({ at: Date.now(), ms });
    },
  });
  reference.start();
  await waitUntil(() => reference.subscribed, { timeoutMs: 30_000, what: 'reference client subscribed' });
});

after(async () => {
  await reference?.close();
  await stack?.stop();
});

async function createApiKey(): Promise<string> {
  const c = createClient(CustomerServiceClient, stack.svc('customers').spec.grpcAddress!, {
    unaryDeadlineMs: 10_000,
    service: 'tickmesh.customer.v1.CustomerService',
  });
  try {
    const created = await new Promise<CreateCustomerResponse>((resolve, reject) =>
      c.createCustomer({ firstName: 'Hostile', lastName: 'Test', email: 'hostile@example.com' }, (e, r) =>
        e ? reject(e) : resolve(r),
      ),
    );
    const key = await new Promise<CreateApiKeyResponse>((resolve, reject) =>
      c.createApiKey({ customerId: created.customer!.id, name: 'hostile' }, (e, r) =>
        e ? reject(e) : resolve(r),
      ),
    );
    return key.secret;
  } finally {
    c.close();
  }
}

function percentile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** Latency percentiles of the reference client in [from, to). */
function latency(from: number, to: number): { n: number; p50: number; p99: number } {
  const v = latencies.filter((l) => l.at >= from && l.at < to).map((l) => l.ms);
  return { n: v.length, p50: percentile(v, 0.5), p99: percentile(v, 0.99) };
}

/** Samples a process's RSS every 250 ms until stopped; returns the peak. */
function rssPeak(name: 'gateway' | 'price-cache'): { stop(): number; base: number } {
  const base = stack.svc(name).rss() ?? NaN;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, stack.svc(name).rss() ?? 0)), 250);
  return {
    base,
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** A raw client: connects (from `localAddress`), records messages and its close code. */
function rawWs(opts: { localAddress?: string } = {}) {
  const ws = new WebSocket(stack.wsUrl, 'tickmesh.v1.json', { handshakeTimeout: 10_000, ...opts });
  const state = {
    ws,
    messages: [] as Array<Record<string, unknown>>,
    close: undefined as number | undefined,
    opened: false,
  };
  ws.on('open', () => (state.opened = true));
  ws.on('message', (d: Buffer) => state.messages.push(JSON.parse(d.toString()) as Record<string, unknown>));
  ws.on('close', (code: number) => (state.close = code));
  ws.on('error', () => undefined);
  return state;
}

async function authAndSubscribe(c: ReturnType<typeof rawWs>, symbols: string[] | '*'): Promise<void> {
  await waitUntil(() => c.opened, { timeoutMs: 10_000, intervalMs: 20, what: 'open' });
  c.ws.send(JSON.stringify({ op: 'auth', id: 'a', token: apiKey }));
  await waitUntil(() => c.messages.some((m) => m.type === 'reply' && m.op === 'auth'), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'auth reply',
  });
  c.ws.send(JSON.stringify({ op: 'subscribe', id: 's', symbols }));
  await waitUntil(() => c.messages.some((m) => m.type === 'reply' && m.op === 'subscribe'), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'subscribe reply',
  });
}

test('a WebSocket client that never reads is conflated, then closed with 4008; others are not slowed', async (t) => {
  await sleep(3000); // let the start-up backlog drain before the baseline
  const baselineFrom = Date.now();
  await sleep(4000);
  const baseline = latency(baselineFrom, Date.now());
  const rss = rssPeak('gateway');
  const slow = rawWs({ localAddress: '127.0.0.2' });
  await authAndSubscribe(slow, '*');
  // Stop reading: the kernel buffers fill, then the gateway's per-socket backlog.
  (slow.ws as unknown as { _socket: net.Socket })._socket.pause();
  const from = Date.now();
  const metrics0 = await stack.metrics('gateway');
  await waitUntil(() => slow.close !== undefined || closedOnServer(), {
    timeoutMs: 60_000,
    intervalMs: 250,
    what: 'the slow client to be closed',
  }).catch(() => undefined);
  async function closedOnServer(): Promise<boolean> {
    const m = await stack.metrics('gateway');
    return (metricValue(m, 'tickmesh_gateway_slow_client_closes_total') ?? 0) > 0;
  }
  const during = latency(from, Date.now());
  const peak = rss.stop();
  const metrics1 = await stack.metrics('gateway');
  const conflated =
    (metricValue(metrics1, 'tickmesh_gateway_conflated_updates_total') ?? 0) -
    (metricValue(metrics0, 'tickmesh_gateway_conflated_updates_total') ?? 0);
  const slowCloses = metricValue(metrics1, 'tickmesh_gateway_slow_client_closes_total') ?? 0;
  // The close frame sits behind the unread data: read it now.
  (slow.ws as unknown as { _socket: net.Socket })._socket.resume();
  await waitUntil(() => slow.close, { timeoutMs: 15_000, intervalMs: 50, what: 'the close code' }).catch(
    () => undefined,
  );
  t.diagnostic(
    `slow client closed with ${slow.close} after ${((Date.now() - from) / 1000).toFixed(1)} s; ${conflated} updates conflated; slow-client closes ${slowCloses}`,
  );
  t.diagnostic(
    `reference latency (event time -> receipt): before p50 ${baseline.p50} ms / p99 ${baseline.p99} ms (${baseline.n} quotes); during p50 ${during.p50} ms / p99 ${during.p99} ms (${during.n} quotes)`,
  );
  t.diagnostic(`gateway RSS ${mib(rss.base)} -> peak ${mib(peak)}`);
  assert.ok(slowCloses >= 1, 'the gateway never closed the slow client');
  assert.ok(conflated > 0, 'the slow client was never conflated');
  assert.ok(slow.close === 4008 || slow.close === 1006, `close code ${slow.close}`);
  assert.ok(during.n > 0, 'the reference client received nothing');
  assert.ok(
    during.p99 <= Math.max(1000, 4 * baseline.p99),
    `reference p99 ${during.p99} ms during vs ${baseline.p99} ms before`,
  );
  assert.equal(reference.tracker.violationCount, 0, reference.tracker.violations.join('\n'));
  assert.ok(peak - rss.base < GATEWAY_RSS_BOUND, `gateway RSS grew ${mib(peak - rss.base)}`);
});

test(`1,000 connections from one IP: ${PER_IP} accepted, the rest closed with 4009; another IP still gets in`, async (t) => {
  const rss = rssPeak('gateway');
  const from = Date.now();
  const conns: Array<ReturnType<typeof rawWs>> = [];
  for (let i = 0; i < 1000; i++) {
    conns.push(rawWs({ localAddress: '127.0.0.3' }));
    if (i % 50 === 49) await sleep(20);
  }
  await waitUntil(
    () => conns.every((c) => c.close !== undefined || c.messages.some((m) => m.type === 'welcome')),
    { timeoutMs: 60_000, what: 'every connection welcomed or closed' },
  );
  await sleep(500); // late 4009s
  const open = conns.filter((c) => c.close === undefined);
  const codes = new Map<number, number>();
  for (const c of conns) if (c.close !== undefined) codes.set(c.close, (codes.get(c.close) ?? 0) + 1);
  const other = rawWs({ localAddress: '127.0.0.4' });
  await authAndSubscribe(other, ['THYAO']);
  const peak = rss.stop();
  t.diagnostic(
    `${open.length} open, closes ${JSON.stringify([...codes])}, in ${((Date.now() - from) / 1000).toFixed(1)} s; gateway RSS ${mib(rss.base)} -> peak ${mib(peak)}`,
  );
  assert.equal(open.length, PER_IP);
  assert.deepEqual([...codes.keys()], [4009]);
  assert.equal(other.close, undefined, 'a client from another IP was refused');
  for (const c of [...conns, other]) c.ws.terminate();
  assert.ok(peak - rss.base < GATEWAY_RSS_BOUND, `gateway RSS grew ${mib(peak - rss.base)}`);
  await waitUntil(
    async () => {
      const m = await stack.metrics('gateway');
      return (metricValue(m, 'tickmesh_gateway_connections') ?? 99) <= 1;
    },
    { timeoutMs: 15_000, what: 'connections released' },
  );
});

test('subscribe floods: the per-connection limit, rate limiting, then 4029', async (t) => {
  const c = rawWs({ localAddress: '127.0.0.5' });
  await authAndSubscribe(c, ['THYAO']);
  // Over the subscription limit (200): refused whole, nothing changed.
  const many = Array.from({ length: 250 }, (_, i) => `S${i}`);
  c.ws.send(JSON.stringify({ op: 'subscribe', id: 'many', symbols: many }));
  await waitUntil(() => c.messages.some((m) => m.id === 'many'), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'too_many_symbols',
  });
  assert.equal(c.messages.find((m) => m.id === 'many')!.code, 'too_many_symbols');
  // A flood: 2,000 subscribes as fast as the socket takes them.
  for (let i = 0; i < 2000 && c.close === undefined; i++)
    c.ws.send(JSON.stringify({ op: 'subscribe', id: i, symbols: ['GARAN'] }));
  await waitUntil(() => c.close, { timeoutMs: 15_000, intervalMs: 50, what: 'the flood to be closed' });
  const limited = c.messages.filter((m) => m.code === 'rate_limited').length;
  const replies = c.messages.filter((m) => m.type === 'reply' && m.op === 'subscribe').length;
  t.diagnostic(
    `flood: ${replies} subscribes answered, ${limited} rate_limited errors, then close ${c.close}`,
  );
  assert.equal(c.close, 4029);
  assert.ok(limited > 0);
  assert.ok(replies <= 1 + 40 + 20, `${replies} subscribes got through a 20/s (burst 40) limit`);
  assert.equal(reference.tracker.violationCount, 0);
});

test('an `auth` that never comes: closed with 4002 after the auth timeout, ops before it refused', async (t) => {
  const rss = rssPeak('gateway');
  const idle = Array.from({ length: 100 }, () => rawWs({ localAddress: '127.0.0.6' }));
  await waitUntil(() => idle.every((c) => c.opened), { timeoutMs: 20_000, intervalMs: 50, what: 'all open' });
  idle[0]!.ws.send(JSON.stringify({ op: 'subscribe', id: 1, symbols: '*' }));
  const from = Date.now();
  await waitUntil(() => idle.every((c) => c.close !== undefined), {
    timeoutMs: 30_000,
    what: 'auth timeouts',
  });
  const welcome = idle[0]!.messages.find((m) => m.type === 'welcome')!;
  const peak = rss.stop();
  t.diagnostic(
    `100 silent connections closed after ${((Date.now() - from) / 1000).toFixed(1)} s (authTimeoutMs ${String(welcome.authTimeoutMs)}); codes ${JSON.stringify([...new Set(idle.map((c) => c.close))])}; gateway RSS ${mib(rss.base)} -> ${mib(peak)}`,
  );
  assert.equal(welcome.authRequired, true);
  assert.equal(idle[0]!.messages.find((m) => m.id === 1)?.code, 'not_authenticated');
  assert.ok(!idle[0]!.messages.some((m) => m.type === 'snapshot' || m.type === 'quotes'));
  assert.deepEqual([...new Set(idle.map((c) => c.close))], [4002]);
  // A wrong key: refused with 4001.
  const wrong = rawWs({ localAddress: '127.0.0.6' });
  await waitUntil(() => wrong.opened, { timeoutMs: 10_000, intervalMs: 20, what: 'open' });
  wrong.ws.send(JSON.stringify({ op: 'auth', id: 'w', token: 'tmk_aaaaaaaaaa_not-a-real-secret' }));
  await waitUntil(() => wrong.close, { timeoutMs: 10_000, intervalMs: 20, what: '4001' });
  assert.equal(wrong.close, 4001);
  assert.equal(wrong.messages.find((m) => m.id === 'w')?.code, 'auth_failed');
});

test('gRPC StreamQuotes calls that never read end with RESOURCE_EXHAUSTED; price-cache memory bounded', async (t) => {
  const address = stack.svc('price-cache').spec.grpcAddress!;
  const rss = rssPeak('price-cache');
  const before = await stack.metrics('price-cache');
  const calls = Array.from({ length: 20 }, (_, i) => {
    // One channel each (a distinct option), so one stalled connection does not stall the others.
    const client = createClient(PriceServiceClient, address, {
      unaryDeadlineMs: 5000,
      service: 'tickmesh.price.v1.PriceService',
      channelOptions: { 'tickmesh.test.channel': i },
    });
    const call = client.streamQuotes({ symbols: [], all: true, maxUpdatesPerSecond: 0 });
    const result = { client, call, code: undefined as number | undefined, messages: 0 };
    call.on('data', (_m: StreamQuotesResponse) => result.messages++);
    call.on('error', (e: grpc.ServiceError) => (result.code = e.code));
    call.on('end', () => (result.code ??= grpc.status.OK));
    call.pause(); // never read: HTTP/2 flow control stops the server's writes
    return result;
  });
  const from = Date.now();
  await waitUntil(
    async () => {
      const m = await stack.metrics('price-cache');
      return (
        (metricValue(m, 'tickmesh_price_streams_slow_ended_total') ?? 0) -
          (metricValue(before, 'tickmesh_price_streams_slow_ended_total') ?? 0) >=
        calls.length
      );
    },
    { timeoutMs: 60_000, intervalMs: 500, what: 'the server to end the stalled streams' },
  ).catch(() => undefined);
  const endedAfter = Date.now() - from;
  const peak = rss.stop();
  for (const c of calls) c.call.resume(); // read what was buffered, then the status
  await waitUntil(() => calls.every((c) => c.code !== undefined), {
    timeoutMs: 30_000,
    what: 'statuses',
  }).catch(() => undefined);
  const codes = calls.map((c) => (c.code === undefined ? 'none' : grpc.status[c.code]));
  t.diagnostic(
    `20 never-reading streams ended after ${(endedAfter / 1000).toFixed(1)} s with ${JSON.stringify([...new Set(codes)])}; price-cache RSS ${mib(rss.base)} -> peak ${mib(peak)}`,
  );
  for (const c of calls) {
    c.call.cancel();
    c.client.close();
  }
  assert.deepEqual([...new Set(codes)], ['RESOURCE_EXHAUSTED']);
  assert.ok(peak - rss.base < PRICE_CACHE_RSS_BOUND, `price-cache RSS grew ${mib(peak - rss.base)}`);
  assert.deepEqual(stack.crashes(), []);
});
