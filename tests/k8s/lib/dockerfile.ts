// A small Dockerfile reader (instructions per stage, ARG defaults resolved) and a
// .dockerignore matcher, enough to check deploy/Dockerfile offline.
import { readFileSync } from 'node:fs';

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
export interface Stage {
  name: string | undefined;
  from: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): { globalArgs: Record<string, string>; stages: Stage[] } {
  const logical: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    const trimmed = line.trimStart();
    if (buf === '' && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (buf !== '' && trimmed.startsWith('#')) return; // comment lines inside a continuation are dropped
    if (buf === '') start = i + 1;
    if (line.endsWith('\\')) {
      buf += line.slice(0, -1) + ' ';
      return;
    }
    buf += line;
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(buf);
    if (m) logical.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buf = '';
  });
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of logical) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      const from = (m?.[1] ?? '').replace(/\$\{?(\w+)\}?/g, (_, v: string) => globalArgs[v] ?? `$${v}`);
      stages.push({ name: m?.[2], from, instructions: [] });
    } else if (stages.length === 0 && ins.keyword === 'ARG') {
      const [k, v] = ins.args.split('=');
      if (k) globalArgs[k.trim()] = (v ?? '').trim();
    } else if (stages.length > 0) {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

export function readDockerfile(path: string) {
  return parseDockerfile(readFileSync(path, 'utf8'));
}

/** The patterns of a .dockerignore (comments and blanks dropped). */
export function parseDockerignore(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  const p = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    if (ch === '*' && p[i + 1] === '*') {
      re += '.*';
      i++;
      if (p[i + 1] === '/') i++;
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // a match on a directory excludes everything below it
  return new RegExp(`^${re}(?:/.*)?$`);
}

/** Whether `path` (relative to the context) is excluded; later `!` patterns re-include. */
export function isIgnored(patterns: string[], path: string): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = negate ? raw.slice(1) : raw;
    if (globToRegExp(pattern).test(path)) ignored = !negate;
  }
  return ignored;
}
