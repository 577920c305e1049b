// Whether the NATS connection is up right now, from the client's own status
// events. The request path (fail fast with UNAVAILABLE) uses this together
// with the publisher's last outcome, rather than the periodic health check,
// whose answer lags by up to a check interval and can time out on a busy
// event loop while publishing works fine.
import type { NatsConnection } from '@nats-io/transport-node';

export interface ConnectionState {
  connected(): boolean;
}

export function trackConnection(nc: NatsConnection): ConnectionState {
  let up = !nc.isClosed();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'close') up = false;
      else if (s.type === 'reconnect') up = true;
    }
  })().catch(() => undefined);
  nc.closed()
    .then(() => (up = false))
    .catch(() => (up = false));
  return { connected: () => up && !nc.isClosed() };
}
