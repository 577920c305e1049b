// The report's chart, as a self-contained SVG (no chart library): on the
// left, WebSocket quote delay percentiles against the number of clients
// (with the goals marked); on the right, each throughput figure as a share
// of its bare baseline measured in the same run (100% = the baseline).

export interface LatencyPoint {
  clients: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  label?: string;
}

export interface ThroughputBar {
  label: string;
  value: number;
  baseline: number;
  unit: string;
}

export interface ChartData {
  title: string;
  latency: LatencyPoint[];
  /** Goals drawn on the latency panel, e.g. p99 <= 50 ms at 1,000 clients. */
  latencyGoals: Array<{ clients: number; p99Ms: number }>;
  throughput: ThroughputBar[];
}

const W = 1000;
const H = 440;
const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (x: number) =>
  x >= 10_000
    ? `${(x / 1000).toFixed(0)}k`
    : x >= 1000
      ? `${(x / 1000).toFixed(1)}k`
      : x.toFixed(x < 10 ? 1 : 0);

/** Round-number axis maximum at or above `x`. */
export function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

function latencyPanel(d: ChartData, x0: number, y0: number, w: number, h: number): string {
  const out: string[] = [];
  out.push(
    text(
      x0 + w / 2,
      y0 - 14,
      'WebSocket quote delay vs clients (log scale)',
      'text-anchor="middle" class="h"',
    ),
  );
  const pts = [...d.latency].sort((a, b) => a.clients - b.clients);
  if (pts.length === 0) {
    out.push(text(x0 + w / 2, y0 + h / 2, 'not measured', 'text-anchor="middle" class="m"'));
    return out.join('');
  }
  const maxClients = niceMax(Math.max(...pts.map((p) => p.clients), ...d.latencyGoals.map((g) => g.clients)));
  // Log scale: delays of 5 ms and of 5 s must both be readable beside the goals.
  const all = [...pts.flatMap((p) => [p.p50Ms, p.p99Ms]), ...d.latencyGoals.map((g) => g.p99Ms)].filter(
    (x) => x > 0,
  );
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.1, Math.min(...all))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all) * 1.05));
  const sx = (c: number) => x0 + (c / maxClients) * w;
  const sy = (ms: number) =>
    y0 +
    h -
    ((Math.log10(Math.min(Math.max(ms, lo), hi)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * h;
  for (let ms = lo; ms <= hi * 1.0001; ms *= 10) {
    out.push(
      `<line x1="${x0}" x2="${x0 + w}" y1="${sy(ms).toFixed(1)}" y2="${sy(ms).toFixed(1)}" class="g"/>`,
    );
    out.push(
      text(x0 - 6, sy(ms) + 4, ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`, 'text-anchor="end" class="t"'),
    );
  }
  for (let i = 0; i <= 5; i++) {
    const c = (maxClients / 5) * i;
    out.push(text(sx(c), y0 + h + 16, fmt(c), 'text-anchor="middle" class="t"'));
  }
  out.push(text(x0 + w / 2, y0 + h + 34, 'clients', 'text-anchor="middle" class="t"'));
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" class="f"/>`);
  for (const g of d.latencyGoals) {
    out.push(`<path d="M${(sx(g.clients) - 6).toFixed(1)} ${sy(g.p99Ms).toFixed(1)}h12" class="goal"/>`);
    out.push(text(sx(g.clients) + 8, sy(g.p99Ms) + 4, `goal p99 ${g.p99Ms} ms`, 'class="t goalt"'));
  }
  const series: Array<[keyof LatencyPoint, string]> = [
    ['p50Ms', 's50'],
    ['p90Ms', 's90'],
    ['p99Ms', 's99'],
  ];
  series.forEach(([key, cls], i) => {
    const path = pts
      .map((p, j) => `${j === 0 ? 'M' : 'L'}${sx(p.clients).toFixed(1)} ${sy(p[key] as number).toFixed(1)}`)
      .join(' ');
    out.push(`<path d="${path}" class="${cls}"/>`);
    for (const p of pts)
      out.push(
        `<circle cx="${sx(p.clients).toFixed(1)}" cy="${sy(p[key] as number).toFixed(1)}" r="3" class="${cls}d"/>`,
      );
    const ly = y0 + 14 + i * 16;
    out.push(`<path d="M${x0 + 10} ${ly - 4}h18" class="${cls}"/>`);
    out.push(text(x0 + 34, ly, key.replace('Ms', ''), 'class="t"'));
  });
  for (const p of pts) {
    const shown = p.p99Ms >= 1000 ? `${(p.p99Ms / 1000).toFixed(1)} s` : `${p.p99Ms.toFixed(0)} ms`;
    out.push(text(sx(p.clients), sy(p.p99Ms) - 8, `p99 ${shown}`, 'text-anchor="middle" class="t lbl"'));
  }
  return out.join('');
}

function throughputPanel(d: ChartData, x0: number, y0: number, w: number, h: number): string {
  const out: string[] = [];
  out.push(
    text(
      x0 + w / 2,
      y0 - 14,
      'Throughput as a share of the bare baseline (same run)',
      'text-anchor="middle" class="h"',
    ),
  );
  const bars = d.throughput.filter((b) => b.baseline > 0);
  if (bars.length === 0) {
    out.push(text(x0 + w / 2, y0 + h / 2, 'not measured', 'text-anchor="middle" class="m"'));
    return out.join('');
  }
  const maxPct = Math.ceil(Math.max(110, ...bars.map((b) => (b.value / b.baseline) * 105)) / 25) * 25;
  const labelW = 120;
  const bx = x0 + labelW;
  const bw = w - labelW - 10;
  const rowH = h / bars.length;
  const sx = (pct: number) => bx + (Math.min(pct, maxPct) / maxPct) * bw;
  const step = maxPct > 200 ? 50 : 25;
  for (let pct = 0; pct <= maxPct; pct += step) {
    out.push(
      `<line x1="${sx(pct).toFixed(1)}" x2="${sx(pct).toFixed(1)}" y1="${y0}" y2="${y0 + h}" class="g"/>`,
    );
    out.push(text(sx(pct), y0 + h + 16, `${pct.toFixed(0)}%`, 'text-anchor="middle" class="t"'));
  }
  out.push(
    `<line x1="${sx(100).toFixed(1)}" x2="${sx(100).toFixed(1)}" y1="${y0 - 4}" y2="${y0 + h}" class="base"/>`,
  );
  out.push(text(sx(100), y0 + h + 34, 'bare = 100%', 'text-anchor="middle" class="t"'));
  bars.forEach((b, i) => {
    const pct = (b.value / b.baseline) * 100;
    const y = y0 + i * rowH + rowH * 0.2;
    const bh = rowH * 0.6;
    out.push(text(bx - 6, y + bh / 2 + 4, b.label, 'text-anchor="end" class="t"'));
    out.push(
      `<rect x="${bx}" y="${y.toFixed(1)}" width="${(sx(pct) - bx).toFixed(1)}" height="${bh.toFixed(1)}" class="bar"/>`,
    );
    out.push(
      text(
        Math.min(sx(pct), bx + bw - 150) + 4,
        y + bh / 2 + 4,
        `${pct.toFixed(0)}%  ${fmt(b.value)} vs ${fmt(b.baseline)} ${b.unit}`,
        'class="t lbl"',
      ),
    );
  });
  return out.join('');
}

export function renderChart(d: ChartData): string {
  const style = `<style>
text{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;fill:#222}
.h{font-size:14px;font-weight:600}.t{font-size:11px}.m{font-size:13px;fill:#888}.title{font-size:16px;font-weight:700}
.g{stroke:#e4e4e4;stroke-width:1}.f{fill:none;stroke:#999}
.s50,.s90,.s99{fill:none;stroke-width:2}.s50{stroke:#4c9be8}.s90{stroke:#f0a030}.s99{stroke:#d6453d}
.s50d{fill:#4c9be8}.s90d{fill:#f0a030}.s99d{fill:#d6453d}
.lbl{paint-order:stroke;stroke:#fff;stroke-width:3px}
.goal{stroke:#2a9d4b;stroke-width:3}.goalt{fill:#2a9d4b}.bar{fill:#4c9be8}.base{stroke:#222;stroke-width:1.5;stroke-dasharray:4 3}
</style>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(d.title)}">`,
    style,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    text(W / 2, 24, d.title, 'text-anchor="middle" class="title"'),
    latencyPanel(d, 70, 70, 360, 300),
    throughputPanel(d, 500, 70, 480, 300),
    '</svg>',
    '',
  ].join('\n');
}
