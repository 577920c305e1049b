// A private MariaDB (Debian package mariadb-server). Its data dir is copied from a template
// built once per machine, user and MariaDB version, so a start costs seconds, not a
// mariadb-install-db.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { LOOPBACK } from '../ports.js';
import { findBinary, greets, ManagedServer, newInstance, type TestServer } from './server.js';

const execFileP = promisify(execFile);

/**
 * MariaDB on TCP 127.0.0.1:port with `database` created and `user`/`password` granted ALL
 * PRIVILEGES ON *.* (so tests may create scratch databases too).
 */
export interface MariaDbTestServer extends TestServer {
  readonly host: string;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Unix socket of the server. */
  readonly socketPath: string;
}

const READY_TIMEOUT_MS = Math.max(
  Number(process.env.TICKMESH_TEST_SERVER_TIMEOUT_MS ?? '') || 30_000,
  60_000,
);
const TMP = os.tmpdir();
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const USER = 'tickmesh';
const PASSWORD = 'tickmesh';
const DATABASE = 'tickmesh';
/** Bump when the template's contents (SQL, install options) change. */
const TEMPLATE_FORMAT = 1;
/** Options that shape the files on disk: identical at install time and at every start. */
const FILE_OPTS = ['--innodb-log-file-size=8M'];

let mysqlIds: { uid: number; gid: number } | undefined;
/** uid/gid of the `mysql` system user (mariadbd drops to it when started as root). */
function mysqlUser(): { uid: number; gid: number } {
  if (mysqlIds) return mysqlIds;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('mysql:'));
  const parts = line?.split(':');
  if (!parts || parts.length < 4) {
    throw new Error(
      "running as root, but there is no 'mysql' system user for mariadbd to run as " +
        '(it comes with the mariadb-server package: apt-get install -y mariadb-server)',
    );
  }
  mysqlIds = { uid: Number(parts[2]), gid: Number(parts[3]) };
  return mysqlIds;
}

function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function templateSql(): string {
  const pw = sqlString(PASSWORD);
  const lines = [
    // mariadb-install-db bootstraps with grant tables off: load them so CREATE USER works.
    'FLUSH PRIVILEGES;',
    `CREATE DATABASE IF NOT EXISTS \`${DATABASE}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
  ];
  // TCP logins from 127.0.0.1 match user@'localhost' unless name resolution is off: cover all.
  for (const host of ['localhost', '127.0.0.1', '%']) {
    lines.push(`CREATE USER IF NOT EXISTS '${USER}'@'${host}' IDENTIFIED BY ${pw};`);
    lines.push(`GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'${host}' WITH GRANT OPTION;`);
  }
  return lines.join('\n') + '\n';
}

let mariadbVersion: Promise<string> | undefined;
function getMariadbVersion(mariadbd: string): Promise<string> {
  mariadbVersion ??= execFileP(mariadbd, ['--version']).then(({ stdout }) => {
    const m = /Ver\s+(\S+)/.exec(stdout);
    return (m?.[1] ?? 'unknown').replace(/[^A-Za-z0-9.+_-]/g, '_');
  });
  return mariadbVersion;
}

let templatePromise: Promise<string> | undefined;

/**
 * A fully initialised data dir (system tables, database, user), built once per machine, user
 * and MariaDB version under os.tmpdir(). Built in a staging dir and published with an atomic
 * rename, so concurrent test processes never see a half-built template (a loser of the race
 * just discards its copy).
 */
function mariadbTemplate(): Promise<string> {
  templatePromise ??= buildTemplate().catch((err: unknown) => {
    templatePromise = undefined;
    throw err;
  });
  return templatePromise;
}

/** Staging dirs of builds that died half-way (older than an hour: no build takes that long). */
async function removeStaleStaging(): Promise<void> {
  const hourAgo = Date.now() - 3_600_000;
  for (const name of await fsp.readdir(TMP).catch(() => [] as string[])) {
    if (!name.startsWith('tickmesh-mariadb-template-staging-')) continue;
    const dir = path.join(TMP, name);
    const st = await fsp.stat(dir).catch(() => undefined);
    if (st && st.mtimeMs < hourAgo)
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function buildTemplate(): Promise<string> {
  const mariadbd = findBinary('mariadbd', 'mariadb-server');
  const installDb = findBinary('mariadb-install-db', 'mariadb-server');
  const version = await getMariadbVersion(mariadbd);
  const owner = IS_ROOT ? 'mysql' : String(process.getuid?.() ?? 'user');
  const template = path.join(TMP, `tickmesh-mariadb-template-${version}-${owner}-v${TEMPLATE_FORMAT}`);
  const marker = path.join(template, '.tickmesh-template-ok');
  if (fs.existsSync(marker)) return template;
  await removeStaleStaging();
  if (fs.existsSync(template)) {
    // Not ours or damaged: move it out of the way (atomic), then rebuild.
    await fsp.rename(template, `${template}.broken-${process.pid}-${Date.now()}`).catch(() => undefined);
  }

  const staging = await fsp.mkdtemp(path.join(TMP, 'tickmesh-mariadb-template-staging-'));
  try {
    await fsp.chmod(staging, 0o755);
    const sqlFile = path.join(staging, 'init.sql');
    await fsp.writeFile(sqlFile, templateSql(), { mode: 0o644 });
    const dataDir = path.join(staging, 'data');
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=socket',
      '--skip-test-db',
      '--skip-name-resolve',
      `--extra-file=${sqlFile}`,
      // mariadbd would otherwise use $TMPDIR, which the mysql user may not be able to write
      `--tmpdir=${staging}`,
      ...FILE_OPTS,
    ];
    if (IS_ROOT) {
      const { uid, gid } = mysqlUser();
      await fsp.chown(staging, uid, gid);
      args.push('--user=mysql');
    } else {
      args.push(`--auth-root-socket-user=${os.userInfo().username}`);
    }
    try {
      await execFileP(installDb, args, { cwd: staging, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      const out = `${e.stdout ?? ''}\n${e.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
      throw new Error(`mariadb-install-db failed while building the test template:\n${out}`, { cause: err });
    }
    await fsp.rm(sqlFile, { force: true });
    await fsp.writeFile(path.join(staging, '.tickmesh-template-ok'), `${version}\n`);
    try {
      await fsp.rename(staging, template);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !fs.existsSync(marker)) throw err;
      // Another process published the template first: use theirs.
      await fsp.rm(staging, { recursive: true, force: true });
    }
    return template;
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

class MariaDbServer extends ManagedServer implements MariaDbTestServer {
  readonly host = LOOPBACK;
  readonly user = USER;
  readonly password = PASSWORD;
  readonly database = DATABASE;
  readonly socketPath: string;

  constructor(
    port: number,
    dataDir: string,
    private readonly binary: string,
  ) {
    super('mariadb', port, dataDir, READY_TIMEOUT_MS);
    const sock = path.join(dataDir, 'mysqld.sock');
    // unix socket paths are limited to 107 bytes
    this.socketPath = sock.length < 100 ? sock : path.join('/tmp', `${path.basename(dataDir)}.sock`);
  }

  protected override command() {
    const args = [
      '--no-defaults',
      `--datadir=${path.join(this.dataDir, 'db')}`,
      `--socket=${this.socketPath}`,
      `--pid-file=${path.join(this.dataDir, 'mariadbd.pid')}`,
      `--tmpdir=${this.dataDir}`,
      `--port=${this.port}`,
      `--bind-address=${LOOPBACK}`,
      '--skip-name-resolve',
      ...FILE_OPTS,
      '--innodb-buffer-pool-size=64M',
      // commits reach the OS at once: they survive kill(), not a machine crash (fine for tests)
      '--innodb-flush-log-at-trx-commit=2',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
      '--max-connections=500',
    ];
    if (IS_ROOT) args.splice(1, 0, '--user=mysql');
    return { file: this.binary, args };
  }

  /** The server speaks first: 3-byte length, sequence id 0, protocol version 10. */
  protected override ready(): Promise<boolean> {
    return greets(this.port, (buf) => (buf.length < 5 ? undefined : buf[3] === 0 && buf[4] === 0x0a));
  }
}

/** A new MariaDB on a free port with its own data dir (a copy of the template); resolves once it answers. */
export async function startMariaDb(): Promise<MariaDbTestServer> {
  const binary = findBinary('mariadbd', 'mariadb-server');
  findBinary('mariadb-install-db', 'mariadb-server');
  const template = await mariadbTemplate();
  const { port, dir } = await newInstance('mariadb');
  await fsp.chmod(dir, 0o755);
  if (IS_ROOT) {
    const { uid, gid } = mysqlUser();
    await fsp.chown(dir, uid, gid);
  }
  // cp -a keeps ownership (mysql) and modes; reflinks where the filesystem can.
  await execFileP('cp', ['-a', path.join(template, 'data'), path.join(dir, 'db')]);
  return new MariaDbServer(port, dir, binary).firstStart();
}
