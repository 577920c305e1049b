// ClientTransport over a `ws` WebSocket. Sends never block and never throw;
// a close queues the close frame and destroys the socket if the peer has not
// read it within the grace period (a client that stopped reading would
// otherwise hold its buffers for ws's 30 s close timeout).
//
// Fan-out frames are shared by many sockets, so the WebSocket framing (header
// + payload) is built once per frame and the same bytes are written to each
// socket, skipping ws's per-send framing (~82k
// vs ~73k deliveries/s). This relies on two ws internals, checked at start
// and per send: the socket (`_socket`) and a sender with nothing queued
// (`_sender._state === 0`, empty `_queue`: it only queues for compression and
// Blobs, neither used here). When they do not hold, ws.send is used.
//
// Read lag: bufferedAmount only counts bytes still in user space; a client
// that reads slowly can have megabytes waiting in the kernel's socket buffers,
// invisible here. So the transport sends a WebSocket ping carrying a probe id
// along with a data frame (at most one in flight, at most one per probe
// interval, in the same write: no extra syscall) and the client's pong comes
// back only after it has read everything before it. The age of the unanswered
// probe is how far behind the client reads (docs/gateway.md "Backpressure and
// slow clients"; the probe interval widens with the clients: lag-probe-pacing.ts).
// Liveness counts any pong: a peer whose pongs do not echo the ping's payload
// (RFC 6455 says they must) is alive, only its lag cannot be measured, so after
// a few such pongs it is left to the backlog check alone.
import * as wsModule from 'ws';
import { WebSocket } from 'ws';
import type { ClientTransport, OutFrame } from './fanout.js';
import { protoPayload } from './proto-codec.js';
import { CloseCode, type Encoding } from './protocol.js';

interface SenderInternals {
  _state: number;
  _queue: unknown[];
}
interface WsInternals {
  _socket?: { write(data: Buffer): boolean; writable: boolean; cork?(): void; uncork?(): void };
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

function frameOf(payload: Buffer, opcode: 1 | 2): Buffer {
  const parts = frameFn!(payload, { fin: true, rsv1: false, opcode, mask: false, readOnly: false });
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** The complete WebSocket text frame of `frame` (unmasked, server to client), built once. */
export function wireBytes(frame: OutFrame): Buffer | undefined {
  if (!frameFn) return undefined;
  return (frame.wire ??= frameOf(frame.payload, 1));
}

/** A server-to-client ping frame (unmasked) whose 4-byte payload is the probe id. */
export function probeFrame(id: number): Buffer {
  const b = Buffer.allocUnsafe(6);
  b[0] = 0x89; // FIN + opcode 9 (ping)
  b[1] = 4;
  b.writeUInt32BE(id >>> 0, 2);
  return b;
}

export interface WsTransportOptions {
  /** After a close frame is queued, how long the peer may take to read it. */
  closeGraceMs: number;
  /** Least time between read-lag probes sent along with data frames; 0: none with data. Read at each send when a function. */
  probeIntervalMs?: number | (() => number);
  /** Write pre-framed bytes straight to the socket when ws's internals allow (tests turn it off). */
  preframe?: boolean;
  /** json: text frames as built; proto: binary protobuf ServerMessages (the tickmesh.v1.proto subprotocol). */
  encoding?: Encoding;
  /** A frame had no binary form and the connection is being closed with 1011. */
  onEncodeFailure?: () => void;
  /** Round trip of each answered probe, in ms. */
  onProbeAnswered?: (ms: number) => void;
  /** Monotonic clock in ms (performance.now by default: wall-clock steps must not look like lag). */
  now?: () => number;
}

/** Pongs that do not answer the probe in flight before lag measurement is given up for a peer. */
const MISMATCHED_PONGS_TOLERATED = 3;

export class WsTransport implements ClientTransport {
  private closing = false;
  private readonly internals: WsInternals;
  /** True when sends write pre-framed bytes straight to the socket. */
  readonly preframed: boolean;
  private readonly closeGraceMs: number;
  private readonly binary: boolean;
  private readonly probeIntervalMs: () => number;
  private readonly now: () => number;
  private probeSeq = 0;
  /** The probe in flight: its id and when it was written. */
  private probeId = -1;
  private probeSentMs = 0;
  private lastProbeMs = -Infinity;
  /** When the oldest ping not followed by any pong was sent; undefined when none is waiting. */
  private pingSinceMs: number | undefined;
  private mismatchedPongs = 0;
  /** The peer's pongs do not echo our payloads: no lag probes, liveness only. */
  private lagUnmeasurable = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly opts: WsTransportOptions,
  ) {
    this.closeGraceMs = opts.closeGraceMs;
    this.binary = opts.encoding === 'proto';
    const interval = opts.probeIntervalMs ?? 0;
    this.probeIntervalMs = typeof interval === 'function' ? interval : () => interval;
    this.now = opts.now ?? (() => performance.now());
    this.internals = ws as unknown as WsInternals;
    ws.on('pong', (data: Buffer) => this.onPong(data));
    this.preframed =
      (opts.preframe ?? true) &&
      frameFn !== undefined &&
      typeof this.internals._socket?.write === 'function' &&
      typeof this.internals._sender?._state === 'number' &&
      Array.isArray(this.internals._sender?._queue);
  }

  send(frame: OutFrame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const payload = this.binary ? protoPayload(frame) : frame.payload;
    if (!payload) {
      // A message without a binary form (a bug the tests are there to catch).
      // Skipping it would leave a silent gap; closing with 1011 makes the
      // client reconnect and re-snapshot. Never thrown into the fan-out.
      this.opts.onEncodeFailure?.();
      this.close(CloseCode.internalError, 'internal error');
      return;
    }
    const probeAt = this.probeDue();
    if (this.preframed) {
      const sender = this.internals._sender!;
      const socket = this.internals._socket;
      if (sender._state === 0 && sender._queue.length === 0 && socket?.writable) {
        // Framed once per frame and encoding, then the same bytes to every socket.
        const wire = this.binary ? (frame.protoWire ??= frameOf(payload, 2)) : wireBytes(frame)!;
        if (probeAt === undefined) {
          socket.write(wire);
          return;
        }
        // Corked: the frame and the ping leave in one writev.
        socket.cork?.();
        socket.write(wire);
        socket.write(probeFrame(this.startProbe(probeAt)));
        socket.uncork?.();
        return;
      }
    }
    this.ws.send(payload, { binary: this.binary, compress: false, fin: true });
    if (probeAt !== undefined) this.ping(probeAt);
  }

  /** The time now if a read-lag probe should go with the next frame, else undefined (read no clock then). */
  private probeDue(): number | undefined {
    if (this.lagUnmeasurable || this.probeId >= 0) return undefined;
    const interval = this.probeIntervalMs();
    if (interval === 0) return undefined;
    const now = this.now();
    return now - this.lastProbeMs >= interval ? now : undefined;
  }

  /**
   * The liveness check: sends a ping unless one is waiting for a pong, and
   * returns how long the oldest unanswered ping has waited, in ms.
   */
  probe(): number {
    const now = this.now();
    if (this.pingSinceMs !== undefined) return now - this.pingSinceMs;
    if (this.ws.readyState === WebSocket.OPEN) this.ping(now);
    return 0;
  }

  /** How long the probe in flight has gone unanswered (ms): how far behind the client reads. 0 when none. */
  get readLagMs(): number {
    return this.probeId < 0 ? 0 : this.now() - this.probeSentMs;
  }

  private startProbe(now: number): number {
    this.probeSeq = (this.probeSeq + 1) >>> 0;
    this.probeId = this.probeSeq;
    this.probeSentMs = now;
    this.lastProbeMs = now;
    this.pingSinceMs ??= now;
    return this.probeId;
  }

  /** A ping through ws, carrying a probe id when lag can be measured and none is in flight. */
  private ping(now: number): void {
    const id = this.lagUnmeasurable || this.probeId >= 0 ? undefined : this.startProbe(now);
    this.pingSinceMs ??= now;
    try {
      this.ws.ping(id === undefined ? undefined : probeFrame(id).subarray(2));
    } catch {
      // closing already: no pong will come
      if (id !== undefined) this.probeId = -1;
      this.pingSinceMs = undefined;
    }
  }

  private onPong(data: Buffer): void {
    this.pingSinceMs = undefined; // any pong shows the peer alive
    if (this.probeId < 0) return;
    if (data.length === 4 && data.readUInt32BE(0) === this.probeId) {
      this.probeId = -1;
      this.mismatchedPongs = 0;
      this.opts.onProbeAnswered?.(this.now() - this.probeSentMs);
      return;
    }
    // A pong that does not carry our probe id: unsolicited, or a peer that
    // does not echo payloads. A few in a row, and lag is not measured for it.
    if (++this.mismatchedPongs >= MISMATCHED_PONGS_TOLERATED) {
      this.lagUnmeasurable = true;
      this.probeId = -1;
    }
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
