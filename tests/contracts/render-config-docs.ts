// Writes docs/configuration.md from the config specs (make docs).
import { writeFileSync } from 'node:fs';
import { projectPath } from '@tickmesh/kit';
import { renderConfigurationDoc } from './config-catalog.js';

writeFileSync(projectPath('docs', 'configuration.md'), renderConfigurationDoc());
