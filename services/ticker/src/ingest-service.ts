// tickmesh.ingest.v1.IngestService: validation, producer identity and the
// wait for JetStream's ack around the shared TickPublisher.
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import {
  IngestServiceService,
  type PublishTickRequest,
  type PublishTickResponse,
  type PublishTicksRequest,
  type PublishTicksResponse,
} from '@tickmesh/kit/proto';
import type { Tick } from '@tickmesh/kit/proto';
import { InvalidArgumentError, ResourceExhaustedError, UnavailableError } from '@tickmesh/kit';
import type { CallContext, MalformedMessage, StreamSink, GrpcServer, Logger } from '@tickmesh/kit';
import type { TickerMetrics } from './metrics.js';
import { producerIdProblem, type SeqAllocator } from './producer-ids.js';
import { PublishTicksSession } from './publish-ticks-session.js';
import type { StoreResult, TickPublisher } from './tick-publisher.js';
import { bandProblem, validateTick, type RejectReason, type ValidationRules } from './tick-validation.js';

export const INGEST_SERVICE_NAME = 'tickmesh.ingest.v1.IngestService';

export interface IngestServiceOptions {
  publisher: TickPublisher;
  rules: ValidationRules;
  metrics?: TickerMetrics;
  logger?: Logger;
  /** NATS (with JetStream) answers and the publisher is not failing. */
  isAvailable: () => boolean;
  /** Identity of unary ticks sent without producer_id / producer_seq. */
  unaryProducerId: string;
  unarySeq: SeqAllocator;
  unaryTimeoutMs: number;
  stream: {
    maxInFlight: number;
    ackIntervalMs: number;
    unavailableAfterMs: number;
    watchdogIntervalMs?: number;
  };
}

export class IngestService {
  constructor(private readonly opts: IngestServiceOptions) {}

  register(server: GrpcServer): void {
    const implementation: UntypedServiceImplementation = {
      publishTick: server.handlers.unary((req: PublishTickRequest, ctx) => this.publishTick(req, ctx)),
      publishTicks: server.handlers.bidiStream(
        (requests: AsyncIterable<PublishTicksRequest | MalformedMessage>, sink) =>
          this.publishTicks(requests, sink as StreamSink<PublishTicksResponse>),
      ),
    };
    server.addService(INGEST_SERVICE_NAME, IngestServiceService, implementation);
  }

  async publishTick(req: PublishTickRequest, ctx: Pick<CallContext, 'signal'>): Promise<PublishTickResponse> {
    const { tick } = req;
    if (!tick) this.refuse('tick', 'missing_tick', 'is required');
    // Either both identity fields are given (the producer's own counter) or neither (we assign them).
    const assign = tick.producerId === '' && tick.producerSeq === 0;
    if (!assign) {
      const idProblem = producerIdProblem(tick.producerId);
      if (idProblem) {
        this.refuse(
          'tick.producer_id',
          'producer_id_invalid',
          tick.producerId === '' ? 'is required when producer_seq is set' : idProblem,
        );
      }
      if (!Number.isSafeInteger(tick.producerSeq) || tick.producerSeq <= 0) {
        this.refuse('tick.producer_seq', 'producer_seq_invalid', 'must be > 0 when producer_id is set');
      }
    }
    const result = validateTick(tick, this.opts.rules);
    if (!result.ok) this.refuse(result.problem.field, result.problem.reason, result.problem.message);
    let band = bandProblem(result.tick, result.instrument, this.opts.rules);
    if (band instanceof Promise) band = await band; // only when the reference is not cached
    if (band) this.refuse(band.field, band.reason, band.message);
    if (!this.opts.isAvailable())
      throw new UnavailableError('NATS JetStream is unavailable: tick not stored, retry later');
    const exhausted = this.opts.publisher.exhausted;
    if (exhausted) throw new ResourceExhaustedError(exhausted);

    const timeoutMs = this.opts.unaryTimeoutMs;
    const normalized: Tick = result.tick;
    if (assign) normalized.producerId = this.opts.unaryProducerId;
    // Gives up when the client goes away or after timeoutMs. A plain timer (not
    // AbortSignal.timeout) so a busy server does not keep thousands of them alive.
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(), timeoutMs);
    const onCancel = () => giveUp.abort();
    ctx.signal.addEventListener('abort', onCancel, { once: true });
    try {
      const stored = await new Promise<StoreResult>((resolve, reject) => {
        // The tick may still be stored later; it was just not reported stored, which is what counts.
        const onAbort = () =>
          reject(
            new UnavailableError(`tick not stored within ${timeoutMs} ms: NATS JetStream is slow or down`),
          );
        giveUp.signal.addEventListener('abort', onAbort, { once: true });
        const done = (err: Error | undefined, r: StoreResult | undefined) =>
          err ? reject(err) : resolve(r!);
        this.enqueue(normalized, assign, done, giveUp.signal).catch((err: unknown) =>
          reject(
            giveUp.signal.aborted ? new UnavailableError(`no room for the tick within ${timeoutMs} ms`) : err,
          ),
        );
      });
      return {
        producerId: normalized.producerId,
        producerSeq: normalized.producerSeq,
        streamSeq: stored.streamSeq,
        duplicate: stored.duplicate,
      };
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onCancel);
    }
  }

  /**
   * Assigned sequences are taken only when the tick goes into its queue, in
   * the same synchronous step: concurrent calls then queue in seq order, and
   * the price-cache (which drops a seq below one it applied) loses none.
   */
  private async enqueue(
    tick: Tick,
    assign: boolean,
    done: (e: Error | undefined, r: StoreResult | undefined) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const publisher = this.opts.publisher;
    for (;;) {
      if (assign) tick.producerSeq = this.opts.unarySeq.next();
      if (publisher.trySubmit(tick, done)) return;
      await publisher.waitForSpace(tick.symbol, signal);
    }
  }

  async publishTicks(
    requests: AsyncIterable<PublishTicksRequest | MalformedMessage>,
    sink: StreamSink<PublishTicksResponse>,
  ): Promise<void> {
    const session = new PublishTicksSession(
      {
        publisher: this.opts.publisher,
        rules: this.opts.rules,
        metrics: this.opts.metrics,
        logger: this.opts.logger,
        isAvailable: this.opts.isAvailable,
        ...this.opts.stream,
      },
      sink,
    );
    await session.run(requests);
  }

  private refuse(field: string, reason: RejectReason, message: string): never {
    this.opts.metrics?.reject(reason);
    throw new InvalidArgumentError(field, message);
  }
}
