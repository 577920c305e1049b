// run.ts still imports the process manager from here; it lives in @tickmesh/harness.
export { startProcess, stopAll as stopAllProcesses, tsxCommand } from '@tickmesh/harness';
