// The channel options every tickmesh client gets: reconnect backoff bounded so
// a server that comes back is found within seconds, retries only for the
// idempotent methods named, a deadline interceptor first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientChannelOptions, normalizeTarget } from '../src/grpc/client.js';
import { parseConfig, grpcClientConfig } from '../src/config.js';

const base = { unaryDeadlineMs: 1000, service: 'tickmesh.price.v1.PriceService' };

test('reconnect backoff defaults to 250 ms growing to 2 s, not grpc-js 1 s to 120 s', () => {
  const o = clientChannelOptions(base);
  assert.equal(o['grpc.initial_reconnect_backoff_ms'], 250);
  assert.equal(o['grpc.max_reconnect_backoff_ms'], 2000);
});

test('reconnect backoff maximum is honoured, and the first wait never exceeds it', () => {
  assert.equal(
    clientChannelOptions({ ...base, reconnectBackoffMaxMs: 5000 })['grpc.max_reconnect_backoff_ms'],
    5000,
  );
  const tiny = clientChannelOptions({ ...base, reconnectBackoffMaxMs: 100 });
  assert.equal(tiny['grpc.max_reconnect_backoff_ms'], 100);
  assert.equal(tiny['grpc.initial_reconnect_backoff_ms'], 100);
});

test('explicit channel options win over the defaults', () => {
  const o = clientChannelOptions({ ...base, channelOptions: { 'grpc.max_reconnect_backoff_ms': 50 } });
  assert.equal(o['grpc.max_reconnect_backoff_ms'], 50);
});

test('retries are configured only for the methods named', () => {
  const none = JSON.parse(String(clientChannelOptions(base)['grpc.service_config']));
  assert.deepEqual(none.methodConfig, []);
  const some = JSON.parse(
    String(clientChannelOptions({ ...base, retryableMethods: ['GetQuote'] })['grpc.service_config']),
  );
  assert.deepEqual(some.methodConfig[0].name, [{ service: base.service, method: 'GetQuote' }]);
  assert.deepEqual(some.methodConfig[0].retryPolicy.retryableStatusCodes, ['UNAVAILABLE']);
  assert.deepEqual(some.loadBalancingConfig, [{ round_robin: {} }]);
});

test('GRPC_CLIENT_RECONNECT_MAX_MS is read and validated', () => {
  assert.equal(parseConfig(grpcClientConfig, {}).GRPC_CLIENT_RECONNECT_MAX_MS, 2000);
  assert.equal(
    parseConfig(grpcClientConfig, { GRPC_CLIENT_RECONNECT_MAX_MS: '750' }).GRPC_CLIENT_RECONNECT_MAX_MS,
    750,
  );
  assert.throws(
    () => parseConfig(grpcClientConfig, { GRPC_CLIENT_RECONNECT_MAX_MS: '10' }),
    /GRPC_CLIENT_RECONNECT_MAX_MS/,
  );
  assert.throws(
    () => parseConfig(grpcClientConfig, { GRPC_CLIENT_RECONNECT_MAX_MS: 'soon' }),
    /GRPC_CLIENT_RECONNECT_MAX_MS/,
  );
});

test('bare host:port targets resolve through dns:///', () => {
  assert.equal(normalizeTarget('127.0.0.1:50052'), 'dns:///127.0.0.1:50052');
  assert.equal(normalizeTarget('dns:///price-cache:50052'), 'dns:///price-cache:50052');
});
