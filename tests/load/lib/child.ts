// The child side of the benchmark's tools (load clients, bare servers): when a tool is
// done it prints one line `RESULT <json>`, which the parent reads (resultOf in
// scenarios/streaming.ts). No imports: the tools stay lean.
import { pathToFileURL } from 'node:url';

/** Prints a child's result line. */
export function printResult(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** True when the module with this import.meta.url is the process's entry point. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href;
}
