import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  commonConfig,
  describeConfig,
  int,
  list,
  oneOf,
  parseConfig,
  port,
  url,
  bool,
} from '../src/config.js';

const spec = {
  PORT: { schema: port(), default: '50051', doc: 'gRPC port' },
  MODE: { schema: oneOf('a', 'b'), default: 'a', doc: 'mode' },
  TARGET: { schema: url('nats'), doc: 'required URL' },
  SECRET: { schema: int(1, 10), default: '5', doc: 'a secret', secret: true },
  FLAG: { schema: bool(), default: 'false', doc: 'a flag' },
  ITEMS: { schema: list(), default: 'x, y,,z', doc: 'a list' },
};

test('defaults apply and values are typed', () => {
  const c = parseConfig(spec, { TARGET: 'nats://127.0.0.1:4222' });
  assert.equal(c.PORT, 50051);
  assert.equal(c.MODE, 'a');
  assert.equal(c.FLAG, false);
  assert.deepEqual(c.ITEMS, ['x', 'y', 'z']);
});

test('every bad variable is named with what is allowed', () => {
  assert.throws(
    () => parseConfig(spec, { PORT: 'abc', MODE: 'c', FLAG: 'yes', SECRET: '99' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      assert.match(text, /PORT="abc": must be an integer from 0 to 65535/);
      assert.match(text, /MODE="c": must be one of: a, b/);
      assert.match(text, /TARGET: required/);
      assert.match(text, /FLAG="yes": must be true or false/);
      assert.match(text, /SECRET=<redacted>: must be an integer from 1 to 10/);
      assert.doesNotMatch(text, /99/);
      return true;
    },
  );
});

test('out-of-range port and wrong URL scheme are refused', () => {
  assert.throws(() => parseConfig(spec, { PORT: '70000', TARGET: 'nats://x' }), /PORT="70000"/);
  assert.throws(
    () => parseConfig(spec, { TARGET: 'http://x' }),
    /TARGET="http:\/\/x": must be a URL with scheme nats/,
  );
});

test('describeConfig lists every variable with its default', () => {
  const md = describeConfig('svc', commonConfig);
  for (const name of Object.keys(commonConfig)) assert.match(md, new RegExp(`\`${name}\``));
});

test('a service started with a bad value exits 2 naming the variable', () => {
  const fixture = fileURLToPath(new URL('./fixtures/echo-server.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, GRPC_PORT: 'not-a-port', LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /GRPC_PORT="not-a-port": must be an integer from 0 to 65535/);
});
