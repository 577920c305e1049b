// The protos change compatibly: `buf breaking` against the descriptor set of the
// last release (proto/releases/<version>.binpb, committed at each release, so the
// check needs no tags or branches in the clone). `make lint` runs the same check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectPath } from '@tickmesh/kit';

const buf = projectPath('node_modules', '.bin', 'buf');
const releases = projectPath('proto', 'releases');

/** The newest release's descriptor set, by version order (v0.10.0 after v0.9.0). */
function lastRelease(): string {
  const versions = readdirSync(releases)
    .filter((f) => /^v\d+\.\d+\.\d+\.binpb$/.test(f))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  assert.ok(versions.length > 0, `no release descriptor set in ${releases}`);
  return join(releases, versions.at(-1)!);
}

test('the protos are wire- and JSON-compatible with the last release', () => {
  execFileSync(buf, ['breaking', 'proto', '--against', lastRelease()], {
    cwd: projectPath(),
    stdio: 'pipe',
  });
});

test('the check fails on a breaking change (a field renumbered)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tickmesh-proto-'));
  try {
    cpSync(projectPath('proto'), dir, {
      recursive: true,
      filter: (src) => !src.includes(`${join('proto', 'releases')}`),
    });
    const file = join(dir, 'tickmesh', 'market', 'v1', 'market.proto');
    const text = readFileSync(file, 'utf8');
    const broken = text.replace('string symbol = 1;', 'string symbol = 99;');
    assert.notEqual(broken, text, 'market.proto no longer has `string symbol = 1;`: pick another field');
    writeFileSync(file, broken);
    const r = spawnSync(buf, ['breaking', dir, '--against', lastRelease()], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, 'buf breaking accepted a renumbered field');
    assert.match(r.stdout + r.stderr, /market\.proto/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
