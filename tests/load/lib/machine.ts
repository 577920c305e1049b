// Facts about the machine a run measured, recorded in every report: figures
// from different machines (or a busy one) are not comparable.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  kernel: string;
  node: string;
  natsServer: string;
  redisServer: string;
  mariadb: string;
  ghz: string;
  /** 1, 5 and 15 minute load averages when the run started: others' work skews figures. */
  loadAverageAtStart: number[];
  freeMemoryGiBAtStart: number;
  openFilesLimit: string;
}

/** First line a command prints (some tools print their version on stderr). */
function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) return 'not found';
  return (r.stdout.trim() || r.stderr.trim()).split('\n')[0] ?? '';
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return m?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function openFilesLimit(): string {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? `soft ${m[1]}, hard ${m[2]}` : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** ghz built by `go install` reports "dev": add the version deploy/versions.env pins. */
function ghzVersion(ghzPath: string): string {
  const reported = firstLine(ghzPath, ['--version']) || 'unknown';
  try {
    const pinned = /^GHZ_VERSION=(\S+)/m.exec(
      readFileSync(new URL('../../../deploy/versions.env', import.meta.url), 'utf8'),
    )?.[1];
    return pinned ? `${reported} (pinned ${pinned})` : reported;
  } catch {
    return reported;
  }
}

const PATHS = { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/local/sbin:/sbin` };

export function machineFacts(ghzPath: string): MachineFacts {
  const env = { ...process.env, ...PATHS };
  const run = (cmd: string, args: string[]) => {
    try {
      return (
        execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, env, stdio: ['ignore', 'pipe', 'pipe'] })
          .trim()
          .split('\n')[0] ?? ''
      );
    } catch {
      return 'not found';
    }
  };
  const c = cpus();
  return {
    cores: c.length,
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: osName(),
    kernel: release(),
    node: process.version,
    natsServer: run('nats-server', ['--version']),
    redisServer: run('redis-server', ['--version']),
    mariadb: run('mariadbd', ['--version']),
    ghz: ghzVersion(ghzPath),
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    freeMemoryGiBAtStart: Math.round((freemem() / 2 ** 30) * 10) / 10,
    openFilesLimit: openFilesLimit(),
  };
}
