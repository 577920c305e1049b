// The one JetStream call of the ticker: publish a batch with its message id
// and a timeout, expecting the TICKS stream to store it. When JetStream
// answers "no responders" (the stream is gone, e.g. a NATS server that came
// back with an empty store), the stream is re-created (rate-limited) so the
// retried batch has somewhere to land.
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@tickmesh/kit';
import type { PublishFn } from './tick-publisher.js';
import { ensureTicksStream, type TicksStreamSettings } from './ticks-stream.js';

export interface JetStreamPublishOptions {
  js: JetStreamClient;
  stream: string;
  timeoutMs: number;
  /** Re-creates the stream after "no responders"; omit to only retry. */
  recreate?: { jsm: JetStreamManager; settings: TicksStreamSettings; minIntervalMs?: number };
  logger?: Logger;
}

export function jetStreamPublishFn(opts: JetStreamPublishOptions): PublishFn {
  let lastEnsure = 0;
  let ensuring: Promise<void> | undefined;
  const maybeRecreate = () => {
    const r = opts.recreate;
    if (!r || ensuring || Date.now() - lastEnsure < (r.minIntervalMs ?? 5000)) return;
    lastEnsure = Date.now();
    ensuring = ensureTicksStream(r.jsm, r.settings, opts.logger)
      .then(() => undefined)
      .catch((err: unknown) =>
        opts.logger?.warn({ err: String(err) }, 'could not re-create the ticks stream'),
      )
      .finally(() => {
        ensuring = undefined;
      });
  };
  return async (subject, data, msgId) => {
    try {
      const ack = await opts.js.publish(subject, data, {
        msgID: msgId,
        timeout: opts.timeoutMs,
        expect: { streamName: opts.stream },
      });
      return { streamSeq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      if (
        err instanceof Error &&
        /no responders|jetstream is not enabled/i.test(`${err.message} ${String(err.cause)}`)
      ) {
        maybeRecreate();
      }
      throw err;
    }
  };
}
