// The generated TypeScript and the reflection descriptor set must match the
// protos: `make proto` regenerates both, and this test fails when someone
// edited a .proto without running it (or edited generated code by hand).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { projectPath } from '@tickmesh/kit';

const root = projectPath();
const buf = join(root, 'node_modules', '.bin', 'buf');

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

test('buf lint passes', () => {
  execFileSync(buf, ['lint', 'proto'], { cwd: root, stdio: 'pipe' });
});

test('generated TypeScript is current (run `make proto`)', () => {
  const out = mkdtempSync(join(tmpdir(), 'tickmesh-gen-'));
  try {
    execFileSync(buf, ['generate', '--template', 'proto/buf.gen.yaml', '-o', out], {
      cwd: root,
      stdio: 'pipe',
    });
    const fresh = join(out, 'packages', 'kit', 'src', 'gen');
    const committed = join(root, 'packages', 'kit', 'src', 'gen');
    const freshFiles = listFiles(fresh)
      .map((f) => relative(fresh, f))
      .sort();
    const committedFiles = listFiles(committed)
      .map((f) => relative(committed, f))
      .sort();
    assert.deepEqual(committedFiles, freshFiles, 'the set of generated files differs');
    for (const f of freshFiles) {
      assert.equal(
        readFileSync(join(committed, f), 'utf8'),
        readFileSync(join(fresh, f), 'utf8'),
        `${f} is stale`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

for (const [name, input] of [
  ['tickmesh.binpb', 'proto'],
  ['health.binpb', 'node_modules/grpc-health-check/proto'],
]) {
  test(`descriptor set ${name} for reflection is current (run \`make proto\`)`, () => {
    const out = mkdtempSync(join(tmpdir(), 'tickmesh-desc-'));
    try {
      const file = join(out, name);
      execFileSync(buf, ['build', input, '-o', file], { cwd: root, stdio: 'pipe' });
      const committed = readFileSync(join(root, 'packages', 'kit', 'descriptors', name));
      assert.ok(committed.equals(readFileSync(file)), `packages/kit/descriptors/${name} is stale`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
}
