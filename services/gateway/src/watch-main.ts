// Terminal watcher: `npm run watch -- THYAO GARAN [--url ws://host:8080/ws] [--token T]`
// shows a live table over the WebSocket protocol and reconnects by itself.
// Credentials: prefer TICKMESH_TOKEN (a --token flag is visible in `ps`).
import { parseArgs } from 'node:util';
import { isValidSymbol } from '@tickmesh/kit';
import { WatchClient, type ConnectionState } from './watch-client.js';
import { applyWatchQuote, renderScreen, type WatchScreen } from './watch-table.js';

const USAGE = `usage: npm run watch -- [SYMBOL ...] [--url ws://127.0.0.1:8080/ws] [--token TOKEN]
  no symbols: every symbol ("*"). Environment: TICKMESH_WS_URL, TICKMESH_TOKEN.`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { url: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const symbols = positionals.map((s) => s.toUpperCase());
const bad = symbols.filter((s) => s !== '*' && !isValidSymbol(s));
if (bad.length > 0) {
  process.stderr.write(`not a symbol: ${bad.join(' ')}\n${USAGE}\n`);
  process.exit(2);
}
const url = values.url ?? process.env.TICKMESH_WS_URL ?? 'ws://127.0.0.1:8080/ws';
const tty = process.stdout.isTTY === true;

const screen: WatchScreen = {
  rows: new Map(),
  state: { kind: 'connecting', attempt: 0 },
  url,
  updatesPerSecond: 0,
};
let counted = 0;
let dirty = true;

const client = new WatchClient({
  url,
  token: values.token ?? process.env.TICKMESH_TOKEN,
  symbols: symbols.length === 0 || symbols.includes('*') ? '*' : symbols,
  onState: (state: ConnectionState) => {
    screen.state = state;
    dirty = true;
    if (state.kind === 'stopped') {
      draw();
      finish(1);
    }
  },
  onQuotes: (quotes, snapshot) => {
    const now = Date.now();
    for (const q of quotes) applyWatchQuote(screen.rows, q, now, !snapshot);
    if (!snapshot) counted += quotes.length;
    dirty = true;
  },
  onResnapshot: () => {
    dirty = true;
  },
  onError: (message) => {
    screen.message = message;
    dirty = true;
  },
});

function draw(): void {
  const text = renderScreen(screen, { color: tty, now: Date.now() });
  // In place: home, each line cleared to its end, then the rest of the screen.
  if (tty) process.stdout.write(`\x1b[H${text.split('\n').join('\x1b[K\n')}\x1b[K\x1b[J`);
  else process.stdout.write(`${text}\n\n`);
}

let finished = false;
function finish(code: number): void {
  if (finished) return;
  finished = true;
  client.stop();
  if (tty) process.stdout.write('\x1b[?25h\n');
  process.exit(code);
}

if (tty) process.stdout.write('\x1b[?25l\x1b[2J');
process.once('SIGINT', () => finish(0));
process.once('SIGTERM', () => finish(0));
// Redraw at most 10 times a second (only when something changed or a flash fades); plain output once a second.
setInterval(
  () => {
    if (
      tty &&
      (dirty ||
        [...screen.rows.values()].some((r) => Date.now() - r.movedAt < 1200) ||
        screen.state.kind === 'waiting')
    ) {
      dirty = false;
      draw();
    } else if (!tty) draw();
  },
  tty ? 100 : 1000,
);
setInterval(() => {
  screen.updatesPerSecond = counted;
  counted = 0;
}, 1000);
client.start();
