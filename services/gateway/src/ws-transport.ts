// ClientTransport over a `ws` WebSocket. Sends never block and never throw;
// a close queues the close frame and destroys the socket if the peer has not
// read it within the grace period (a client that stopped reading would
// otherwise hold its buffers for ws's 30 s close timeout).
//
// Fan-out frames are shared by many sockets, so the WebSocket framing (header
// + payload) is built once per frame and the same bytes are written to each
// socket, skipping ws's per-send framing (DESIGN.md reference figures: ~82k
// vs ~73k deliveries/s). This relies on two ws internals, checked at start
// and per send: the socket (`_socket`) and a sender with nothing queued
// (`_sender._state === 0`, empty `_queue`: it only queues for compression and
// Blobs, neither used here). When they do not hold, ws.send is used.
import * as wsModule from 'ws';
import { WebSocket } from 'ws';
import type { ClientTransport, OutFrame } from './fanout.js';

interface SenderInternals {
  _state: number;
  _queue: unknown[];
}
interface WsInternals {
  _socket?: { write(data: Buffer): boolean; writable: boolean };
  _sender?: SenderInternals;
}
type FrameFn = (
  data: Buffer,
  options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean },
) => Buffer[];

// From the module namespace: ws's ESM entry exports Sender but, unlike its
// CommonJS entry, does not attach it to the WebSocket class.
const frameFn: FrameFn | undefined = (() => {
  const sender = (wsModule as unknown as { Sender?: { frame?: FrameFn } }).Sender;
  return typeof sender?.frame === 'function' ? sender.frame.bind(sender) : undefined;
})();

/** Whether fan-out frames can be pre-framed with this ws version (checked by the tests). */
export const preframingAvailable = frameFn !== undefined;

/** The complete WebSocket text frame of `frame` (unmasked, server to client), built once. */
export function wireBytes(frame: OutFrame): Buffer | undefined {
  if (!frameFn) return undefined;
  if (!frame.wire) {
    const parts = frameFn(frame.payload, { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false });
    frame.wire = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
  return frame.wire;
}

export class WsTransport implements ClientTransport {
  private closing = false;
  private readonly internals: WsInternals;
  /** True when sends write pre-framed bytes straight to the socket. */
  readonly preframed: boolean;

  constructor(
    private readonly ws: WebSocket,
    private readonly closeGraceMs: number,
    preframe = true,
  ) {
    this.internals = ws as unknown as WsInternals;
    this.preframed =
      preframe &&
      frameFn !== undefined &&
      typeof this.internals._socket?.write === 'function' &&
      typeof this.internals._sender?._state === 'number' &&
      Array.isArray(this.internals._sender?._queue);
  }

  send(frame: OutFrame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.preframed) {
      const sender = this.internals._sender!;
      const socket = this.internals._socket;
      if (sender._state === 0 && sender._queue.length === 0 && socket?.writable) {
        socket.write(wireBytes(frame)!);
        return;
      }
    }
    this.ws.send(frame.payload, { binary: false, compress: false, fin: true });
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN && !this.closing;
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    if (this.ws.readyState === WebSocket.OPEN) {
      try {
        this.ws.close(code, reason);
      } catch {
        this.ws.terminate();
        return;
      }
    }
    const timer = setTimeout(() => this.ws.terminate(), this.closeGraceMs);
    timer.unref();
    this.ws.once('close', () => clearTimeout(timer));
  }

  terminate(): void {
    this.closing = true;
    this.ws.terminate();
  }
}
