// Feed simulator (one replica): config -> NATS/JetStream -> seeded random-walk
// ticks into the TICKS stream; /healthz, /readyz, /metrics on :9105.
import type { Logger } from '@tickmesh/kit';
import { createServiceKit, runMain } from '@tickmesh/kit';
import { loadCheckedConfig, simulatorConfigProblems, simulatorConfigSpec } from './config.js';
import { startSimulatorApp } from './simulator-app.js';

let logger: Logger | undefined;

runMain(
  () => logger,
  async () => {
    const config = loadCheckedConfig('simulator', simulatorConfigSpec, simulatorConfigProblems);
    const kit = createServiceKit('simulator', config);
    logger = kit.logger;
    await startSimulatorApp(config, { kit, handleSignals: true });
  },
);
