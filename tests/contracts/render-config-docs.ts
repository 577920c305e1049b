// Writes docs/configuration.md from the config specs (make docs).
import { writeFileSync } from 'node:fs';
import { projectPath } from '../../services/common/src/paths.js';
import { renderConfigurationDoc } from './config-catalog.js';

writeFileSync(projectPath('docs', 'configuration.md'), renderConfigurationDoc());
