// tickmesh live page: speaks tickmesh.v1 over /ws (docs/websocket-protocol.md).
// Hand-written, no dependencies, works offline. Updates are applied to a
// model at once and painted once per animation frame.

const SUBPROTOCOL = 'tickmesh.v1.json';
const WATCHLIST_KEY = 'tickmesh.watchlist';
const TOKEN_KEY = 'tickmesh.token';
const SPARK_POINTS = 60;
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9_-]{0,15}$/;

const $ = (id) => document.getElementById(id);
const rowsEl = $('rows');
const emptyEl = $('empty');
const statusEl = $('status');
const statusText = $('status-text');
const statsEl = $('stats');
const messageEl = $('message');
const authForm = $('auth-form');

/** symbol -> { q, prev, spark: number[], row, cells, decimals, dirty, flash } */
const model = new Map();
let watchlist = loadWatchlist(); // '*' or string[]
let ws;
let nextId = 1;
let attempt = 0;
let reconnectTimer;
let watchdogTimer;
let heartbeatMs = 15000;
let lastMessageAt = 0;
let stopped = false;
let paintScheduled = false;
let received = 0;
let latencies = [];

// ---- connection ----------------------------------------------------------

function connect() {
  clearTimeout(reconnectTimer);
  setStatus('connecting', attempt === 0 ? 'connecting…' : 'reconnecting…');
  const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws`;
  try {
    ws = new WebSocket(url, [SUBPROTOCOL]);
  } catch (err) {
    scheduleReconnect(String(err));
    return;
  }
  ws.onmessage = (ev) => {
    lastMessageAt = performance.now();
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    handle(msg);
  };
  ws.onclose = (ev) => onClose(ev.code, ev.reason);
  ws.onerror = () => {};
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ ...obj, id: nextId++ }));
}

function onClose(code, reason) {
  clearInterval(watchdogTimer);
  markAllStale();
  if (stopped) return;
  if (code === 4001) {
    localStorage.removeItem(TOKEN_KEY);
    setStatus('down', 'authentication failed');
    showAuth(true);
    return;
  }
  const why = reason ? `${code} ${reason}` : `closed (${code})`;
  // Close codes that ask us to slow down get a longer backoff.
  const slow = code === 4009 || code === 4029 || code === 1013;
  scheduleReconnect(why, slow);
}

function scheduleReconnect(why, slow = false) {
  attempt++;
  const cap = Math.min(slow ? 60000 : 10000, (slow ? 2000 : 500) * 2 ** Math.min(attempt, 8));
  const delay = Math.round(Math.random() * cap) + 250; // full jitter
  const until = Date.now() + delay;
  const tick = () => {
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setStatus('down', `${why} · retry in ${left}s`);
  };
  tick();
  const countdown = setInterval(tick, 500);
  reconnectTimer = setTimeout(() => {
    clearInterval(countdown);
    connect();
  }, delay);
}

function startWatchdog() {
  clearInterval(watchdogTimer);
  lastMessageAt = performance.now();
  // The server sends something at least every heartbeatMs: silence for 3 means a dead link.
  watchdogTimer = setInterval(() => {
    if (performance.now() - lastMessageAt > 3 * heartbeatMs) {
      showMessage('no heartbeat from the server: reconnecting', 'error');
      const dead = ws;
      dead.onclose = null;
      dead.close();
      onClose(4000, 'heartbeat lost');
    }
  }, 1000);
}

// ---- protocol ------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case 'welcome':
      heartbeatMs = msg.heartbeatMs || heartbeatMs;
      startWatchdog();
      if (msg.authRequired) {
        const token = localStorage.getItem(TOKEN_KEY);
        if (!token) {
          showAuth(true);
          setStatus('degraded', 'credentials needed');
          return;
        }
        send({ op: 'auth', token });
        return;
      }
      onReady(msg.upstream);
      return;
    case 'reply':
      if (msg.op === 'auth') {
        showAuth(false);
        onReady('up');
      }
      return;
    case 'snapshot':
      for (const q of msg.quotes) if (wanted(q.symbol)) applyQuote(q, false);
      for (const s of msg.missing || []) if (wanted(s)) ensureRow(s);
      schedulePaint();
      return;
    case 'quotes':
      received += msg.quotes.length;
      for (const q of msg.quotes) if (wanted(q.symbol)) applyQuote(q, true);
      schedulePaint();
      return;
    case 'resnapshot':
      markAllStale();
      setStatus('live', 'live');
      return;
    case 'notice':
      if (msg.code === 'upstream_down') {
        markAllStale();
        setStatus('degraded', 'price feed interrupted');
      }
      return;
    case 'error':
      showMessage(`${msg.code}: ${msg.message}`, 'error');
      return;
    default:
      return;
  }
}

function onReady(upstream) {
  attempt = 0;
  setStatus(
    upstream === 'down' ? 'degraded' : 'live',
    upstream === 'down' ? 'price feed interrupted' : 'live',
  );
  subscribe(watchlist === '*' ? '*' : watchlist);
}

function subscribe(symbols) {
  if (symbols === '*' || symbols.length > 0) send({ op: 'subscribe', symbols });
}

// ---- model ---------------------------------------------------------------

/** Frames already on the wire when a symbol was removed must not bring its row back. */
function wanted(symbol) {
  return watchlist === '*' || watchlist.includes(symbol);
}

function applyQuote(q, live) {
  const item = ensureRow(q.symbol);
  if (item.q && live && q.epoch === item.q.epoch && q.seq <= item.q.seq) return; // never step back
  const before = item.q ? item.q.last : undefined;
  if (live && before !== undefined && q.last !== before) item.flash = q.last > before ? 'up' : 'down';
  item.q = q;
  item.stale = false;
  item.decimals = Math.max(item.decimals, decimalsOf(q.last), decimalsOf(q.bid), decimalsOf(q.ask));
  item.spark.push(q.last);
  if (item.spark.length > SPARK_POINTS) item.spark.shift();
  item.dirty = true;
  if (live && typeof q.ts === 'number') {
    latencies.push(Date.now() - q.ts);
    if (latencies.length > 2000) latencies = latencies.slice(-1000);
  }
}

function ensureRow(symbol) {
  let item = model.get(symbol);
  if (item) return item;
  const row = document.createElement('tr');
  row.dataset.symbol = symbol;
  const cells = {};
  for (const name of ['sym', 'last', 'chg', 'spark', 'bid', 'ask', 'vol', 'time', 'act']) {
    const td = document.createElement('td');
    td.className =
      name === 'last' || name === 'chg' || name === 'bid' || name === 'ask' || name === 'vol'
        ? `num ${name}`
        : name;
    row.appendChild(td);
    cells[name] = td;
  }
  cells.sym.textContent = symbol;
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.textContent = '×';
  remove.title = `Stop following ${symbol}`;
  remove.addEventListener('click', () => removeSymbol(symbol));
  cells.act.appendChild(remove);
  cells.spark.appendChild(sparkSvg());
  item = {
    q: undefined,
    spark: [],
    row,
    cells,
    decimals: 2,
    dirty: true,
    flash: undefined,
    stale: false,
    flip: false,
  };
  model.set(symbol, item);
  insertSorted(row, symbol);
  emptyEl.classList.add('hidden');
  return item;
}

function insertSorted(row, symbol) {
  for (const other of rowsEl.children) {
    if (other.dataset.symbol > symbol) {
      rowsEl.insertBefore(row, other);
      return;
    }
  }
  rowsEl.appendChild(row);
}

function dropRow(symbol) {
  const item = model.get(symbol);
  if (!item) return;
  item.row.remove();
  model.delete(symbol);
  if (model.size === 0) emptyEl.classList.remove('hidden');
}

function markAllStale() {
  for (const item of model.values()) {
    item.stale = true;
    item.dirty = true;
  }
  schedulePaint();
}

// ---- painting ------------------------------------------------------------

function schedulePaint() {
  if (paintScheduled) return;
  paintScheduled = true;
  requestAnimationFrame(paint);
}

function paint() {
  paintScheduled = false;
  for (const item of model.values()) {
    if (!item.dirty) continue;
    item.dirty = false;
    item.row.classList.toggle('stale', item.stale);
    const q = item.q;
    const c = item.cells;
    if (!q) {
      c.last.textContent = '—';
      c.last.classList.add('missing');
      continue;
    }
    c.last.classList.remove('missing');
    c.last.textContent = fmt(q.last, item.decimals);
    c.bid.textContent = q.bid ? fmt(q.bid, item.decimals) : '—';
    c.ask.textContent = q.ask ? fmt(q.ask, item.decimals) : '—';
    c.vol.textContent = Number(q.volume).toLocaleString('en-US');
    c.chg.textContent = `${q.changePct > 0 ? '+' : ''}${Number(q.changePct).toFixed(2)}%`;
    c.chg.classList.toggle('pos', q.changePct > 0);
    c.chg.classList.toggle('neg', q.changePct < 0);
    c.time.textContent = fmtTime(q.ts);
    c.time.title = `seq ${q.seq} · epoch ${q.epoch}${q.conflated ? ' · conflated' : ''}`;
    drawSpark(c.spark.firstChild, item.spark, q.prevClose);
    if (item.flash) {
      // Alternate between twin animations so consecutive flashes restart.
      const cls = `flash-${item.flash}${item.flip ? '2' : ''}`;
      for (const td of [c.last]) {
        td.classList.remove('flash-up', 'flash-down', 'flash-up2', 'flash-down2');
        td.classList.add(cls);
      }
      item.flip = !item.flip;
      item.flash = undefined;
    }
  }
}

function sparkSvg() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 120 26');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.appendChild(document.createElementNS(ns, 'line'));
  svg.appendChild(document.createElementNS(ns, 'polyline'));
  return svg;
}

function drawSpark(svg, values, ref) {
  const line = svg.firstChild;
  const poly = svg.lastChild;
  if (values.length < 2) {
    poly.setAttribute('points', '');
    return;
  }
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (ref > 0 && ref >= min - (max - min) && ref <= max + (max - min)) {
    min = Math.min(min, ref);
    max = Math.max(max, ref);
  }
  const span = max - min || 1;
  const y = (v) => (24 - ((v - min) / span) * 22).toFixed(1);
  const step = 120 / (SPARK_POINTS - 1);
  const offset = (SPARK_POINTS - values.length) * step;
  poly.setAttribute('points', values.map((v, i) => `${(offset + i * step).toFixed(1)},${y(v)}`).join(' '));
  if (ref > 0 && ref >= min && ref <= max) {
    line.setAttribute('x1', '0');
    line.setAttribute('x2', '120');
    line.setAttribute('y1', y(ref));
    line.setAttribute('y2', y(ref));
  }
  const first = values[0];
  const last = values[values.length - 1];
  svg.setAttribute('class', last > first ? 'up' : last < first ? 'down' : 'flat');
}

function fmt(v, decimals) {
  return Number(v).toLocaleString('en-US', {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

function decimalsOf(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return 0;
  const s = String(v);
  const dot = s.indexOf('.');
  return dot < 0 ? 0 : Math.min(6, s.length - dot - 1);
}

function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// ---- UI ------------------------------------------------------------------

function setStatus(kind, text) {
  statusEl.className = `status ${kind}`;
  statusText.textContent = text;
}

let messageTimer;
function showMessage(text, kind = 'info') {
  messageEl.textContent = text;
  messageEl.className = `message ${kind}`;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => {
    messageEl.textContent = '';
  }, 6000);
}

function showAuth(show) {
  authForm.classList.toggle('hidden', !show);
  if (show) $('token-input').focus();
}

function loadWatchlist() {
  try {
    const saved = JSON.parse(localStorage.getItem(WATCHLIST_KEY) || '"*"');
    if (saved === '*') return '*';
    if (Array.isArray(saved)) return saved.filter((s) => SYMBOL_RE.test(s));
  } catch {
    // a broken value: start over
  }
  return '*';
}

function saveWatchlist() {
  localStorage.setItem(WATCHLIST_KEY, JSON.stringify(watchlist));
}

function addSymbols(text) {
  const symbols = text
    .toUpperCase()
    .split(/[\s,;]+/)
    .filter((s) => s.length > 0);
  const bad = symbols.filter((s) => !SYMBOL_RE.test(s));
  if (bad.length > 0) {
    showMessage(`not a symbol: ${bad.join(' ')}`, 'error');
    return;
  }
  if (symbols.length === 0) return;
  if (watchlist === '*') {
    // "*" already covers everything: nothing to add.
    showMessage('already following every symbol', 'info');
    return;
  }
  const fresh = symbols.filter((s) => !watchlist.includes(s));
  watchlist = [...watchlist, ...fresh];
  saveWatchlist();
  subscribe(fresh);
}

function removeSymbol(symbol) {
  if (watchlist === '*') {
    // Leave "*" for an explicit list of what is on screen, minus this one.
    const rest = [...model.keys()].filter((s) => s !== symbol);
    watchlist = rest;
    send({ op: 'unsubscribe', symbols: '*' });
    subscribe(rest);
  } else {
    watchlist = watchlist.filter((s) => s !== symbol);
    send({ op: 'unsubscribe', symbols: [symbol] });
  }
  saveWatchlist();
  dropRow(symbol);
}

function followAll() {
  watchlist = '*';
  saveWatchlist();
  subscribe('*');
}

$('symbol-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('symbol-input');
  addSymbols(input.value);
  input.value = '';
});
$('all-button').addEventListener('click', followAll);
authForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = $('token-input').value.trim();
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  $('token-input').value = '';
  if (ws && ws.readyState === WebSocket.OPEN) send({ op: 'auth', token });
  else connect();
});

setInterval(() => {
  const sorted = latencies.slice().sort((a, b) => a - b);
  const p50 = sorted.length ? sorted[Math.floor(sorted.length * 0.5)] : undefined;
  statsEl.textContent = `${model.size} symbols · ${received} updates/s${p50 !== undefined ? ` · tick→screen p50 ${Math.max(0, p50)} ms` : ''}`;
  received = 0;
  latencies = [];
}, 1000);

connect();
