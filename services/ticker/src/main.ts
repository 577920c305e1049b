// ticker ingest API: config -> NATS/JetStream -> IngestService on gRPC :50051
// (metrics, /healthz and /readyz on :9101) -> graceful shutdown on SIGTERM.
import type { Logger } from '../../common/src/logger.js';
import { createServiceKit } from '../../common/src/service.js';
import { runMain } from '../../common/src/shutdown.js';
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
