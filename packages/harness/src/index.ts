// @tickmesh/harness: the one test harness of tickmesh.
export {
  describeExit,
  ManagedProcess,
  startProcess,
  stopAll,
  tsxCommand,
  type ProcessExit,
  type ProcessSpec,
} from './process.js';
export { MissingBinaryError, type TestServer } from './servers/server.js';
export { startNats, type NatsTestServer } from './servers/nats.js';
export { startRedis, type RedisTestServer } from './servers/redis.js';
export { startMariaDb, type MariaDbTestServer } from './servers/mariadb.js';
export {
  ROOT,
  serviceProcess,
  startStack,
  type ServiceName,
  type ServiceOptions,
  type ServiceProcess,
  type ServiceSpec,
  type Stack,
  type StackOptions,
} from './stack.js';
export { TcpProxy } from './tcp-proxy.js';
export { FETCH_REFUSED_PORTS, freePort } from './ports.js';
export { waitUntil, type WaitOptions } from './wait.js';
export { httpGet, metricValue, type HttpAnswer } from './http.js';
export { healthClient, healthStatus, waitForHealth } from './health-client.js';
