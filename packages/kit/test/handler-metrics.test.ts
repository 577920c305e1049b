// The unary wrapper's metrics, without a network: each call counts once
// under its method and status code, and its duration is observed once,
// whichever way it ends (answer, domain error, malformed bytes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Metadata, status, type handleUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { NotFoundError } from '../src/errors.js';
import { HandlerFactory, MalformedMessage } from '../src/grpc/handlers.js';
import { createLogger } from '../src/logger.js';

function fakeCall(path: string, request: unknown) {
  return Object.assign(new EventEmitter(), {
    request,
    metadata: new Metadata(),
    getPath: () => path,
    getPeer: () => 'ipv4:127.0.0.1:1',
  });
}

async function call(
  handle: handleUnaryCall<{ id: string }, unknown>,
  path: string,
  request: unknown,
): Promise<{ err: Partial<ServiceError> | null; value: unknown }> {
  return new Promise((resolve) => {
    // The wrapper only uses the parts a fake call has.
    handle(fakeCall(path, request) as never, (err, value) =>
      resolve({ err: err as Partial<ServiceError> | null, value }),
    );
  });
}

void test('unary calls are counted by method and code, and each duration observed once', async () => {
  const registry = new Registry();
  const h = new HandlerFactory(createLogger('test', 'silent'), registry);
  const get = h.unary<{ id: string }, unknown>(async (req) => {
    if (req.id === 'missing') throw new NotFoundError('no such thing');
    return { id: req.id };
  });
  assert.deepEqual((await call(get, '/t.S/Get', { id: 'a' })).value, { id: 'a' });
  await call(get, '/t.S/Get', { id: 'b' });
  assert.equal((await call(get, '/t.S/Get', { id: 'missing' })).err?.code, status.NOT_FOUND);
  assert.equal(
    (await call(get, '/t.S/Other', new MalformedMessage('bad wire type'))).err?.code,
    status.INVALID_ARGUMENT,
  );

  const handled = await registry.getSingleMetric('grpc_server_handled_total')!.get();
  const count = (method: string, code: string) =>
    handled.values.find((v) => v.labels.method === method && v.labels.code === code)?.value ?? 0;
  assert.equal(count('/t.S/Get', 'OK'), 2);
  assert.equal(count('/t.S/Get', 'NOT_FOUND'), 1);
  assert.equal(count('/t.S/Other', 'INVALID_ARGUMENT'), 1);
  assert.equal(handled.values.length, 3, 'no other series');

  const duration = await registry.getSingleMetric('grpc_server_handling_seconds')!.get();
  const observed = (method: string) =>
    duration.values.find(
      (v) =>
        (v as { metricName?: string }).metricName === 'grpc_server_handling_seconds_count' &&
        v.labels.method === method,
    )?.value;
  assert.equal(observed('/t.S/Get'), 3);
  assert.equal(observed('/t.S/Other'), 1);
});
