// The live page in headless Chromium (Debian `chromium`, driven by
// playwright-core): it loads from the gateway, fills a row per symbol from a
// scripted PriceService, shows prices changing, lets the user remove and add
// symbols, makes no request outside the gateway, and logs no error (a CSP
// violation would be one). A screenshot is saved to tests/artifacts/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadUniverse, projectPath } from '@tickmesh/kit';
import {
  ScriptedMarket,
  startScriptedUpstream,
  type ScriptedUpstream,
} from '../../services/gateway/test/support/scripted-upstream.js';
import { startTestGateway, type TestGateway } from '../../services/gateway/test/support/gateway-harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;

/** The little of the DOM the in-page predicates use (this project compiles without DOM types). */
interface PageElement {
  textContent: string | null;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): { length: number };
  getElementById(id: string): PageElement | null;
};

let up: ScriptedUpstream;
let gw: TestGateway;
let browser: Browser | undefined;
let ticker: NodeJS.Timeout | undefined;
const universe = loadUniverse('bist30');

before(async () => {
  if (skip) return;
  const market = new ScriptedMarket(
    universe.instruments.map((i) => ({ symbol: i.symbol, price: i.referencePrice })),
  );
  up = await startScriptedUpstream(market);
  gw = await startTestGateway(up.port);
  // A lively market: random walks on each instrument's tick grid (seeded, so runs look alike).
  let seed = 42;
  const rand = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
  ticker = setInterval(() => {
    for (let k = 0; k < 6; k++) {
      const inst = universe.instruments[Math.floor(rand() * universe.instruments.length)]!;
      const steps = Math.round((rand() - 0.48) * 6) || 1;
      market.tick(inst.symbol, Number((steps * inst.tickSize).toFixed(inst.decimals)));
    }
  }, 40);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 60_000,
  });
});

after(async () => {
  if (ticker) clearInterval(ticker);
  await browser?.close();
  await gw?.close();
  await up?.stop();
});

async function lastPrice(page: Page, symbol: string): Promise<string> {
  return page.locator(`tr[data-symbol="${symbol}"] td.last`).innerText();
}

void test(
  'the live page loads, fills its rows, shows changing prices, and stays on the gateway',
  { skip, timeout: 120_000 },
  async () => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 1100 } });
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });

    await page.goto(`${gw.http}/`, { waitUntil: 'load', timeout: 30_000 });
    const rows = page.locator('#rows tr');
    // Predicates are functions run in the page (strings would need 'unsafe-eval', which the CSP forbids).
    await page.waitForFunction(
      (n) => document.querySelectorAll('#rows tr td.last:not(.missing)').length >= n,
      universe.instruments.length,
      { timeout: 30_000 },
    );
    assert.equal(await rows.count(), universe.instruments.length);
    await page.waitForFunction(
      () => document.getElementById('status-text')?.textContent === 'live',
      undefined,
      {
        timeout: 15_000,
      },
    );

    // Prices change in place, with a flash and a sparkline.
    const symbol = universe.instruments[0]!.symbol;
    const before = await lastPrice(page, symbol);
    await page.waitForFunction(
      ([s, p]) => document.querySelector(`tr[data-symbol="${s}"] td.last`)?.textContent !== p,
      [symbol, before] as const,
      { timeout: 30_000 },
    );
    await page.waitForSelector('td.flash-up, td.flash-down, td.flash-up2, td.flash-down2', {
      timeout: 15_000,
    });
    await page.waitForFunction(
      () => (document.querySelector('td.spark polyline')?.getAttribute('points') ?? '').length > 0,
      undefined,
      { timeout: 15_000 },
    );
    // Prices print as decimals on the tick grid, never as float noise.
    const prices = await page.locator('#rows td.last').allInnerTexts();
    for (const p of prices) assert.match(p, /^[\d,]+\.\d{2,3}$/, `price "${p}"`);

    // Let sparklines grow a little, then keep the picture.
    await page.waitForTimeout(4000);
    const dir = projectPath('tests', 'artifacts');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: `${dir}/live-page.png`, fullPage: false });

    // Remove a symbol, then add it back through the box.
    await page.locator(`tr[data-symbol="${symbol}"] td.act button`).click();
    await page.waitForFunction((s) => !document.querySelector(`tr[data-symbol="${s}"]`), symbol, {
      timeout: 10_000,
    });
    assert.equal(await rows.count(), universe.instruments.length - 1);
    await page.fill('#symbol-input', symbol.toLowerCase());
    await page.click('#add-button');
    await page.waitForFunction(
      (s) => !!document.querySelector(`tr[data-symbol="${s}"] td.last:not(.missing)`),
      symbol,
      {
        timeout: 15_000,
      },
    );
    assert.equal(await rows.count(), universe.instruments.length);

    const origin = new URL(gw.http).origin;
    const foreign = requests.filter(
      (u) => !u.startsWith(`${origin}/`) && !u.startsWith(`ws://${new URL(gw.http).host}/`),
    );
    assert.deepEqual(foreign, [], 'no request left the gateway');
    assert.ok(requests.some((u) => u.endsWith('/app.js')) && requests.some((u) => u.endsWith('/style.css')));
    assert.deepEqual(problems, []);
    await page.close();
  },
);
