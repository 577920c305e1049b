import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseDurationS, parseGhzReport } from './ghz.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

void describe('ghz report parsing', () => {
  void it('reads rate, percentiles (ns → ms) and status codes of a captured report', () => {
    const s = parseGhzReport(fixture('ghz-getquote.json'));
    assert.equal(s.count, 20750);
    assert.equal(s.ok, 20750);
    assert.equal(s.errors, 0);
    assert.equal(s.rps, 6912.9);
    assert.equal(s.p50Ms, 4.68);
    assert.equal(s.p99Ms, 28.75);
    assert.equal(s.averageMs, 6.63);
    assert.equal(s.durationMs, 3001.63);
    assert.equal(s.concurrency, 50);
    assert.equal(s.connections, 1);
    assert.equal(s.endReason, 'timeout');
    assert.deepEqual(s.topErrors, []);
  });

  void it('counts failed calls and keeps their messages', () => {
    const s = parseGhzReport(fixture('ghz-errors.json'));
    assert.equal(s.count, 40);
    assert.equal(s.ok, 0);
    assert.equal(s.errors, 40);
    assert.deepEqual(s.statusCodes, { Unimplemented: 40 });
    assert.equal(s.topErrors.length, 1);
    assert.match(s.topErrors[0]!.message, /Unimplemented/);
  });

  void it('rejects what is not a ghz report', () => {
    assert.throws(() => parseGhzReport('{"hello":1}'), /not a ghz JSON report/);
    assert.throws(() => parseGhzReport('not json'));
  });

  void it('parses ghz durations', () => {
    assert.equal(parseDurationS('10s'), 10);
    assert.equal(parseDurationS('500ms'), 0.5);
    assert.equal(parseDurationS('2m'), 120);
    assert.throws(() => parseDurationS('ten seconds'));
  });

  void it('the committed configs are valid ghz configs for reflection and plaintext', () => {
    for (const name of ['get-quote', 'list-quotes', 'get-customer', 'create-customer', 'publish-tick']) {
      const c = JSON.parse(readFileSync(new URL(`../ghz/${name}.json`, import.meta.url), 'utf8')) as Record<
        string,
        unknown
      >;
      assert.match(String(c.call), /^tickmesh\.[a-z]+\.v1\.[A-Za-z]+Service\.[A-Za-z]+$/, name);
      assert.equal(c.insecure, true, name);
      assert.equal(c.proto, undefined, `${name} must use reflection`);
      assert.equal(c.protoset, undefined, `${name} must use reflection`);
      assert.equal(typeof c.concurrency, 'number', name);
      assert.ok(parseDurationS(String(c.duration)) > 0, name);
      assert.equal(typeof c.data, 'object', name);
    }
  });
});
