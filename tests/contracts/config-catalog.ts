// Every process's configuration spec in one place: the source of
// docs/configuration.md and of the check that Kubernetes sets only variables
// the code reads.
import { describeConfig, type ConfigSpec } from '@tickmesh/kit';
import { customersConfigSpec, migrateConfigSpec } from '../../services/customers/src/config.js';
import { gatewayConfigSpec } from '../../services/gateway/src/config.js';
import { priceCacheConfigSpec } from '../../services/price-cache/src/config.js';
import { ingestConfigSpec, simulatorConfigSpec } from '../../services/ticker/src/config.js';

export const CONFIG_CATALOG: Array<{ process: string; command: string; spec: ConfigSpec }> = [
  { process: 'ticker', command: 'services/ticker/src/main.ts', spec: ingestConfigSpec },
  { process: 'simulator', command: 'services/ticker/src/simulator-main.ts', spec: simulatorConfigSpec },
  { process: 'price-cache', command: 'services/price-cache/src/main.ts', spec: priceCacheConfigSpec },
  { process: 'customers', command: 'services/customers/src/main.ts', spec: customersConfigSpec },
  {
    process: 'customers-migrate',
    command: 'services/customers/src/migrate-main.ts',
    spec: migrateConfigSpec,
  },
  { process: 'gateway', command: 'services/gateway/src/main.ts', spec: gatewayConfigSpec },
];

export function renderConfigurationDoc(): string {
  const sections = CONFIG_CATALOG.map(({ process, command, spec }) =>
    describeConfig(process, spec).replace(
      /^### .*\n/,
      `### ${process}\n\n\`${command}\` (\`--help\` prints this table)\n`,
    ),
  );
  return [
    '# Configuration',
    '',
    'Every process reads its settings from environment variables, validated at start: a bad value',
    'exits with status 2 naming the variable and what is allowed. This file is generated from the',
    'code (`make docs`); a test fails when it is stale.',
    '',
    ...sections,
  ].join('\n');
}
