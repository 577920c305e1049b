// The terminal watcher: its screen rendering (pure) and its reconnecting
// client against a real gateway that goes away and comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from '@tickmesh/harness';
import { WatchClient, type ConnectionState, type WireQuote } from '../src/watch-client.js';
import { applyWatchQuote, renderScreen, type WatchRow } from '../src/watch-table.js';
import { ScriptedMarket, startScriptedUpstream } from './support/scripted-upstream.js';
import { startTestGateway } from './support/gateway-harness.js';

const wq = (symbol: string, seq: number, last: number, extra: Partial<WireQuote> = {}): WireQuote => ({
  symbol,
  seq,
  epoch: 1,
  last,
  bid: Number((last - 0.05).toFixed(2)),
  ask: Number((last + 0.05).toFixed(2)),
  open: 100,
  high: 101,
  low: 99,
  prevClose: 100,
  volume: 1234567,
  change: Number((last - 100).toFixed(2)),
  changePct: Number((last - 100).toFixed(2)),
  ts: Date.UTC(2025, 0, 2, 10, 0, 0, 123),
  ...extra,
});

void test('the screen: sorted rows, decimals kept, conflated marked, state shown; old seqs ignored', () => {
  const rows = new Map<string, WatchRow>();
  applyWatchQuote(rows, wq('THYAO', 5, 100.5), 0, false);
  applyWatchQuote(rows, wq('AKBNK', 2, 60.25), 0, false);
  applyWatchQuote(rows, wq('THYAO', 6, 100.1, { conflated: true }), 10, true);
  applyWatchQuote(rows, wq('THYAO', 4, 999), 20, true);
  assert.equal(rows.get('THYAO')!.quote.seq, 6);
  assert.equal(rows.get('THYAO')!.move, 'down');
  const text = renderScreen(
    {
      rows,
      state: { kind: 'waiting', retryAt: 3000, reason: 'closed (1006)' },
      url: 'ws://x/ws',
      updatesPerSecond: 7,
    },
    { color: false, now: 1000 },
  );
  const lines = text.split('\n');
  assert.match(lines[0]!, /closed \(1006\) · retry in 2s/);
  const body = lines.filter((l) => /^(AKBNK|THYAO)/.test(l));
  assert.deepEqual(
    body.map((l) => l.split(/\s+/)[0]),
    ['AKBNK', 'THYAO'],
  );
  assert.match(body[1]!, /100\.10\s+\+0\.10\s+100\.05\s+100\.15\s+1,234,567\s+\S+\s+6\*$/);
  assert.match(text, /7 updates\/s/);
  assert.ok(!text.includes('\x1b['), 'no ANSI without colour');
  const colored = renderScreen(
    { rows, state: { kind: 'live' }, url: 'u', updatesPerSecond: 0 },
    { color: true, now: 15 },
  );
  assert.ok(colored.includes('\x1b[41;97m'), 'a fresh fall flashes red');
});

void test('the watcher client reconnects by itself when the gateway restarts', async () => {
  const market = new ScriptedMarket([{ symbol: 'GARAN', price: 120 }]);
  const up = await startScriptedUpstream(market);
  let gw = await startTestGateway(up.port);
  const port = gw.port;
  const states: ConnectionState['kind'][] = [];
  const seqs: number[] = [];
  const client = new WatchClient({
    url: gw.url,
    symbols: ['GARAN'],
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    onState: (s) => states.push(s.kind),
    onQuotes: (qs) => seqs.push(...qs.map((q) => q.seq)),
    onResnapshot: () => undefined,
    onError: () => undefined,
  });
  try {
    await waitUntil(() => gw.feed.isLive, { timeoutMs: 15_000, intervalMs: 25, what: 'upstream live' });
    client.start();
    await waitUntil(() => seqs.length > 0, { timeoutMs: 10_000, intervalMs: 25, what: 'snapshot' });
    await gw.close();
    await waitUntil(() => states.includes('waiting'), {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: 'noticed the loss',
    });
    gw = await startTestGateway(up.port, { HTTP_PORT: String(port) });
    await waitUntil(() => gw.feed.isLive, { timeoutMs: 15_000, intervalMs: 25, what: 'upstream live again' });
    const t = market.tick('GARAN');
    await waitUntil(() => seqs.includes(t.seq), {
      timeoutMs: 20_000,
      intervalMs: 25,
      what: 'updates after the reconnect',
    });
    assert.equal(states[states.length - 1], 'live');
  } finally {
    client.stop();
    await gw.close();
    await up.stop();
  }
});
