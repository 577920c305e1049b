// The producer client against a scripted IngestService (real grpc-js, no
// NATS): a stream that stays open but never acknowledges is cut after
// ackTimeoutMs, and the whole window is resent on a new stream.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  IngestServiceService,
  type PublishTicksRequest,
  type PublishTicksResponse,
} from '@tickmesh/kit/proto';
import { ProducerClient } from '../src/producer-client.js';

describe('ProducerClient', () => {
  let server: grpc.Server;
  let target = '';
  /** Seqs received per stream, in order of arrival. */
  const streams: number[][] = [];

  before(async () => {
    server = new grpc.Server();
    server.addService(IngestServiceService, {
      publishTick: (_call: unknown, cb: grpc.sendUnaryData<never>) =>
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'not here' }),
      publishTicks: (call: grpc.ServerDuplexStream<PublishTicksRequest, PublishTicksResponse>) => {
        const seqs: number[] = [];
        const first = streams.length === 0;
        streams.push(seqs);
        call.on('data', (req: PublishTicksRequest) => {
          for (const t of req.ticks) seqs.push(t.producerSeq);
          // The first stream swallows everything and stays open; later ones ack.
          if (!first)
            call.write({ ack: { producerId: 'p-1', storedThroughSeq: seqs.at(-1)! }, rejection: undefined });
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    target = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  it('cuts a stream that acknowledges nothing for ackTimeoutMs and resends the window on a new one', async () => {
    const events: string[] = [];
    const producer = new ProducerClient({
      target,
      producerId: 'p-1',
      ackTimeoutMs: 300,
      reconnectMinMs: 10,
      reconnectMaxMs: 20,
      onStream: (event, detail) => events.push(detail ? `${event}: ${detail}` : event),
    });
    try {
      for (let i = 0; i < 50; i++)
        await producer.send({ symbol: 'THYAO', price: 100 + i, producerSeq: i + 1 });
      const started = Date.now();
      await producer.flush(10_000);
      const took = Date.now() - started;
      assert.ok(took >= 250, `not cut before the timeout (${took} ms)`);
      assert.equal(streams.length, 2);
      assert.deepEqual(
        streams[0],
        Array.from({ length: 50 }, (_, i) => i + 1),
        'the silent stream got every tick',
      );
      assert.deepEqual(streams[1], streams[0], 'the new stream got the whole window again, in order');
      assert.equal(producer.stats.reconnects, 1);
      assert.equal(producer.stats.resent, 50);
      assert.equal(producer.ackedThrough, 50);
      assert.match(events[1] ?? '', /^broken: no ack for \d+ ms with 50 ticks written$/);
      assert.deepEqual([events[0], events[2]], ['connected', 'connected']);
    } finally {
      await producer.close();
    }
  });
});
