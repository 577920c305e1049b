// Free TCP ports on the loopback interface.
import * as fs from 'node:fs';
import * as net from 'node:net';

export const LOOPBACK = '127.0.0.1';

const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(low);
    if (Number.isInteger(n) && n > 12_000) return n;
  } catch {
    // not Linux
  }
  return 32_768;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: LOOPBACK, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * Ports fetch() (undici) and browsers refuse to connect to, from the Fetch standard's "bad
 * port" list: only 10080 lies in the range freePort draws from. A stack whose gateway drew
 * it was healthy while every readiness poll failed with "bad port" (a CI flake, about one
 * run in a hundred), and Chromium would refuse its live page too.
 */
export const FETCH_REFUSED_PORTS: ReadonlySet<number> = new Set([10080]);

/**
 * A currently free TCP port on 127.0.0.1. Ports are picked at random BELOW the kernel's
 * ephemeral range, so outgoing connections never sit on a port a stopped test server wants
 * back on restart; never the same port twice within one process.
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  const low = 10_000;
  for (let i = 0; i < 100; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port) || FETCH_REFUSED_PORTS.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  // Fall back to the kernel's choice.
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => {
        handedOut.add(addr.port);
        resolve(addr.port);
      });
    });
  });
}
