// NATS connection used by the ticker, the simulator and the price-cache:
// connect with a timeout, reconnect forever, log state changes, and a health
// check that proves the server (and JetStream) answers.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from '../logger.js';
import type { DependencyCheck } from '../health.js';
import { withTimeout } from '../health.js';

export interface NatsOptions {
  url: string;
  name: string;
  logger: Logger;
  connectTimeoutMs?: number;
}

export async function connectNats(opts: NatsOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers: opts.url.split(','),
    name: opts.name,
    timeout: opts.connectTimeoutMs ?? 5000,
    // A service outlives NATS restarts: keep trying, readiness says NOT_SERVING meanwhile.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 200,
    pingInterval: 5000,
    maxPingOut: 2,
    waitOnFirstConnect: true,
  });
  opts.logger.info({ server: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
        opts.logger.warn(
          { event: s.type, data: 'data' in s ? String(s.data) : undefined },
          'NATS connection',
        );
      }
    }
  })().catch(() => undefined);
  return nc;
}

/** Healthy when the server answers a ping and JetStream answers an account-info request. */
export function natsCheck(nc: NatsConnection, jetstream = true): DependencyCheck {
  return {
    name: 'nats',
    timeoutMs: 1500,
    check: async () => {
      if (nc.isClosed()) throw new Error('connection closed');
      await withTimeout(nc.flush(), 1000, 'NATS did not answer a ping');
      if (jetstream) {
        const jsm = await jetstreamManager(nc, { timeout: 1000 });
        await jsm.getAccountInfo();
      }
    },
  };
}
