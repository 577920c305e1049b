// ticker ingest API: config -> NATS/JetStream -> IngestService on gRPC :50051
// (metrics, /healthz and /readyz on :9101) -> graceful shutdown on SIGTERM.
import type { Logger } from '@tickmesh/kit';
import { createServiceKit, runMain } from '@tickmesh/kit';
import { ingestConfigProblems, ingestConfigSpec, loadCheckedConfig } from './config.js';
import { startIngestApp } from './ingest-app.js';

let logger: Logger | undefined;

runMain(
  () => logger,
  async () => {
    const config = loadCheckedConfig('ticker', ingestConfigSpec, ingestConfigProblems);
    const kit = createServiceKit('ticker', config);
    logger = kit.logger;
    await startIngestApp(config, { kit, handleSignals: true });
  },
);
