// The kit end to end through real clients: health (two meanings),
// reflection via grpcurl, error mapping, malformed bytes, and graceful
// shutdown of a real process on SIGTERM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { PriceServiceClient, StreamQuotesResponse } from '../src/gen/tickmesh/price/v1/price.js';
import { createClient } from '../src/grpc/client.js';
import { healthClient, healthStatus } from '@tickmesh/harness';
import { projectPath } from '../src/paths.js';

const run = promisify(execFile);
const fixture = fileURLToPath(new URL('./fixtures/echo-server.ts', import.meta.url));
const grpcurl = projectPath('.tools', 'bin', 'grpcurl');

let child: ChildProcess;
let port = 0;

async function startFixture(
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number }> {
  const c = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, LOG_LEVEL: 'silent', GRPC_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const p = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fixture did not start: ${out}`)), 30_000);
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    c.on('exit', (code) => reject(new Error(`fixture exited ${code}: ${out}`)));
  });
  return { child: c, port: p };
}

before(async () => {
  ({ child, port } = await startFixture());
});

after(() => {
  if (child.exitCode === null) child.kill('SIGKILL');
});

test('health: "" and liveness speak for the process, the service name for its dependencies', async () => {
  const client = healthClient(`127.0.0.1:${port}`);
  assert.equal(await healthStatus(client, ''), 'SERVING');
  assert.equal(await healthStatus(client, 'liveness'), 'SERVING');
  assert.equal(await healthStatus(client, 'tickmesh.price.v1.PriceService'), 'SERVING');
  await assert.rejects(healthStatus(client, 'no.such.Service'), { code: grpc.status.NOT_FOUND });
  client.close();
});

test('domain errors become status codes with the field named; malformed bytes are INVALID_ARGUMENT', async () => {
  const client = createClient(PriceServiceClient, `127.0.0.1:${port}`, {
    unaryDeadlineMs: 5000,
    service: 'tickmesh.price.v1.PriceService',
  });
  const getQuote = promisify(client.getQuote.bind(client)) as (r: { symbol: string }) => Promise<unknown>;
  await assert.rejects(getQuote({ symbol: 'bad symbol' }), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /^symbol: /);
    assert.deepEqual(err.metadata.get('tickmesh-field'), ['symbol']);
    return true;
  });
  await assert.rejects(getQuote({ symbol: 'THYAO' }), { code: grpc.status.NOT_FOUND });
  // Field 1 declared as a string but sent with a truncated length prefix.
  const raw = await new Promise<grpc.ServiceError | null>((resolve) => {
    client.makeUnaryRequest(
      '/tickmesh.price.v1.PriceService/GetQuote',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from([0x0a, 0x50, 0x41]),
      (err) => resolve(err),
    );
  });
  assert.equal(raw?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(raw?.details ?? '', /malformed request/);
  client.close();
});

test(
  'reflection: grpcurl lists and describes with no proto files',
  { skip: !existsSync(grpcurl) && 'grpcurl not installed (make tools)' },
  async () => {
    const { stdout: list } = await run(grpcurl, ['-plaintext', `127.0.0.1:${port}`, 'list']);
    assert.match(list, /^tickmesh\.price\.v1\.PriceService$/m);
    assert.match(list, /^grpc\.health\.v1\.Health$/m);
    // GetQuoteResponse imports Quote from market.proto: reflection must resolve it.
    const { stdout: described } = await run(grpcurl, [
      '-plaintext',
      `127.0.0.1:${port}`,
      'describe',
      'tickmesh.price.v1.GetQuoteResponse',
    ]);
    assert.match(described, /\.tickmesh\.market\.v1\.Quote quote = 1;/);
    const { stdout: quote } = await run(grpcurl, [
      '-plaintext',
      `127.0.0.1:${port}`,
      'describe',
      'tickmesh.market.v1.Quote',
    ]);
    assert.match(quote, /uint64 seq = 13;/);
  },
);

test('SIGTERM: health goes NOT_SERVING, open streams end with UNAVAILABLE, the process exits in bound', async () => {
  const target = await startFixture({ SHUTDOWN_TIMEOUT_MS: '3000' });
  const client = createClient(PriceServiceClient, `127.0.0.1:${target.port}`, {
    unaryDeadlineMs: 5000,
    service: 'tickmesh.price.v1.PriceService',
  });
  const stream = client.streamQuotes({ symbols: [], all: true, maxUpdatesPerSecond: 0 });
  let received = 0;
  stream.on('data', (_m: StreamQuotesResponse) => received++);
  const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
  while (received === 0) await sleep(20);
  const started = Date.now();
  target.child.kill('SIGTERM');
  const err = await ended;
  assert.equal(err.code, grpc.status.UNAVAILABLE);
  assert.match(err.details, /shutting down/);
  const [code] = (await once(target.child, 'exit')) as [number | null];
  assert.equal(code, 0);
  assert.ok(Date.now() - started < 3000 + 2000, 'exited within SHUTDOWN_TIMEOUT_MS');
  client.close();
});
