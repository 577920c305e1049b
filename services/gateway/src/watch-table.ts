// The terminal watcher's screen: a table of the latest quotes, redrawn in
// place (pure: state in, text out; ANSI colours optional).
import type { ConnectionState, WireQuote } from './watch-client.js';

export interface WatchRow {
  quote: WireQuote;
  /** Direction of the last price change and when it happened (for the flash). */
  move: 'up' | 'down' | 'none';
  movedAt: number;
  decimals: number;
}

export interface WatchScreen {
  rows: Map<string, WatchRow>;
  state: ConnectionState;
  url: string;
  message?: string;
  updatesPerSecond: number;
}

const ESC = '\x1b[';
const C = {
  reset: `${ESC}0m`,
  bold: `${ESC}1m`,
  dim: `${ESC}2m`,
  green: `${ESC}32m`,
  red: `${ESC}31m`,
  yellow: `${ESC}33m`,
  cyan: `${ESC}36m`,
  upBg: `${ESC}42;30m`,
  downBg: `${ESC}41;97m`,
};

/** Applies a quote to the row map; returns the row. Older seqs of the same epoch are ignored. */
export function applyWatchQuote(rows: Map<string, WatchRow>, q: WireQuote, now: number, live: boolean): void {
  const row = rows.get(q.symbol);
  if (row && live && row.quote.epoch === q.epoch && q.seq <= row.quote.seq) return;
  const decimals = Math.max(row?.decimals ?? 2, decimalsOf(q.last), decimalsOf(q.bid), decimalsOf(q.ask));
  let move: WatchRow['move'] = row?.move ?? 'none';
  let movedAt = row?.movedAt ?? 0;
  if (live && row && q.last !== row.quote.last) {
    move = q.last > row.quote.last ? 'up' : 'down';
    movedAt = now;
  }
  rows.set(q.symbol, { quote: q, move, movedAt, decimals });
}

export function renderScreen(
  screen: WatchScreen,
  opts: { color: boolean; now: number; width?: number },
): string {
  const c = (code: string, text: string) => (opts.color ? `${code}${text}${C.reset}` : text);
  const lines: string[] = [];
  lines.push(
    `${c(C.bold, 'tickmesh watch')}  ${c(C.dim, screen.url)}  ${stateText(screen.state, opts.now, c)}`,
  );
  lines.push('');
  const header = [
    pad('SYMBOL', 8),
    lpad('LAST', 12),
    lpad('CHG%', 8),
    lpad('BID', 12),
    lpad('ASK', 12),
    lpad('VOLUME', 12),
    lpad('TIME', 13),
    lpad('SEQ', 8),
  ];
  lines.push(c(C.dim, header.join(' ')));
  const symbols = [...screen.rows.keys()].sort();
  for (const s of symbols) {
    const r = screen.rows.get(s)!;
    const q = r.quote;
    const fresh = opts.now - r.movedAt < 1000;
    const lastText = lpad(fmt(q.last, r.decimals), 12);
    const last =
      fresh && r.move === 'up'
        ? c(C.upBg, lastText)
        : fresh && r.move === 'down'
          ? c(C.downBg, lastText)
          : c(C.bold, lastText);
    const pctText = lpad(`${q.changePct > 0 ? '+' : ''}${q.changePct.toFixed(2)}`, 8);
    const pct = q.changePct > 0 ? c(C.green, pctText) : q.changePct < 0 ? c(C.red, pctText) : pctText;
    lines.push(
      [
        pad(s, 8),
        last,
        pct,
        lpad(fmt(q.bid, r.decimals), 12),
        lpad(fmt(q.ask, r.decimals), 12),
        lpad(q.volume.toLocaleString('en-US'), 12),
        lpad(time(q.ts), 13),
        lpad(`${q.seq}${q.conflated ? '*' : ''}`, 8),
      ].join(' '),
    );
  }
  if (symbols.length === 0) lines.push(c(C.dim, '  (waiting for quotes)'));
  lines.push('');
  lines.push(
    c(
      C.dim,
      `${symbols.length} symbols · ${screen.updatesPerSecond} updates/s · * = conflated · Ctrl-C to quit`,
    ),
  );
  if (screen.message) lines.push(c(C.yellow, screen.message));
  return lines.join('\n');
}

function stateText(s: ConnectionState, now: number, c: (code: string, t: string) => string): string {
  switch (s.kind) {
    case 'live':
      return c(C.green, '● live');
    case 'connecting':
      return c(C.cyan, s.attempt === 0 ? '◌ connecting' : '◌ reconnecting');
    case 'upstream-down':
      return c(C.yellow, '● price feed interrupted');
    case 'waiting':
      return c(C.red, `○ ${s.reason} · retry in ${Math.max(0, Math.ceil((s.retryAt - now) / 1000))}s`);
    case 'stopped':
      return c(C.red, `✕ ${s.reason}`);
  }
}

function fmt(v: number, decimals: number): string {
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function decimalsOf(v: number): number {
  if (!Number.isFinite(v)) return 0;
  const s = String(v);
  const dot = s.indexOf('.');
  return dot < 0 ? 0 : Math.min(6, s.length - dot - 1);
}

function time(ms: number): string {
  if (!ms) return '-';
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function lpad(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}
