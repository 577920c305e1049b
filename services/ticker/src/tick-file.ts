// Tick files for replay (docs/ingest.md "Tick files"): NDJSON, one object
// per line, or CSV with a header line. Fields: time (Unix ms or ISO 8601),
// symbol, price, and optionally size, bid, ask. This module only parses and
// checks the shape of each line; the ingest API applies the market rules
// (universe, tick grid, bid <= ask) and rejects what breaks them.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export type TickFileFormat = 'ndjson' | 'csv';

export interface TickRecord {
  /** 1-based line number in the file. */
  line: number;
  timeMs: number;
  symbol: string;
  price: number;
  size: number;
  bid: number | undefined;
  ask: number | undefined;
}

export interface LineError {
  line: number;
  message: string;
}

export type ParsedLine = { ok: true; record: TickRecord } | { ok: false; error: LineError } | { ok: 'skip' };

export function formatOf(path: string): TickFileFormat {
  if (/\.(ndjson|jsonl)$/i.test(path)) return 'ndjson';
  if (/\.csv$/i.test(path)) return 'csv';
  throw new Error(`cannot tell the format of ${path}: use .ndjson, .jsonl or .csv (or --format)`);
}

/** Unix ms from a number or an ISO 8601 string with a zone; undefined when neither. */
export function parseTime(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === 'string') {
    if (/^\d+$/.test(value)) return parseTime(Number(value));
    // A zone is required: a bare local time would mean different instants on different machines.
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) return undefined;
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

function record(line: number, fields: Record<string, unknown>): ParsedLine {
  const fail = (message: string): ParsedLine => ({ ok: false, error: { line, message } });
  const timeMs = parseTime(fields.time);
  if (timeMs === undefined) return fail('time: must be Unix milliseconds or an ISO 8601 time with a zone');
  if (typeof fields.symbol !== 'string' || fields.symbol === '') return fail('symbol: is required');
  const price = toNumber(fields.price);
  if (price === undefined) return fail('price: must be a number');
  let size = 0;
  if (fields.size !== undefined && fields.size !== '') {
    const s = toNumber(fields.size);
    if (s === undefined || !Number.isSafeInteger(s) || s < 0) return fail('size: must be an integer >= 0');
    size = s;
  }
  const optionalPrice = (name: 'bid' | 'ask'): number | undefined | 'bad' => {
    const v = fields[name];
    if (v === undefined || v === '' || v === null) return undefined;
    return toNumber(v) ?? 'bad';
  };
  const bid = optionalPrice('bid');
  if (bid === 'bad') return fail('bid: must be a number when given');
  const ask = optionalPrice('ask');
  if (ask === 'bad') return fail('ask: must be a number when given');
  return { ok: true, record: { line, timeMs, symbol: fields.symbol, price, size, bid, ask } };
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v.trim())) return Number(v);
  return undefined;
}

/** Parses one NDJSON line. Blank lines and lines starting with # are skipped. */
export function parseNdjsonLine(text: string, line: number): ParsedLine {
  const t = text.trim();
  if (t === '' || t.startsWith('#')) return { ok: 'skip' };
  let value: unknown;
  try {
    value = JSON.parse(t);
  } catch {
    return { ok: false, error: { line, message: 'not valid JSON' } };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: { line, message: 'must be a JSON object' } };
  }
  return record(line, value as Record<string, unknown>);
}

const CSV_COLUMNS = ['time', 'symbol', 'price', 'size', 'bid', 'ask'];

/** Reads the CSV header: the column index of each known field. */
export function parseCsvHeader(text: string): Map<string, number> {
  const names = text.split(',').map((c) => c.trim().toLowerCase());
  const unknown = names.filter((n) => !CSV_COLUMNS.includes(n));
  if (unknown.length > 0)
    throw new Error(
      `CSV header: unknown column(s) ${unknown.join(', ')}; allowed: ${CSV_COLUMNS.join(', ')}`,
    );
  for (const required of ['time', 'symbol', 'price']) {
    if (!names.includes(required)) throw new Error(`CSV header: column ${required} is required`);
  }
  return new Map(names.map((n, i) => [n, i]));
}

/** Parses one CSV data line (plain comma-separated cells, no quoting). */
export function parseCsvLine(text: string, line: number, columns: Map<string, number>): ParsedLine {
  const t = text.trim();
  if (t === '' || t.startsWith('#')) return { ok: 'skip' };
  const cells = t.split(',').map((c) => c.trim());
  if (cells.length !== columns.size) {
    return { ok: false, error: { line, message: `expected ${columns.size} cells, found ${cells.length}` } };
  }
  const fields: Record<string, unknown> = {};
  for (const [name, i] of columns) fields[name] = cells[i];
  return record(line, fields);
}

/** Streams the records of a tick file, line by line (files of any size). Bad lines come out as errors. */
export async function* readTickFile(
  path: string,
  format: TickFileFormat = formatOf(path),
): AsyncGenerator<{ ok: true; record: TickRecord } | { ok: false; error: LineError }> {
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  let columns: Map<string, number> | undefined;
  for await (const text of lines) {
    n++;
    let parsed: ParsedLine;
    if (format === 'ndjson') {
      parsed = parseNdjsonLine(text, n);
    } else if (!columns) {
      if (text.trim() === '' || text.trim().startsWith('#')) continue;
      columns = parseCsvHeader(text);
      continue;
    } else {
      parsed = parseCsvLine(text, n, columns);
    }
    if (parsed.ok !== 'skip') yield parsed;
  }
}

/**
 * How long to wait before sending a record: its offset from the first
 * record's time divided by `speed`, minus the time already spent. Infinity
 * speed means "as fast as possible". Out-of-order times never wait.
 */
export function replayDelayMs(
  firstTimeMs: number,
  recordTimeMs: number,
  speed: number,
  elapsedMs: number,
): number {
  if (!Number.isFinite(speed)) return 0;
  const due = Math.max(0, recordTimeMs - firstTimeMs) / speed;
  return Math.max(0, due - elapsedMs);
}
