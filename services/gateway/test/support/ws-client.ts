// A WebSocket test client: records every message, waits for one matching a
// predicate (bounded), and reports how the connection closed.
import { WebSocket, type ClientOptions } from 'ws';
import { ServerMessage } from '@tickmesh/kit/proto';
import { clientMessageOf, serverMessageBody } from '../../src/proto-codec.js';

export type Msg = Record<string, unknown> & { type: string };

export const PROTO = 'tickmesh.v1.proto';

/** A binary ServerMessage as { type: <the oneof field set>, ...its fields } (quotes as market.v1 Quote). */
export function fromServerMessage(m: ServerMessage): Msg {
  const one = serverMessageBody(m);
  return one ? { type: one.type, ...one.body } : { type: '<not one message>' };
}

export class TestClient {
  readonly messages: Msg[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private listeners = new Set<() => void>();
  private cursor = 0;
  private nextId = 1;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        try {
          this.messages.push(fromServerMessage(ServerMessage.decode(data as Buffer)));
        } catch {
          this.messages.push({ type: '<undecodable>' });
        }
        for (const l of [...this.listeners]) l();
        return;
      }
      try {
        this.messages.push(JSON.parse(String(data)) as Msg);
      } catch {
        this.messages.push({ type: '<unparsable>', raw: String(data) });
      }
      for (const l of [...this.listeners]) l();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const l of [...this.listeners]) l();
      });
    });
    ws.on('error', () => undefined);
  }

  static async connect(
    url: string,
    opts: ClientOptions & { protocols?: string[] } = {},
  ): Promise<TestClient> {
    const ws = new WebSocket(url, opts.protocols ?? ['tickmesh.v1.json'], opts);
    const client = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connect timed out')), 10_000);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`HTTP ${res.statusCode}`));
      });
    });
    return client;
  }

  /** Sends an op with a fresh id (unless given); returns the id. */
  op(op: Record<string, unknown>): number | string {
    if (this.ws.protocol === PROTO) {
      // Binary ids are strings.
      const id = String((op.id as number | string | undefined) ?? this.nextId++);
      this.ws.send(
        clientMessageOf({
          op: String(op.op),
          id,
          symbols: op.symbols as string[] | '*' | undefined,
          token: op.token as string | undefined,
        }),
        { binary: true },
      );
      return id;
    }
    const id = (op.id as number | string | undefined) ?? this.nextId++;
    this.ws.send(JSON.stringify({ ...op, id }));
    return id;
  }

  raw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** Waits for the next message (after the cursor) matching `pred`; moves the cursor past it. */
  async next(pred: (m: Msg) => boolean = () => true, timeoutMs = 10_000, what = 'message'): Promise<Msg> {
    const found = await this.waitUntil(
      () => {
        for (let i = this.cursor; i < this.messages.length; i++) {
          if (pred(this.messages[i]!)) {
            this.cursor = i + 1;
            return this.messages[i];
          }
        }
        return undefined;
      },
      timeoutMs,
      what,
    );
    return found;
  }

  /** The reply or error answering `id`. */
  answer(id: number | string, timeoutMs = 10_000): Promise<Msg> {
    return this.next(
      (m) => (m.type === 'reply' || m.type === 'error' || m.type === 'pong') && m.id === id,
      timeoutMs,
      `answer to ${id}`,
    );
  }

  /** Waits until `check` returns a value (re-checked on every message), bounded. */
  waitUntil<T>(check: () => T | undefined, timeoutMs = 10_000, what = 'condition'): Promise<T> {
    return new Promise((resolve, reject) => {
      const tryIt = () => {
        const v = check();
        if (v !== undefined) {
          done();
          resolve(v);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; last messages: ${JSON.stringify(this.messages.slice(-5)).slice(0, 800)}`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const listener = () => void tryIt();
      this.listeners.add(listener);
      tryIt();
    });
  }

  /** Every quote received so far (from quotes frames), in order. */
  quotes(): Array<Record<string, unknown>> {
    return this.messages
      .filter((m) => m.type === 'quotes')
      .flatMap((m) => m.quotes as Array<Record<string, unknown>>);
  }

  close(): void {
    this.ws.terminate();
  }
}
