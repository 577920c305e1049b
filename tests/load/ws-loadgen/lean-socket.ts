// A minimal RFC 6455 client for the load generator, on a plain net.Socket
// that reads into one buffer shared by every socket of the worker (net's
// `onread`). The load generator shares two cores with the gateway it
// measures, so what a client costs shows in the figures: with the `ws`
// client, a worker spent ~25 µs per frame at 5,000 clients, ~2.4× what the
// gateway spends writing it. Most of that was a new ArrayBuffer per socket
// read (and the major collections that external memory triggers) and the
// stream layers of ws's receiver. Here a read lands in the shared buffer and
// its frames are handed over as views of it, valid only during the
// `message` call (FrameDecoder copies what it keeps).
//
// What it does not do, because the gateway never needs it from a load
// client: TLS, extensions (permessage-deflate), redirects, proxies, and UTF-8
// validation of text frames (a text frame that is not JSON counts as a bad
// frame in ClientState).
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const SHARED_READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
const HEADER_END = Buffer.from('\r\n\r\n');
/** Bytes of response headers accepted at most. */
const MAX_HEADER_BYTES = 16 * 1024;

export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

export interface FrameHandlers {
  /** A complete data message; `data` is valid only during the call. */
  message(data: Buffer, isBinary: boolean): void;
  /** A control frame (close, ping, pong); `payload` is valid only during the call. */
  control(opcode: number, payload: Buffer): void;
  /** The peer broke the protocol: close with this code. */
  protocolError(code: number, reason: string): void;
}

/**
 * Splits a server-to-client byte stream into frames and messages (pure: no
 * socket). Bytes of an incomplete frame are copied and kept until the rest
 * arrives; complete frames are passed on as views of the chunk.
 */
export class FrameReader {
  private rest: Buffer | undefined;
  private fragments: Buffer[] | undefined;
  private fragmentsBinary = false;
  private fragmentsBytes = 0;
  private failed = false;

  constructor(
    private readonly handlers: FrameHandlers,
    private readonly maxPayload: number,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    const d = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = undefined;
    let off = 0;
    while (off + 2 <= d.length) {
      const b0 = d[off]!;
      const b1 = d[off + 1]!;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if ((b0 & 0x70) !== 0) return void this.fail(1002, 'reserved bits set');
      if ((b1 & 0x80) !== 0) return void this.fail(1002, 'masked frame from the server');
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) {
        if (off + 4 > d.length) break;
        length = d.readUInt16BE(off + 2);
        header = 4;
      } else if (length === 127) {
        if (off + 10 > d.length) break;
        const high = d.readUInt32BE(off + 2);
        if (high > 0x1fffff) return void this.fail(1009, 'frame too large');
        length = high * 2 ** 32 + d.readUInt32BE(off + 6);
        header = 10;
      }
      if (length > this.maxPayload) return void this.fail(1009, 'frame too large');
      if (off + header + length > d.length) break;
      const payload = d.subarray(off + header, off + header + length);
      off += header + length;
      if (!this.frame(fin, opcode, payload)) return;
    }
    if (off < d.length) this.rest = Buffer.from(d.subarray(off)); // a copy: the chunk is reused
  }

  /** Returns false when the stream is broken. */
  private frame(fin: boolean, opcode: number, payload: Buffer): boolean {
    if (opcode >= 8) {
      if (!fin || payload.length > 125) return this.fail(1002, 'bad control frame');
      if (opcode !== Opcode.close && opcode !== Opcode.ping && opcode !== Opcode.pong)
        return this.fail(1002, `unknown opcode ${opcode}`);
      this.handlers.control(opcode, payload);
      return true;
    }
    if (opcode === Opcode.continuation) {
      if (!this.fragments) return this.fail(1002, 'continuation without a message');
      this.fragmentsBytes += payload.length;
      if (this.fragmentsBytes > this.maxPayload) return this.fail(1009, 'message too large');
      this.fragments.push(Buffer.from(payload));
      if (fin) {
        const whole = Buffer.concat(this.fragments);
        this.fragments = undefined;
        this.handlers.message(whole, this.fragmentsBinary);
      }
      return true;
    }
    if (opcode !== Opcode.text && opcode !== Opcode.binary)
      return this.fail(1002, `unknown opcode ${opcode}`);
    if (this.fragments) return this.fail(1002, 'new message inside a fragmented one');
    if (fin) {
      this.handlers.message(payload, opcode === Opcode.binary);
    } else {
      this.fragments = [Buffer.from(payload)];
      this.fragmentsBinary = opcode === Opcode.binary;
      this.fragmentsBytes = payload.length;
    }
    return true;
  }

  private fail(code: number, reason: string): false {
    this.failed = true;
    this.rest = undefined;
    this.fragments = undefined;
    this.handlers.protocolError(code, reason);
    return false;
  }
}

/** A client-to-server frame: masked, as RFC 6455 requires. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(header + 4 + length);
  out[0] = 0x80 | opcode;
  if (header === 2) out[1] = 0x80 | length;
  else if (header === 4) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    out.writeUInt32BE(length >>> 0, 6);
  }
  const m = nextMask();
  out.writeUInt32BE(m, header);
  for (let i = 0; i < length; i++) out[header + 4 + i] = payload[i]! ^ ((m >>> (24 - 8 * (i & 3))) & 0xff);
  return out;
}

// Masking keys come from a pool filled 4 KiB at a time: one randomBytes call
// per frame (every pong answers a gateway probe) was ~2% of a load worker's
// CPU, on the cores the gateway under test uses too.
const maskPool = new Uint32Array(1024);
let maskNext = maskPool.length;

function nextMask(): number {
  if (maskNext === maskPool.length) {
    randomFillSync(maskPool);
    maskNext = 0;
  }
  return maskPool[maskNext++]!;
}

export interface LeanSocketOptions {
  protocols: string[];
  localAddress?: string;
  handshakeTimeoutMs: number;
  maxPayload: number;
}

export interface LeanSocketEvents {
  open(): void;
  /** `data` is valid only during the call. */
  message(data: Buffer, isBinary: boolean): void;
  error(err: Error & { code?: string }): void;
  /** Once, when the connection is gone: the peer's close code, or 1006 without one. */
  close(code: number): void;
}

type State = 'connecting' | 'open' | 'closing' | 'closed';

export class LeanWebSocket {
  private state: State = 'connecting';
  private readonly socket: Socket;
  private readonly key = randomBytes(16).toString('base64');
  private header: Buffer | undefined;
  private readonly reader: FrameReader;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closeCode = 1006;

  constructor(
    url: string,
    private readonly opts: LeanSocketOptions,
    private readonly on: LeanSocketEvents,
  ) {
    const u = new URL(url);
    if (u.protocol !== 'ws:') throw new Error(`only ws:// URLs, not ${u.protocol}`);
    const port = Number(u.port || 80);
    this.reader = new FrameReader(
      {
        message: (data, isBinary) => this.on.message(data, isBinary),
        control: (opcode, payload) => this.control(opcode, payload),
        protocolError: (code, reason) => this.close(code, reason),
      },
      opts.maxPayload,
    );
    this.socket = connect({
      host: u.hostname,
      port,
      localAddress: opts.localAddress,
      onread: { buffer: SHARED_READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.onRead(buf, n) },
    });
    this.socket.setNoDelay(true);
    this.handshakeTimer = setTimeout(
      () => this.failHandshake('handshake timed out', 'ETIMEDOUT'),
      opts.handshakeTimeoutMs,
    );
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: ${opts.protocols.join(', ')}\r\n\r\n`,
      );
    });
    this.socket.on('error', (err: Error & { code?: string }) => this.on.error(err));
    this.socket.on('close', () => {
      clearTimeout(this.handshakeTimer);
      if (this.state === 'closed') return;
      this.state = 'closed';
      this.on.close(this.closeCode);
    });
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** A text frame for a string, a binary frame for bytes. Dropped unless open. */
  send(data: string | Uint8Array): void {
    if (this.state !== 'open') return;
    this.socket.write(
      typeof data === 'string'
        ? clientFrame(Opcode.text, Buffer.from(data))
        : clientFrame(Opcode.binary, Buffer.from(data.buffer, data.byteOffset, data.byteLength)),
    );
  }

  /** Sends a close frame; the server answers and ends the connection. */
  close(code: number, reason = ''): void {
    if (this.state === 'connecting') return this.terminate();
    if (this.state !== 'open') return;
    this.state = 'closing';
    const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
    payload.writeUInt16BE(code, 0);
    payload.write(reason, 2);
    this.socket.write(clientFrame(Opcode.close, payload));
    this.socket.end();
  }

  terminate(): void {
    this.socket.destroy();
  }

  /** Returns true: keep reading. */
  private onRead(buf: Uint8Array, n: number): boolean {
    const chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
    if (this.state === 'connecting') this.handshake(chunk);
    else if (this.state !== 'closed') this.reader.push(chunk);
    return true;
  }

  private handshake(chunk: Buffer): void {
    const data = this.header ? Buffer.concat([this.header, chunk]) : chunk;
    const end = data.indexOf(HEADER_END);
    if (end < 0) {
      if (data.length > MAX_HEADER_BYTES) return this.failHandshake('response headers too large');
      this.header = Buffer.from(data);
      return;
    }
    this.header = undefined;
    const lines = data.subarray(0, end).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1];
    if (status !== '101') return this.failHandshake(`Unexpected server response: ${status ?? lines[0]}`);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const accept = createHash('sha1')
      .update(this.key + GUID)
      .digest('base64');
    if (headers.get('upgrade')?.toLowerCase() !== 'websocket')
      return this.failHandshake('Invalid Upgrade header');
    if (headers.get('sec-websocket-accept') !== accept)
      return this.failHandshake('Invalid Sec-WebSocket-Accept header');
    const protocol = headers.get('sec-websocket-protocol');
    if (this.opts.protocols.length > 0 && (!protocol || !this.opts.protocols.includes(protocol)))
      return this.failHandshake('Server sent no subprotocol');
    if (headers.has('sec-websocket-extensions')) return this.failHandshake('Server sent an extension');
    clearTimeout(this.handshakeTimer);
    this.state = 'open';
    this.on.open();
    const rest = data.subarray(end + HEADER_END.length);
    if (rest.length > 0 && this.state === 'open') this.reader.push(rest);
  }

  private failHandshake(message: string, code?: string): void {
    if (this.state !== 'connecting') return;
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    const err: Error & { code?: string } = new Error(message);
    if (code) err.code = code;
    this.on.error(err);
    this.socket.destroy();
    this.on.close(1006);
  }

  private control(opcode: number, payload: Buffer): void {
    if (opcode === Opcode.ping) {
      // The gateway's liveness and read-lag probes: answered at once, same payload.
      if (this.state === 'open') this.socket.write(clientFrame(Opcode.pong, payload));
    } else if (opcode === Opcode.close) {
      this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      if (this.state === 'open') {
        this.state = 'closing';
        this.socket.write(
          clientFrame(Opcode.close, payload.length >= 2 ? payload.subarray(0, 2) : Buffer.alloc(0)),
        );
      }
      this.socket.end();
    }
  }
}
