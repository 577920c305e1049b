import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { projectPath } from '@tickmesh/kit';
import {
  formatOf,
  parseCsvHeader,
  parseCsvLine,
  parseNdjsonLine,
  parseTime,
  readTickFile,
  replayDelayMs,
} from '../src/tick-file.js';

const dir = mkdtempSync(join(tmpdir(), 'tickfile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function all(path: string) {
  const out = [];
  for await (const x of readTickFile(path)) out.push(x);
  return out;
}

describe('tick files', () => {
  it('reads the shipped NDJSON and CSV samples to the same records', async () => {
    const nd = await all(projectPath('tests', 'fixtures', 'ticks-sample.ndjson'));
    const csv = await all(projectPath('tests', 'fixtures', 'ticks-sample.csv'));
    assert.ok(nd.length >= 20);
    assert.ok(nd.every((x) => x.ok));
    assert.deepEqual(
      csv.map((x) => (x.ok ? { ...x.record, line: 0 } : x)),
      nd.map((x) => (x.ok ? { ...x.record, line: 0 } : x)),
    );
  });

  it('parses times as Unix ms or zoned ISO 8601 only', () => {
    assert.equal(parseTime(1_700_000_000_000), 1_700_000_000_000);
    assert.equal(parseTime('1700000000000'), 1_700_000_000_000);
    assert.equal(parseTime('2025-01-06T07:00:00.250Z'), Date.UTC(2025, 0, 6, 7, 0, 0, 250));
    assert.equal(parseTime('2025-01-06T10:00:00+03:00'), Date.UTC(2025, 0, 6, 7));
    assert.equal(parseTime('2025-01-06T10:00:00'), undefined, 'no zone: ambiguous');
    assert.equal(parseTime(-5), undefined);
    assert.equal(parseTime('yesterday'), undefined);
  });

  it('names the line and field of a bad line, and skips blanks and comments', () => {
    assert.deepEqual(parseNdjsonLine('', 1), { ok: 'skip' });
    assert.deepEqual(parseNdjsonLine('# note', 2), { ok: 'skip' });
    assert.deepEqual(parseNdjsonLine('{oops', 3), {
      ok: false,
      error: { line: 3, message: 'not valid JSON' },
    });
    assert.deepEqual(parseNdjsonLine('[1]', 4), {
      ok: false,
      error: { line: 4, message: 'must be a JSON object' },
    });
    const bad = parseNdjsonLine('{"time":1,"symbol":"A","price":"x"}', 5);
    assert.equal(bad.ok, false);
    assert.match(bad.ok === false ? bad.error.message : '', /^price/);
    const size = parseNdjsonLine('{"time":1,"symbol":"A","price":1,"size":-2}', 6);
    assert.match(size.ok === false ? size.error.message : '', /^size/);
    const ok = parseNdjsonLine('{"time":1,"symbol":"A","price":1.5}', 7);
    assert.deepEqual(ok, {
      ok: true,
      record: { line: 7, timeMs: 1, symbol: 'A', price: 1.5, size: 0, bid: undefined, ask: undefined },
    });
  });

  it('reads CSV columns by header name and refuses unknown or missing ones', () => {
    const cols = parseCsvHeader('symbol, price, time, ask');
    const r = parseCsvLine('THYAO,285.5,5,285.75', 2, cols);
    assert.deepEqual(r, {
      ok: true,
      record: { line: 2, timeMs: 5, symbol: 'THYAO', price: 285.5, size: 0, bid: undefined, ask: 285.75 },
    });
    assert.equal(parseCsvLine('THYAO,285.5', 3, cols).ok, false);
    assert.throws(() => parseCsvHeader('time,symbol,price,venue'), /unknown column/);
    assert.throws(() => parseCsvHeader('time,symbol'), /price is required/);
  });

  it('streams a file with bad lines as errors in place', async () => {
    const path = join(dir, 'mixed.ndjson');
    writeFileSync(path, '{"time":1,"symbol":"A","price":1}\nnot json\n\n{"time":3,"symbol":"B","price":2}\n');
    const out = await all(path);
    assert.deepEqual(
      out.map((x) => (x.ok ? x.record.line : -x.error.line)),
      [1, -2, 4],
    );
    assert.equal(formatOf('x.jsonl'), 'ndjson');
    assert.throws(() => formatOf('x.txt'));
  });

  it('spaces records by their time gaps divided by the speed', () => {
    assert.equal(replayDelayMs(1000, 3000, 1, 0), 2000);
    assert.equal(replayDelayMs(1000, 3000, 10, 0), 200);
    assert.equal(replayDelayMs(1000, 3000, 10, 150), 50);
    assert.equal(replayDelayMs(1000, 3000, Infinity, 0), 0);
    assert.equal(replayDelayMs(1000, 500, 1, 0), 0, 'out-of-order times do not wait');
  });
});
