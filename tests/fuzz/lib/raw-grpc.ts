// gRPC calls with raw request bytes (generated messages encoded by the ts-proto types, or
// bytes that are no message at all), and the verdict on each answer: a server that fails
// safely answers OK or a meaningful status, never INTERNAL/UNKNOWN, and never hangs.
import * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer) => b;

/** Status codes that mean "the server failed", whatever the input. */
export const BAD_CODES = new Set([
  grpc.status.UNKNOWN,
  grpc.status.INTERNAL,
  grpc.status.UNIMPLEMENTED,
  grpc.status.DATA_LOSS,
  grpc.status.DEADLINE_EXCEEDED,
]);

export interface Answer {
  code: number;
  details: string;
  response?: Buffer;
}

export function rawClient(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
}

export function unary(
  client: grpc.Client,
  path: string,
  body: Uint8Array,
  timeoutMs = 10_000,
): Promise<Answer> {
  return new Promise((resolve) => {
    client.makeUnaryRequest<Buffer, Buffer>(
      path,
      identity,
      identity,
      Buffer.from(body),
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, res) =>
        resolve(
          err
            ? { code: err.code, details: err.details }
            : { code: grpc.status.OK, details: '', response: res },
        ),
    );
  });
}

/** A server-streaming call: its first message (or status), then cancelled. */
export function firstOfStream(
  client: grpc.Client,
  path: string,
  body: Uint8Array,
  timeoutMs = 10_000,
): Promise<Answer> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest<Buffer, Buffer>(path, identity, identity, Buffer.from(body));
    let done = false;
    const finish = (a: Answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(a);
      call.cancel();
    };
    const timer = setTimeout(
      () => finish({ code: grpc.status.DEADLINE_EXCEEDED, details: 'no message within the timeout' }),
      timeoutMs,
    );
    call.on('data', (m: Buffer) => finish({ code: grpc.status.OK, details: '', response: m }));
    call.on('error', (e: grpc.ServiceError) => finish({ code: e.code, details: e.details }));
    call.on('end', () => finish({ code: grpc.status.OK, details: 'ended' }));
  });
}

/** Runs `work` over `items` with at most `concurrency` in flight; returns results in order. */
export async function pool<T, R>(
  items: T[],
  concurrency: number,
  work: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        out[i] = await work(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Tally of answers by status name, for the report. */
export function tally(answers: Answer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const name = grpc.status[a.code] ?? String(a.code);
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}
