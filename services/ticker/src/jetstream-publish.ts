// The one JetStream call of the ticker: publish a batch with its message id
// and a timeout, expecting the TICKS stream to store it (and, on a lane, the
// lane's last message to be the one the writer knew). When JetStream
// answers "no responders" (the stream is gone, e.g. a NATS server that came
// back with an empty store), the stream is re-created (rate-limited) so the
// retried batch has somewhere to land.
import { JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@tickmesh/kit';
import { LaneConflictError } from './lanes.js';
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

/** JetStream's "wrong last sequence" (10071): the lane moved on. */
const WRONG_LAST_SEQUENCE = 10071;

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
  return async (subject, data, msgId, expectedLastSubjectSeq) => {
    try {
      const ack = await opts.js.publish(subject, data, {
        msgID: msgId,
        timeout: opts.timeoutMs,
        expect: { streamName: opts.stream, lastSubjectSequence: expectedLastSubjectSeq },
      });
      return { streamSeq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) {
        throw new LaneConflictError(`${subject}: ${err.message}`);
      }
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
