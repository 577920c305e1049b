// Graceful shutdown on SIGTERM/SIGINT: run the steps in order (health off,
// stop intake, drain, close clients), and exit within a bounded time even if
// a step hangs. A second signal exits at once.
import type { Logger } from './logger.js';

export interface ShutdownStep {
  name: string;
  run: () => Promise<void> | void;
}

export function onShutdown(logger: Logger, timeoutMs: number, steps: ShutdownStep[]): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const guard = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown did not finish in time: exiting');
      process.exit(1);
    }, timeoutMs + 2000);
    guard.unref();
    runSteps(logger, steps)
      .then(() => {
        logger.info('stopped');
        process.exit(0);
      })
      .catch(() => process.exit(1));
  };
  process.once('SIGTERM', handle);
  process.once('SIGINT', handle);
}

/** Runs each step; a failing step is logged and the next one still runs. */
export async function runSteps(logger: Logger, steps: ShutdownStep[]): Promise<void> {
  for (const step of steps) {
    try {
      await step.run();
    } catch (err) {
      logger.error({ err, step: step.name }, 'shutdown step failed');
    }
  }
}

/** Starts a service's main; a failure to start is logged and exits 1. */
export function runMain(logger: () => Logger | undefined, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const log = logger();
    if (log) log.fatal({ err }, 'failed to start');
    else process.stderr.write(`failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
