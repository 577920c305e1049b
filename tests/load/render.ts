// Re-renders a report from its JSON record (targets re-evaluated with the
// current definitions, markdown and SVG rewritten), e.g. after a change to
// the report format, without measuring again:
//
//   node --import tsx tests/load/render.ts tests/load/results/<run>.json [--latest]
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { validateReport, writeReport, type BenchReport } from './lib/report.js';
import { evaluateTargets } from './lib/targets.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { help: { type: 'boolean', default: false } },
});
if (values.help || positionals.length !== 1) {
  process.stdout.write('usage: node --import tsx tests/load/render.ts <run>.json\n');
  process.exit(values.help ? 0 : 2);
}
const path = positionals[0]!;
const report = JSON.parse(await readFile(path, 'utf8')) as BenchReport;
const problems = validateReport(report);
if (problems.length) {
  process.stderr.write(`${path}: not a benchmark report: ${problems.join('; ')}\n`);
  process.exit(1);
}
report.targets = evaluateTargets(report.scenarios, { quick: report.mode === 'quick' });
const files = await writeReport(dirname(path), report);
process.stdout.write(`rewrote ${files.markdown}, ${files.svg} (and latest.*)\n`);
