// gRPC security from the kit: JWT bearer authentication (health and
// reflection stay open for probes) and TLS with client certificates (mTLS).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { PriceServiceClient } from '../src/gen/tickmesh/price/v1/price.js';
import { createClient } from '../src/grpc/client.js';
import { bearerTokenInterceptor, mintToken } from '../src/grpc/auth.js';
import { channelCredentials } from '../src/grpc/tls.js';
import { healthClient, healthStatus } from '@tickmesh/harness';
import { projectPath } from '../src/paths.js';

const grpcurl = projectPath('.tools', 'bin', 'grpcurl');

const fixture = fileURLToPath(new URL('./fixtures/echo-server.ts', import.meta.url));
const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'tickmesh-tls-'));

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string>): Promise<number> {
  const c = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, LOG_LEVEL: 'silent', GRPC_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(c);
  let out = '';
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fixture did not start: ${out}`)), 30_000);
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    c.on('exit', (code) => reject(new Error(`fixture exited ${code}`)));
  });
}

function getQuote(client: PriceServiceClient): Promise<unknown> {
  return promisify(client.getQuote.bind(client))({ symbol: 'THYAO' });
}

test('GRPC_AUTH_MODE=jwt: calls need a valid bearer token; health and reflection do not', async () => {
  const port = await start({ GRPC_AUTH_MODE: 'jwt', GRPC_JWT_SECRET: SECRET });
  const address = `127.0.0.1:${port}`;
  const opts = { unaryDeadlineMs: 5000, service: 'tickmesh.price.v1.PriceService' };

  const anonymous = createClient(PriceServiceClient, address, opts);
  await assert.rejects(getQuote(anonymous), { code: grpc.status.UNAUTHENTICATED });

  const signed = createClient(PriceServiceClient, address, {
    ...opts,
    interceptors: [
      bearerTokenInterceptor({ secret: SECRET, issuer: 'tickmesh', audience: 'tickmesh', subject: 'test' }),
    ],
  });
  // Past authentication, the fixture answers NOT_FOUND for any valid symbol.
  await assert.rejects(getQuote(signed), { code: grpc.status.NOT_FOUND });

  const forged = createClient(PriceServiceClient, address, {
    ...opts,
    interceptors: [
      bearerTokenInterceptor({
        secret: 'another-secret-that-is-also-long-enough!!',
        issuer: 'tickmesh',
        audience: 'tickmesh',
        subject: 'x',
      }),
    ],
  });
  await assert.rejects(getQuote(forged), { code: grpc.status.UNAUTHENTICATED });

  const expired = await mintToken({
    secret: SECRET,
    issuer: 'tickmesh',
    audience: 'tickmesh',
    subject: 'x',
    ttlSeconds: -60,
  });
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${expired}`);
  await assert.rejects(
    new Promise((resolve, reject) =>
      anonymous.getQuote({ symbol: 'THYAO' }, md, (e, r) => (e ? reject(e) : resolve(r))),
    ),
    { code: grpc.status.UNAUTHENTICATED },
  );

  const health = healthClient(address);
  assert.equal(await healthStatus(health, 'tickmesh.price.v1.PriceService'), 'SERVING');
  health.close();
  if (existsSync(grpcurl)) {
    const list = execFileSync(grpcurl, ['-plaintext', address, 'list'], { encoding: 'utf8' });
    assert.match(list, /tickmesh\.price\.v1\.PriceService/);
  }
  for (const c of [anonymous, signed, forged]) c.close();
});

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

test('TLS with client certificates: a client without one is refused, one with a signed certificate gets through', async () => {
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=tickmesh-test-ca',
  );
  for (const name of ['server', 'client']) {
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      'san.cnf',
    );
  }
  const port = await start({
    GRPC_TLS_CERT_FILE: join(dir, 'server.pem'),
    GRPC_TLS_KEY_FILE: join(dir, 'server.key'),
    GRPC_TLS_CLIENT_CA_FILE: join(dir, 'ca.pem'),
  });
  const opts = { unaryDeadlineMs: 5000, service: 'tickmesh.price.v1.PriceService' };
  const withoutCert = createClient(PriceServiceClient, `127.0.0.1:${port}`, {
    ...opts,
    credentials: channelCredentials({ caFile: join(dir, 'ca.pem'), certFile: '', keyFile: '' }),
  });
  await assert.rejects(getQuote(withoutCert), { code: grpc.status.UNAVAILABLE });
  const withCert = createClient(PriceServiceClient, `127.0.0.1:${port}`, {
    ...opts,
    credentials: channelCredentials({
      caFile: join(dir, 'ca.pem'),
      certFile: join(dir, 'client.pem'),
      keyFile: join(dir, 'client.key'),
    }),
  });
  await assert.rejects(getQuote(withCert), { code: grpc.status.NOT_FOUND });
  const plaintext = createClient(PriceServiceClient, `127.0.0.1:${port}`, opts);
  await assert.rejects(getQuote(plaintext), { code: grpc.status.UNAVAILABLE });
  for (const c of [withoutCert, withCert, plaintext]) c.close();
});
