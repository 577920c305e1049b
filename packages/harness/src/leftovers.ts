// Nothing outlives a test process. On exit (and on SIGINT/SIGTERM/SIGHUP) every child still
// running gets SIGKILL and the instance directories are removed. A test process that was
// itself SIGKILLed leaves a record of each child in <tmp>/tickmesh-processes-<uid>/: the
// next test process that starts one kills them (matched by pid AND start time, so a reused
// pid is never hit) and removes the instance directories the dead process owned.
//
// TICKMESH_KEEP_TEST_DATA=1 keeps instance directories (the processes are still killed).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sameProcessRunning, startTime } from './procfs.js';

// ------------------------------------------------------------------ instance directories

export const KEEP_TEST_DATA = process.env.TICKMESH_KEEP_TEST_DATA === '1';
const TMP = os.tmpdir();
const OWNER_FILE = 'owner.json';
const INSTANCE_DIR = /^tickmesh-[a-z]+-[A-Za-z0-9]{6}$/;

interface DirOwner {
  ownerPid: number;
  ownerStart: number | undefined;
  keep: boolean;
}

const ownedDirs = new Set<string>();

/**
 * A new directory <tmp>/tickmesh-<kind>-XXXXXX for one instance (a server's data and log).
 * It is removed when this process exits, unless TICKMESH_KEEP_TEST_DATA=1; a later test
 * process removes it when this one died without its exit hook.
 */
export async function makeInstanceDir(kind: string): Promise<string> {
  await reapLeftovers();
  const dir = await fsp.mkdtemp(path.join(TMP, `tickmesh-${kind}-`));
  const owner: DirOwner = { ownerPid: process.pid, ownerStart: startTime(process.pid), keep: KEEP_TEST_DATA };
  await fsp.writeFile(path.join(dir, OWNER_FILE), JSON.stringify(owner));
  ownedDirs.add(dir);
  installExitHooks();
  return dir;
}

// --------------------------------------------------------------------- process records

const RECORDS = path.join(TMP, `tickmesh-processes-${process.getuid?.() ?? 'user'}`);

interface ProcessRecord {
  ownerPid: number;
  ownerStart: number | undefined;
  pid: number;
  start: number | undefined;
  name: string;
}

export function writeRecord(name: string, pid: number): string | undefined {
  const rec: ProcessRecord = {
    ownerPid: process.pid,
    ownerStart: startTime(process.pid),
    pid,
    start: startTime(pid),
    name,
  };
  const file = path.join(RECORDS, `${process.pid}-${pid}.json`);
  try {
    fs.mkdirSync(RECORDS, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(rec));
    return file;
  } catch {
    return undefined; // best effort: only the reaping of a crashed run depends on it
  }
}

export function forgetRecord(file: string | undefined): void {
  try {
    if (file) fs.rmSync(file, { force: true });
  } catch {
    // best effort
  }
}

let reaping: Promise<void> | undefined;

/**
 * Once per test process: kill the children of test processes that died without their exit
 * hook (SIGKILL, OOM) and remove their instance directories. Live owners are untouched.
 */
export function reapLeftovers(): Promise<void> {
  reaping ??= (async () => {
    await reapProcesses();
    await reapDirs();
  })().catch(() => undefined);
  return reaping;
}

async function reapProcesses(): Promise<void> {
  const files = await fsp.readdir(RECORDS).catch(() => [] as string[]);
  for (const file of files) {
    const full = path.join(RECORDS, file);
    try {
      const rec = JSON.parse(await fsp.readFile(full, 'utf8')) as ProcessRecord;
      if (sameProcessRunning(rec.ownerPid, rec.ownerStart)) continue;
      if (sameProcessRunning(rec.pid, rec.start)) {
        process.kill(rec.pid, 'SIGKILL');
        for (let i = 0; i < 100 && sameProcessRunning(rec.pid, rec.start); i++) await sleep(20);
      }
      await fsp.rm(full, { force: true });
    } catch {
      // best effort
    }
  }
}

async function reapDirs(): Promise<void> {
  const entries = await fsp.readdir(TMP).catch(() => [] as string[]);
  for (const name of entries) {
    if (!INSTANCE_DIR.test(name)) continue;
    const dir = path.join(TMP, name);
    try {
      const owner = JSON.parse(await fsp.readFile(path.join(dir, OWNER_FILE), 'utf8')) as DirOwner;
      if (owner.keep || sameProcessRunning(owner.ownerPid, owner.ownerStart)) continue;
      await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // not ours, or already gone
    }
  }
}

// ------------------------------------------------------------------------- exit hooks

let hooksInstalled = false;

const killers: Array<() => void> = [];

function killEverythingSync(): void {
  for (const kill of killers) kill();
  if (KEEP_TEST_DATA) return;
  for (const dir of ownedDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
    } catch {
      // best effort
    }
  }
}

/** Installs the exit hooks (once); `killSync` is called first, then the directories go. */
export function installExitHooks(killSync?: () => void): void {
  if (killSync && !killers.includes(killSync)) killers.push(killSync);
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killEverythingSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killEverythingSync();
      process.removeListener(sig, onSignal);
      // Re-raise with the default action unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}
