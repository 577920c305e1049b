// deploy/Dockerfile and .dockerignore, checked offline (no Docker engine here):
// multi-stage (npm ci + build, then npm ci --omit=dev), a small pinned Node base,
// numeric non-root USER, the assets the services need, nothing secret, and the
// same commands the manifests run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './lib/render.js';
import {
  isIgnored,
  parseDockerfile,
  parseDockerignore,
  readDockerfile,
  type Stage,
} from './lib/dockerfile.js';
import { ALL_COMMANDS, RUN_AS_USER } from './lib/design.js';

const DOCKERFILE = join(REPO_ROOT, 'deploy', 'Dockerfile');
const { stages } = readDockerfile(DOCKERFILE);
const stage = (name: string) => stages.find((s) => s.name === name);
const runs = (s: Stage | undefined) =>
  (s?.instructions ?? []).filter((i) => i.keyword === 'RUN').map((i) => i.args);
const ALLOWED_BASES = /^node:20(\.\d+){0,2}-(bookworm-slim|alpine(\d+(\.\d+)?)?)(@sha256:[0-9a-f]{64})?$/;
const SECRETISH = /PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_?KEY/i;
const ASSETS = ['packages/kit/descriptors', 'packages/kit/markets', 'services/gateway/public'];

/** Checks on a parsed Dockerfile, as a function so a broken one can be shown to fail. */
export function dockerfileProblems(text: string): string[] {
  const out: string[] = [];
  const { stages: st } = parseDockerfile(text);
  // a syntax directive makes BuildKit pull a frontend image: no build without a registry
  const directive = /^#\s*syntax\s*=\s*(\S+)/im.exec(text);
  if (directive) out.push(`# syntax=${directive[1]}: the build would fetch a frontend image`);
  const build = st.find((s) => s.name === 'build');
  const runtime = st.at(-1);
  if (!build) out.push('no build stage');
  if (!runtime || runtime.name !== 'runtime')
    out.push('the last stage (what `docker build` produces) is not runtime');
  for (const s of st) {
    if (!ALLOWED_BASES.test(s.from))
      out.push(`stage ${s.name}: base ${s.from} is not a pinned node:20 slim/alpine image`);
  }
  const buildRuns = runs(build).join('\n');
  if (!/\bnpm ci\b/.test(buildRuns)) out.push('build stage: no npm ci');
  if (!/\bnpm run build\b/.test(buildRuns)) out.push('build stage: no npm run build');
  const rtRuns = runs(runtime).join('\n');
  if (!/\bnpm ci\b[^\n]*--omit=dev/.test(rtRuns)) out.push('runtime stage: no npm ci --omit=dev');
  const users = (runtime?.instructions ?? []).filter((i) => i.keyword === 'USER');
  const user = users.at(-1)?.args ?? '';
  const uid = /^(\d+)(?::\d+)?$/.exec(user)?.[1];
  if (uid === undefined)
    out.push(`runtime USER "${user}" is not numeric (runAsNonRoot cannot verify a name)`);
  else if (Number(uid) !== RUN_AS_USER) out.push(`runtime USER ${uid}, the manifests run as ${RUN_AS_USER}`);
  const copies = (runtime?.instructions ?? []).filter((i) => i.keyword === 'COPY').map((i) => i.args);
  if (!copies.some((c) => /--from=build\s+\/app\/dist\s/.test(c)))
    out.push('runtime: dist/ not copied from the build stage');
  if (copies.some((c) => !c.includes('--from='))) {
    for (const c of copies.filter((x) => !x.includes('--from='))) {
      if (!/^(package\.json package-lock\.json \.\/|packages\/kit\/package\.json packages\/kit\/)$/.test(c))
        out.push(`runtime copies from the build context: ${c}`);
    }
  }
  for (const a of ASSETS) if (!text.includes(a)) out.push(`asset folder ${a} is not in the image`);
  for (const s of st) {
    for (const i of s.instructions) {
      if ((i.keyword === 'ENV' || i.keyword === 'ARG') && SECRETISH.test(i.args))
        out.push(`line ${i.line}: ${i.keyword} ${i.args} looks like a secret`);
      if (i.keyword === 'COPY' && /\.env\b|\.pem\b|id_rsa/.test(i.args))
        out.push(`line ${i.line}: copies a secret file`);
    }
  }
  for (const cmd of ALL_COMMANDS) {
    const js = cmd[1]!;
    if (!text.includes(js))
      out.push(`the image build does not check that ${js} exists (the manifests run it)`);
  }
  return out;
}

void describe('deploy/Dockerfile', () => {
  void it('passes the image checks', () => {
    assert.deepEqual(dockerfileProblems(readFileSync(DOCKERFILE, 'utf8')), []);
  });

  void it('the checks fail on a broken Dockerfile', () => {
    const broken = [
      '# syntax=docker/dockerfile:1',
      'FROM node:latest',
      'WORKDIR /app',
      'COPY . .',
      'RUN npm install',
      'ENV MYSQL_PASSWORD=hunter2',
      'USER node',
      'CMD ["node", "dist/services/gateway/src/main.js"]',
    ].join('\n');
    const problems = dockerfileProblems(broken).join('\n');
    for (const re of [
      /syntax=docker\/dockerfile:1: the build would fetch a frontend image/,
      /no build stage/,
      /not runtime/,
      /node:latest is not a pinned/,
      /no npm ci --omit=dev/,
      /USER "node" is not numeric/,
      /MYSQL_PASSWORD=hunter2 looks like a secret/,
      /asset folder packages\/kit\/descriptors/,
      /simulator-main\.js exists/,
    ]) {
      assert.match(problems, re);
    }
  });

  void it('is multi-stage: build then runtime from the same small Node base', () => {
    assert.deepEqual(
      stages.map((s) => s.name),
      ['build', 'runtime'],
    );
    assert.equal(stage('build')?.from, stage('runtime')?.from);
  });

  void it('the parser joins continuations and drops comment lines inside them', () => {
    const { stages: st } = parseDockerfile('FROM node:20-alpine AS a\nRUN echo a \\\n# note\n  && echo b\n');
    assert.equal(st[0]?.instructions[0]?.args.replace(/\s+/g, ' '), 'echo a && echo b');
  });
});

void describe('.dockerignore', () => {
  const patterns = parseDockerignore(readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8'));

  void it('keeps local state, build output and secrets out of the build context', () => {
    for (const p of [
      'node_modules',
      'node_modules/x/index.js',
      'dist/services/x.js',
      '.git/HEAD',
      '.env',
      '.env.local',
      'services/gateway/.env',
      'deploy/key.pem',
      '.run/mysql/data/x',
      '.tools/bin/ghz',
      'k8s/base/ticker.yaml',
    ]) {
      assert.ok(isIgnored(patterns, p), `${p} is sent to the builder`);
    }
  });

  void it('sends what the build needs', () => {
    for (const p of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'proto/buf.yaml',
      'packages/kit/src/config.ts',
      'packages/kit/package.json',
      'packages/kit/descriptors/tickmesh.binpb',
      'packages/kit/markets/bist30.json',
      'services/gateway/public/index.html',
      'services/customers/src/migrations/index.ts',
      'deploy/Dockerfile',
    ]) {
      assert.ok(!isIgnored(patterns, p), `${p} is excluded from the build context`);
    }
  });

  void it('the matcher handles globs, directories and re-inclusion', () => {
    assert.ok(isIgnored(['**/*.pem'], 'a/b/c.pem'));
    assert.ok(isIgnored(['dist'], 'dist/a/b.js'));
    assert.ok(!isIgnored(['*.md', '!README.md'], 'README.md'));
    assert.ok(!isIgnored(['*.md'], 'docs/a.md'));
  });
});

void describe('what the image build needs from the repository', () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };

  void it('package.json has a build script (the Dockerfile runs npm run build)', () => {
    assert.ok(pkg.scripts?.build, 'no build script');
  });

  void it('the compiled output keeps the repo layout (rootDir ".", outDir dist)', () => {
    const tsconfig = ['tsconfig.build.json', 'tsconfig.json'].find((f) => existsSync(join(REPO_ROOT, f)));
    assert.ok(tsconfig, 'no tsconfig');
    const text = readFileSync(join(REPO_ROOT, 'tsconfig.json'), 'utf8');
    assert.match(text, /"rootDir"\s*:\s*"\.\/?"/);
    assert.match(text, /"outDir"\s*:\s*"(\.\/)?dist"/);
  });

  for (const cmd of ALL_COMMANDS) {
    const source = cmd[1]!.replace(/^dist\//, '').replace(/\.js$/, '.ts');
    void it(`the source of "${cmd.join(' ')}" exists (${source})`, () => {
      assert.ok(existsSync(join(REPO_ROOT, source)), `${source} missing`);
    });
  }

  for (const dir of ASSETS) {
    void it(`asset folder ${dir} exists and is not empty (the image build stops otherwise)`, () => {
      assert.ok(existsSync(join(REPO_ROOT, dir)), `${dir} missing`);
      assert.ok(readdirSync(join(REPO_ROOT, dir)).length > 0, `${dir} is empty`);
    });
  }

  void it('the descriptor set for gRPC reflection is there', () => {
    const files = readdirSync(join(REPO_ROOT, 'packages/kit/descriptors'));
    assert.ok(
      files.some((f) => f.endsWith('.binpb')),
      files.join(', '),
    );
  });
});
