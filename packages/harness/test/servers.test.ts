// Proves the private test servers of the harness: each server starts, answers its protocol,
// restarts on the same port, Redis comes back empty, kill() is a real SIGKILL, stopAll() and
// the process-exit hook leave nothing behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

import {
  FETCH_REFUSED_PORTS,
  freePort,
  startMariaDb,
  startNats,
  startRedis,
  stopAll,
  waitUntil,
  type MariaDbTestServer,
  type TestServer,
} from '@tickmesh/harness';

const execFileP = promisify(execFile);

// ------------------------------------------------------------------------- raw clients

/** Open a connection, write `send` (after reading `skipFirstLine` line if asked), return the next line. */
function exchange(port: number, send: string, opts: { skipFirstLine?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let skipped = !opts.skipFirstLine;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply on port ${port} (got ${JSON.stringify(buf)})`));
    }, 5_000);
    sock.once('connect', () => {
      if (skipped) sock.write(send);
    });
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!skipped) {
          skipped = true;
          sock.write(send);
          continue;
        }
        clearTimeout(timer);
        sock.destroy();
        resolve(line);
        return;
      }
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const natsPing = (port: number) => exchange(port, 'PING\r\n', { skipFirstLine: true });

/** One Redis command on a fresh connection (no retries, no offline queue); resolves with the reply. */
async function redis(port: number, ...args: [string, ...string[]]): Promise<unknown> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    retryStrategy: () => null,
    commandTimeout: 5_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(...args);
  } finally {
    client.disconnect();
  }
}

/** Minimal NATS client: enough for JetStream API requests over the raw protocol. */
class RawNats {
  private buf = Buffer.alloc(0);
  private waiters = new Map<string, (payload: string) => void>();
  private sid = 0;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
    });
  }

  static connect(port: number): Promise<RawNats> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.once('error', reject);
      sock.once('connect', () => {
        const nc = new RawNats(sock);
        sock.write(
          'CONNECT {"verbose":false,"pedantic":false,"headers":false,"lang":"raw","version":"0"}\r\n',
        );
        resolve(nc);
      });
    });
  }

  private parse(): void {
    for (;;) {
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buf.subarray(0, eol).toString('utf8');
      if (line.startsWith('MSG ')) {
        const parts = line.split(' ');
        const size = Number(parts[parts.length - 1]);
        if (this.buf.length < eol + 2 + size + 2) return;
        const payload = this.buf.subarray(eol + 2, eol + 2 + size).toString('utf8');
        this.buf = this.buf.subarray(eol + 2 + size + 2);
        const subject = parts[1] ?? '';
        this.waiters.get(subject)?.(payload);
        this.waiters.delete(subject);
        continue;
      }
      this.buf = this.buf.subarray(eol + 2);
      if (line === 'PING') this.sock.write('PONG\r\n');
      if (line.startsWith('-ERR')) throw new Error(`nats: ${line}`);
    }
  }

  request(subject: string, payload: string): Promise<Record<string, unknown>> {
    const inbox = `_INBOX.raw.${++this.sid}`;
    const result = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats: no reply to ${subject}`)), 5_000);
      this.waiters.set(inbox, (p) => {
        clearTimeout(timer);
        resolve(JSON.parse(p) as Record<string, unknown>);
      });
    });
    this.sock.write(
      `SUB ${inbox} ${this.sid}\r\nUNSUB ${this.sid} 1\r\n` +
        `PUB ${subject} ${inbox} ${Buffer.byteLength(payload)}\r\n${payload}\r\n`,
    );
    return result;
  }

  close(): void {
    this.sock.destroy();
  }
}

async function jsRequest(port: number, subject: string, payload = ''): Promise<Record<string, unknown>> {
  const nc = await RawNats.connect(port);
  try {
    return await nc.request(subject, payload);
  } finally {
    nc.close();
  }
}

async function sql(db: MariaDbTestServer, query: string): Promise<string> {
  const { stdout } = await execFileP('mariadb', [
    '-h127.0.0.1',
    '-P',
    String(db.port),
    '-u',
    db.user,
    `-p${db.password}`,
    db.database,
    '-N',
    '-B',
    '-e',
    query,
  ]);
  return stdout.trim();
}

// ------------------------------------------------------------------------- processes

/** Gone, or a zombie waiting for its (new) parent to reap it: either way not running. */
function processGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Waits (5 s at most) until `pid` is gone; `what` names the failure. */
function waitGone(pid: number, what: string): Promise<true> {
  return waitUntil(() => processGone(pid), { timeoutMs: 5_000, intervalMs: 20, what });
}

/** kill() is a real SIGKILL: the process is gone at once and lastExit says so. */
async function killedHard(server: TestServer): Promise<void> {
  const pid = server.pid;
  assert.ok(pid);
  await server.kill();
  assert.equal(server.lastExit?.signal, 'SIGKILL');
  assert.ok(processGone(pid));
}

async function timed<T>(what: string, fn: () => Promise<T>, notes: string[]): Promise<T> {
  const t0 = performance.now();
  const result = await fn();
  notes.push(`${what}: ${(performance.now() - t0).toFixed(0)} ms`);
  return result;
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const started: TestServer[] = [];
after(async () => {
  await stopAll();
});

// ------------------------------------------------------------------------------ tests

void test('freePort returns distinct bindable loopback ports', async () => {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  assert.equal(new Set(ports).size, 3);
  for (const p of ports) {
    assert.ok(p > 1024 && p < 65536);
    await new Promise<void>((resolve, reject) => {
      const srv = net.createServer().once('error', reject);
      srv.listen(p, '127.0.0.1', () => srv.close(() => resolve()));
    });
  }
});

void test('freePort never hands out a port that fetch() refuses', async () => {
  // Why the list exists: undici rejects these before connecting, whatever listens there.
  for (const port of FETCH_REFUSED_PORTS) {
    const err = await fetch(`http://127.0.0.1:${port}/`).then(
      () => undefined,
      (e: unknown) => e as { cause?: { message?: string } },
    );
    assert.equal(err?.cause?.message, 'bad port', `fetch to ${port}`);
  }
  // Its neighbours are fine (refused by nobody, or by the kernel when nothing listens).
  const near = await fetch('http://127.0.0.1:10081/', { signal: AbortSignal.timeout(2000) }).then(
    () => 'answered',
    (e: unknown) => (e as { cause?: { message?: string; code?: string } }).cause?.code ?? 'other',
  );
  assert.notEqual(near, 'other');
  // Make the first draw land on 10080: freePort must draw again.
  const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
  const high = Number(low) > 12_000 ? Number(low) : 32_768;
  const random = Math.random;
  let calls = 0;
  Math.random = () => (calls++ === 0 ? (10080 - 10_000 + 0.5) / (high - 10_000) : random());
  try {
    const port = await freePort();
    assert.ok(calls >= 2, 'the first draw was 10080');
    assert.notEqual(port, 10080);
  } finally {
    Math.random = random;
  }
});

void describe('NATS', () => {
  void test('starts with JetStream, answers PING, keeps streams across stop/start, kill() is SIGKILL', async (t) => {
    const notes: string[] = [];
    const nats = await timed('first start', () => startNats(), notes);
    started.push(nats);
    assert.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(nats.url, `nats://127.0.0.1:${nats.port}`);
    assert.ok(nats.isRunning());
    assert.equal(await natsPing(nats.port), 'PONG');

    const created = await jsRequest(
      nats.port,
      '$JS.API.STREAM.CREATE.T',
      JSON.stringify({ name: 'T', subjects: ['t.>'], storage: 'file' }),
    );
    assert.equal(created.error, undefined, JSON.stringify(created));
    const ack = await jsRequest(nats.port, 't.a', 'hello');
    assert.equal(ack.stream, 'T');
    assert.ok(fs.existsSync(`${nats.dataDir}/jetstream`), 'JetStream store lives in dataDir');

    const port = nats.port;
    await timed('graceful stop', () => nats.stop(), notes);
    assert.equal(nats.isRunning(), false);
    assert.equal(nats.pid, undefined);
    assert.notEqual(nats.lastExit?.signal, 'SIGKILL');
    assert.equal(await canConnect(port), false);

    await timed('restart', () => nats.start(), notes);
    assert.equal(nats.port, port);
    assert.equal(await natsPing(nats.port), 'PONG');
    const info = await jsRequest(nats.port, '$JS.API.STREAM.INFO.T');
    assert.equal((info.state as { messages: number }).messages, 1, 'stream survived the restart');

    await killedHard(nats);
    await timed('start after kill', () => nats.start(), notes);
    assert.equal(await natsPing(nats.port), 'PONG');
    t.diagnostic(`nats ${notes.join(', ')}`);
  });

  void test('jetstream: false gives a core-only server', async () => {
    const nats = await startNats({ jetstream: false });
    started.push(nats);
    assert.equal(await natsPing(nats.port), 'PONG');
    assert.equal(fs.existsSync(`${nats.dataDir}/jetstream`), false);
    await nats.stop();
  });
});

void describe('Redis', () => {
  void test('starts, answers PING, is EMPTY after stop/start on the same port, flushAll, kill()', async (t) => {
    const notes: string[] = [];
    const r = await timed('first start', () => startRedis(), notes);
    started.push(r);
    assert.equal(r.url, `redis://127.0.0.1:${r.port}`);
    assert.equal(await redis(r.port, 'PING'), 'PONG');
    assert.equal(await redis(r.port, 'SET', 'k', 'v'), 'OK');
    assert.equal(await redis(r.port, 'GET', 'k'), 'v');

    const port = r.port;
    await timed('graceful stop', () => r.stop(), notes);
    assert.equal(r.isRunning(), false);
    assert.equal(await canConnect(port), false);
    await timed('restart', () => r.start(), notes);
    assert.equal(r.port, port);
    assert.equal(await redis(r.port, 'GET', 'k'), null, 'restarted redis is empty');
    assert.equal(await redis(r.port, 'DBSIZE'), 0);
    assert.deepEqual(
      fs.readdirSync(r.dataDir).filter((f) => f.endsWith('.rdb') || f.startsWith('appendonly')),
      [],
    );

    await redis(r.port, 'SET', 'a', '1');
    await r.flushAll();
    assert.equal(await redis(r.port, 'DBSIZE'), 0);

    await killedHard(r);
    assert.doesNotMatch(r.logTail(5), /Received SIGTERM/);
    await r.start();
    assert.equal(await redis(r.port, 'PING'), 'PONG');
    t.diagnostic(`redis ${notes.join(', ')}`);
  });

  void test('pause() hangs the server without closing its port; resume() brings it back', async () => {
    const r = await startRedis();
    started.push(r);
    await r.pause();
    await assert.rejects(
      Promise.race([redis(r.port, 'PING'), sleep(300).then(() => Promise.reject(new Error('timeout')))]),
      /timeout/,
    );
    r.resume();
    assert.equal(await redis(r.port, 'PING'), 'PONG');
    await r.pause();
    await r.stop(); // stop() of a paused server still works
    assert.equal(r.isRunning(), false);
  });
});

void describe('MariaDB', () => {
  void test('starts with database and user, answers SQL, keeps data across stop/start and kill', async (t) => {
    const notes: string[] = [];
    const db = await timed('first start (template + copy + start)', () => startMariaDb(), notes);
    started.push(db);
    assert.equal(db.host, '127.0.0.1');
    assert.equal(await sql(db, 'select 1'), '1');
    assert.equal(await sql(db, 'select database()'), db.database);

    await sql(db, 'create table t (id int primary key); insert into t values (42)');
    // tests may create scratch databases
    await sql(db, 'create database scratch; drop database scratch');

    const port = db.port;
    await timed('graceful stop', () => db.stop(), notes);
    assert.equal(db.isRunning(), false);
    assert.notEqual(db.lastExit?.signal, 'SIGKILL');
    assert.equal(await canConnect(port), false);
    await timed('restart', () => db.start(), notes);
    assert.equal(db.port, port);
    assert.equal(await sql(db, 'select id from t'), '42');

    await sql(db, 'insert into t values (43)');
    await killedHard(db);
    await timed('start after kill (crash recovery)', () => db.start(), notes);
    assert.equal(await sql(db, 'select count(*) from t'), '2', 'committed rows survive a SIGKILL');

    const second = await timed('second instance (template cached)', () => startMariaDb(), notes);
    started.push(second);
    assert.notEqual(second.port, db.port);
    assert.notEqual(second.dataDir, db.dataDir);
    assert.equal(await sql(second, 'show tables'), '', 'instances do not share data');
    t.diagnostic(`mariadb ${notes.join(', ')}`);
  });
});

void describe('clean-up', () => {
  void test('stopAll() leaves no server process', async () => {
    const [n, r, m] = await Promise.all([startNats(), startRedis(), startMariaDb()]);
    started.push(n, r, m);
    const pids = started.map((s) => s.pid).filter((p): p is number => p !== undefined);
    assert.ok(pids.length >= 3);
    await stopAll();
    for (const s of started) assert.equal(s.isRunning(), false);
    for (const pid of pids) assert.ok(processGone(pid), `pid ${pid} still running`);
    for (const s of [n, r, m]) assert.equal(await canConnect(s.port), false);
  });

  const harness = pathToFileURL(new URL('../src/index.ts', import.meta.url).pathname).href;
  async function runChild(body: string): Promise<string> {
    const script = `import * as h from ${JSON.stringify(harness)};\n${body}`;
    const { stdout } = await execFileP(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        timeout: 60_000,
      },
    );
    return stdout;
  }

  void test('a process that forgets stopAll() exits anyway and its exit hook SIGKILLs its servers', async () => {
    const out = await runChild(
      'const r = await h.startRedis(); const n = await h.startNats();' +
        'console.log(JSON.stringify([[r.pid, r.dataDir], [n.pid, n.dataDir]]));',
    );
    const servers = JSON.parse(out.trim()) as [number, string][];
    for (const [pid, dir] of servers) {
      await waitGone(pid, `server pid ${pid} to die with its test process`);
      assert.equal(fs.existsSync(dir), false, `${dir} was not removed`);
    }
  });

  void test('servers orphaned by a SIGKILLed test process are reaped by the next one', async (t) => {
    const out = await runChild(
      'const r = await h.startRedis(); console.log(JSON.stringify([r.pid, r.dataDir]));' +
        "process.kill(process.pid, 'SIGKILL');",
    ).catch((err: { stdout?: string }) => err.stdout ?? '');
    const [pid, dir] = JSON.parse(out.trim()) as [number, string];
    if (processGone(pid)) {
      // Another test process started a server in between and its janitor got there first.
      t.diagnostic(`orphan ${pid} (${dir}) was already reaped by a concurrent test process`);
      return;
    }
    await runChild('const r = await h.startRedis(); await h.stopAll();');
    await waitGone(pid, `orphan ${pid} to be reaped`);
    assert.equal(fs.existsSync(dir), false);
  });
});
