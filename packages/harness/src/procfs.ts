// What /proc says about a process, and the tail of a log file.
import * as fs from 'node:fs';

/** The fields of /proc/PID/stat after the command name: [0] state, [11] utime, [12] stime, [19] start time. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Start time of a process in clock ticks since boot: with the pid, its identity. */
export function startTime(pid: number): number | undefined {
  const fields = statFields(pid);
  return fields ? Number(fields[19]) : undefined;
}

/** The process with this pid is the one that started at `start` and has not exited (a zombie has). */
export function sameProcessRunning(pid: number, start: number | undefined): boolean {
  const fields = statFields(pid);
  return !!fields && fields[0] !== 'Z' && (start === undefined || Number(fields[19]) === start);
}

/** The kernel's view of a process (state, threads, CPU ticks), to tell a busy or stuck one from a waiting one. */
export function procState(pid: number | undefined): string {
  if (pid === undefined) return 'no pid';
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const pick = (key: string) => status.match(new RegExp(`^${key}:\\s*(.*)$`, 'm'))?.[1] ?? '?';
    const stat = statFields(pid) ?? [];
    return `state ${pick('State')}, threads ${pick('Threads')}, utime+stime ${Number(stat[11]) + Number(stat[12])} ticks`;
  } catch {
    return 'not in /proc';
  }
}

/** True when every thread of `pid` is in the stopped state (T) per /proc. */
export function allThreadsStopped(pid: number): boolean {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return false; // the process is gone
  }
  return tids.every((tid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
    } catch {
      return true; // a thread that ended in between does not run either
    }
  });
}

export function readTail(file: string, lines: number): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      return buf
        .toString('utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n')
        .trimEnd();
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '(no log)';
  }
}
