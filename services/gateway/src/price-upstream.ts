// UpstreamSource over gRPC: PriceService.StreamQuotes(all: true) on a channel
// made by the kit (dns:/// + round_robin + keepalive), and a watcher of the
// channel's connectivity that reports when it leaves READY (a GOAWAY from
// connection ageing does that), so the feed can replace its stream before the
// old connection is closed.
import { connectivityState, status, type ServiceError } from '@grpc/grpc-js';
import type { PriceServiceClient } from '@tickmesh/kit/proto';
import type { UpstreamSource } from './upstream-feed.js';

export function priceServiceSource(client: PriceServiceClient): UpstreamSource {
  return {
    open(handlers) {
      const call = client.streamQuotes({ symbols: [], all: true, maxUpdatesPerSecond: 0 });
      let ended = false;
      const end = (reason: string) => {
        if (ended) return;
        ended = true;
        handlers.end(reason);
      };
      call.on('data', handlers.message);
      call.on('error', (err: ServiceError) =>
        end(`${status[err.code] ?? err.code}: ${err.details ?? err.message}`),
      );
      call.on('end', () => end('stream ended by the server'));
      return { cancel: () => call.cancel() };
    },
    watchConnectivity(onLeaveReady) {
      const channel = client.getChannel();
      let stopped = false;
      const watch = () => {
        if (stopped) return;
        let state: connectivityState;
        try {
          state = channel.getConnectivityState(false);
          channel.watchConnectivityState(state, Infinity, () => {
            if (stopped) return;
            let next: connectivityState;
            try {
              next = channel.getConnectivityState(false);
            } catch {
              return;
            }
            if (state === connectivityState.READY && next !== connectivityState.READY) onLeaveReady();
            if (next !== connectivityState.SHUTDOWN) watch();
          });
        } catch {
          // The channel was closed: nothing left to watch.
        }
      };
      watch();
      return () => {
        stopped = true;
      };
    },
  };
}
