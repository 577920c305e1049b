// A pausable TCP proxy, for network faults between two services.
import { once } from 'node:events';
import * as net from 'node:net';
import { freePort, LOOPBACK } from './ports.js';

interface ProxiedPair {
  client: net.Socket;
  upstream: net.Socket | undefined;
}

/**
 * A TCP proxy in front of one address, for network faults between two services:
 *  - `blackhole()`: a partition. Nothing passes in either direction (sockets stop being
 *    read, as with packets dropped and retransmitted later); new connections are accepted
 *    but not forwarded. `heal()` lets everything flow again, nothing lost, like TCP after
 *    a partition heals.
 *  - `reset()`: every connection is destroyed (RST) and new ones are refused until heal().
 */
export class TcpProxy {
  private readonly pairs = new Set<ProxiedPair>();
  private mode: 'pass' | 'blackhole' | 'refuse' = 'pass';
  private readonly held: ProxiedPair[] = [];

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }, listenPort = 0): Promise<TcpProxy> {
    // Connections are accepted only once listening, so the proxy exists by the time one arrives.
    const ref: { proxy?: TcpProxy } = {};
    const server = net.createServer({ pauseOnConnect: true }, (socket) => ref.proxy!.accept(socket));
    server.listen(listenPort || (await freePort()), LOOPBACK);
    await once(server, 'listening');
    ref.proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, target);
    return ref.proxy;
  }

  get state(): string {
    return this.mode;
  }

  get connections(): number {
    return this.pairs.size;
  }

  private accept(client: net.Socket): void {
    const pair: ProxiedPair = { client, upstream: undefined };
    client.on('error', () => this.drop(pair));
    client.on('close', () => this.drop(pair));
    if (this.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    this.pairs.add(pair);
    if (this.mode === 'blackhole') {
      this.held.push(pair);
      return;
    }
    this.dial(pair);
  }

  private dial(pair: ProxiedPair): void {
    const upstream = net.connect(this.target);
    pair.upstream = upstream;
    upstream.on('error', () => this.drop(pair));
    upstream.on('close', () => this.drop(pair));
    // pipe() honours backpressure both ways; pause()/resume() below stop and restart it.
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    if (this.mode === 'pass') pair.client.resume();
  }

  private drop(pair: ProxiedPair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }

  /** A network partition: nothing passes until heal(). */
  blackhole(): void {
    this.mode = 'blackhole';
    for (const pair of this.pairs) {
      pair.client.pause();
      pair.upstream?.pause();
    }
  }

  /** Destroys every connection with a RST and refuses new ones until heal(). */
  reset(): void {
    this.mode = 'refuse';
    for (const pair of [...this.pairs]) {
      pair.client.resetAndDestroy();
      pair.upstream?.resetAndDestroy();
      this.pairs.delete(pair);
    }
    this.held.length = 0;
  }

  heal(): void {
    const wasBlackhole = this.mode === 'blackhole';
    this.mode = 'pass';
    if (!wasBlackhole) return;
    for (const pair of this.pairs) {
      if (!pair.upstream) continue;
      pair.client.resume();
      pair.upstream.resume();
    }
    for (const pair of this.held.splice(0)) if (this.pairs.has(pair)) this.dial(pair);
  }

  close(): void {
    this.server.close();
    for (const pair of [...this.pairs]) this.drop(pair);
  }
}
