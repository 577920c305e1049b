import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientIp, ConnectionCounter, TokenBucket } from '../src/limits.js';
import { TtlCache } from '../src/ttl-cache.js';
import { fullJitterDelay } from '../src/backoff.js';
import { FlushPacer } from '../src/flush-pacer.js';

void test('token bucket: a burst, then the sustained rate', () => {
  const b = new TokenBucket(10, 5, 0);
  for (let i = 0; i < 5; i++) assert.equal(b.take(0), true, `burst ${i}`);
  assert.equal(b.take(0), false);
  assert.equal(b.take(50), false, 'half a token after 50 ms');
  assert.equal(b.take(100), true, 'one token after 100 ms at 10/s');
  assert.equal(b.take(100), false);
  assert.equal(b.available(10_000), 5, 'never above capacity');
  assert.equal(b.take(9_000), true, 'a clock going backwards adds nothing and breaks nothing');
});

void test('connection counter: per key and in total, released to zero', () => {
  const c = new ConnectionCounter(2, 3);
  assert.equal(c.tryAcquire('a'), 'ok');
  assert.equal(c.tryAcquire('a'), 'ok');
  assert.equal(c.tryAcquire('a'), 'per-ip');
  assert.equal(c.tryAcquire('b'), 'ok');
  assert.equal(c.tryAcquire('c'), 'total');
  c.release('a');
  assert.equal(c.count('a'), 1);
  assert.equal(c.tryAcquire('c'), 'ok');
  c.release('a');
  c.release('b');
  c.release('c');
  c.release('zzz');
  assert.equal(c.total, 0);
  assert.equal(c.count('a'), 0);
});

void test('client IP: socket address unless proxies are trusted; spoofed entries ignored', () => {
  assert.equal(clientIp('::ffff:10.0.0.9', '1.2.3.4', 0), '10.0.0.9');
  assert.equal(clientIp('10.0.0.9', '1.2.3.4', 1), '1.2.3.4');
  assert.equal(
    clientIp('10.0.0.9', '6.6.6.6, 1.2.3.4', 1),
    '1.2.3.4',
    'the client-written left part is ignored',
  );
  assert.equal(clientIp('10.0.0.9', '6.6.6.6, 1.2.3.4, 10.0.0.2', 2), '1.2.3.4');
  assert.equal(clientIp('10.0.0.9', 'garbage<script>', 1), '10.0.0.9');
  assert.equal(clientIp('10.0.0.9', undefined, 1), '10.0.0.9');
  assert.equal(clientIp('10.0.0.9', ['1.2.3.4', '5.6.7.8'], 1), '5.6.7.8');
  assert.equal(clientIp(undefined, undefined, 0), 'unknown');
});

void test('TTL cache: expires, and evicts the least recently used beyond its size', () => {
  let now = 0;
  const c = new TtlCache<string>(2, () => now);
  c.set('a', 'A', 100);
  c.set('b', 'B', 100);
  assert.equal(c.get('a'), 'A'); // a is now most recent
  c.set('c', 'C', 100);
  assert.equal(c.get('b'), undefined, 'b evicted');
  assert.equal(c.get('a'), 'A');
  now = 100;
  assert.equal(c.get('a'), undefined, 'expired');
  c.set('z', 'Z', 0);
  assert.equal(c.get('z'), undefined, 'ttl 0 is not cached');
  assert.ok(c.size <= 2);
});

void test('backoff: full jitter below an exponential cap', () => {
  assert.equal(
    fullJitterDelay(0, 100, 5000, () => 0.999999),
    99,
  );
  assert.equal(
    fullJitterDelay(3, 100, 5000, () => 0.5),
    400,
  );
  assert.equal(
    fullJitterDelay(10, 100, 5000, () => 0.999999),
    4999,
  );
  assert.equal(
    fullJitterDelay(1000, 100, 5000, () => 0.5),
    2500,
    'huge attempt counts stay finite',
  );
  assert.equal(
    fullJitterDelay(5, 100, 5000, () => 0),
    0,
  );
});

void test('flush pacer: no window when flushes are cheap, window = factor x flush time under load, capped', () => {
  const p = new FlushPacer({ factor: 1, maxWindowMs: 25, smoothing: 1 });
  assert.equal(p.delayMs(0), 0, 'first flush at once');
  p.record(0.05, 0.05);
  assert.ok(p.delayMs(1) === 0, 'idle: the next update goes out at once');
  p.record(18, 8); // an 8 ms flush
  assert.equal(p.windowMs, 8);
  assert.equal(p.delayMs(18), 8, 'right after a long flush: wait one window');
  assert.equal(p.delayMs(30), 0, 'the window has passed: at once');
  p.record(130, 100); // a 100 ms flush
  assert.equal(p.windowMs, 25, 'capped');
  const q = new FlushPacer({ factor: 0, maxWindowMs: 25 });
  q.record(50, 50);
  assert.equal(q.delayMs(50), 0, 'factor 0 never batches');
  const s = new FlushPacer({ factor: 2, maxWindowMs: 100, smoothing: 0.5 });
  s.record(10, 10);
  s.record(20, 10);
  s.record(40, 20);
  assert.equal(s.windowMs, 30, 'moving average of 10, 10, 20 with weight 0.5 = 15, x2');
});

void test('flush pacer: the window follows the CPU a flush used, not the time it was preempted', () => {
  const p = new FlushPacer({ factor: 1, maxWindowMs: 25, smoothing: 1 });
  p.record(20, 20, 5); // 20 ms on the clock, 5 ms of CPU: descheduled for 15 ms
  assert.equal(p.windowMs, 5);
  assert.equal(p.delayMs(20), 5);
  p.record(32, 2, 3); // other threads' CPU counted too: never more than the wall time
  assert.equal(p.windowMs, 2);
});
