// A private nats-server: the pinned build in .tools/bin (`make tools`), the one deployed.
import * as fs from 'node:fs';
import { projectPath } from '@tickmesh/kit';
import { LOOPBACK } from '../ports.js';
import { greets, ManagedServer, newInstance, type TestServer } from './server.js';

/** nats://127.0.0.1:PORT, JetStream enabled (unless jetstream: false) with its store in dataDir. */
export interface NatsTestServer extends TestServer {
  readonly url: string;
}

function natsServerBinary(): string {
  const pinned = projectPath('.tools', 'bin', 'nats-server');
  try {
    fs.accessSync(pinned, fs.constants.X_OK);
    return pinned;
  } catch {
    throw new Error(
      `${pinned} not found: the tests run the pinned nats-server. ` +
        'Build it with `make tools` (or bash deploy/install-tools.sh nats-server).',
    );
  }
}

class NatsServer extends ManagedServer implements NatsTestServer {
  constructor(
    port: number,
    dataDir: string,
    private readonly binary: string,
    private readonly jetstream: boolean,
  ) {
    super('nats', port, dataDir);
  }

  get url(): string {
    return `nats://${LOOPBACK}:${this.port}`;
  }

  protected override command() {
    const args = ['-a', LOOPBACK, '-p', String(this.port), '-n', `tickmesh-test-${this.port}`];
    if (this.jetstream) args.push('-js', '-sd', this.dataDir);
    return { file: this.binary, args };
  }

  /** The server speaks first: an INFO line, announcing JetStream when it is on. */
  protected override ready(): Promise<boolean> {
    return greets(this.port, (buf) => {
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return undefined;
      const line = buf.subarray(0, eol).toString('utf8');
      return line.startsWith('INFO ') && (!this.jetstream || line.includes('"jetstream":true'));
    });
  }
}

/** A new nats-server on a free port with its own directory; resolves once it answers. */
export async function startNats(opts?: { jetstream?: boolean }): Promise<NatsTestServer> {
  const binary = natsServerBinary();
  const { port, dir } = await newInstance('nats');
  return new NatsServer(port, dir, binary, opts?.jetstream ?? true).firstStart();
}
