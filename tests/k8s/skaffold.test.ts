// skaffold.yaml: valid against the skaffold/v4beta14 JSON schema (ajv), and shaped
// as designed: one artifact built from deploy/Dockerfile, kustomize manifests,
// kind/minikube profiles switched on by the kube context, the gateway forwarded to
// localhost:8080. When skaffold is installed (PATH or .tools/bin), it resolves the
// profiles and renders the manifests itself (offline); otherwise that test skips.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import {
  SKAFFOLD_FILE,
  artifactImages,
  kubeContextMatches,
  loadSkaffold,
  SKAFFOLD_SCHEMA_PATH,
  type SkaffoldConfig,
} from './lib/skaffold.js';
import { REPO_ROOT, findTool, kubectl, parseObjects, renderTarget, type TargetName } from './lib/render.js';
import { MIGRATION_JOB, OUR_IMAGE } from './lib/design.js';
import { allContainers, imageName, podTemplate, workloadObjects } from './lib/workloads.js';
import type { IService } from 'kubernetes-models/v1';

const configs = loadSkaffold();
const config = configs[0]!;

function validator() {
  const schema = JSON.parse(readFileSync(SKAFFOLD_SCHEMA_PATH, 'utf8')) as object;
  // strict: false - the schema carries editor keywords (x-intellij-html-description, preferredOrder)
  return new Ajv({ strict: false, allErrors: true }).compile(schema);
}

void describe('skaffold.yaml against the skaffold/v4beta14 JSON schema', () => {
  void it('is valid', () => {
    const validate = validator();
    for (const doc of configs) {
      const ok = validate(doc);
      assert.ok(ok, JSON.stringify(validate.errors, null, 2));
    }
  });

  void it('the schema check fails on a misspelt field and on a wrong type', () => {
    const validate = validator();
    const typo = structuredClone(config) as SkaffoldConfig & { build: { local?: Record<string, unknown> } };
    typo.build.local = { useBuildKit: true };
    assert.equal(validate(typo), false, 'useBuildKit (misspelt) accepted');
    const wrongType = structuredClone(config) as unknown as { portForward: Array<{ port: unknown }> };
    wrongType.portForward[0]!.port = { number: 8080 };
    assert.equal(validate(wrongType), false, 'an object as port accepted');
    const unknownTop = { ...structuredClone(config), deployy: {} };
    assert.equal(validate(unknownTop), false, 'an unknown top-level field accepted');
  });
});

void describe('skaffold.yaml shape', () => {
  void it('is one skaffold/v4beta14 Config', () => {
    assert.equal(configs.length, 1);
    assert.equal(config.apiVersion, 'skaffold/v4beta14');
    assert.equal(config.kind, 'Config');
  });

  void it('builds ONE image, tickmesh, from deploy/Dockerfile with context .', () => {
    assert.deepEqual(artifactImages(configs), [OUR_IMAGE]);
    const a = config.build!.artifacts![0]!;
    assert.equal(a.context, '.');
    assert.equal(a.docker?.dockerfile, 'deploy/Dockerfile');
    const dockerfile = join(REPO_ROOT, a.docker!.dockerfile!);
    assert.ok(existsSync(dockerfile), 'deploy/Dockerfile missing');
    if (a.docker?.target) {
      assert.match(
        readFileSync(dockerfile, 'utf8'),
        new RegExp(`^FROM\\s+\\S+\\s+AS\\s+${a.docker.target}\\s*$`, 'mi'),
      );
    }
  });

  void it('deploys kustomize manifests with kubectl', () => {
    assert.deepEqual(config.manifests?.kustomize?.paths, ['k8s/base']);
    assert.ok(config.deploy?.kubectl, 'deploy.kubectl');
  });

  void it('removes the previous migration Job before deploying (Job templates are immutable)', () => {
    const hooks = JSON.stringify(config.deploy?.kubectl?.hooks ?? {});
    assert.match(hooks, new RegExp(`delete job ${MIGRATION_JOB.name}`));
    assert.match(hooks, /--ignore-not-found/);
  });

  const profiles: Array<[TargetName, string, string[], string[]]> = [
    ['kind', 'k8s/overlays/kind', ['kind-tickmesh', 'kind-kind'], ['minikube', 'docker-desktop']],
    ['minikube', 'k8s/overlays/minikube', ['minikube'], ['kind-tickmesh', 'docker-desktop']],
  ];
  for (const [name, path, on, off] of profiles) {
    void it(`profile ${name}: overlay ${path}, activated by kube context ${on.join(', ')}`, () => {
      const p = config.profiles?.find((x) => x.name === name);
      assert.ok(p, `no profile ${name}`);
      assert.deepEqual(p.manifests?.kustomize?.paths, [path]);
      assert.ok(existsSync(join(REPO_ROOT, path, 'kustomization.yaml')), `${path}/kustomization.yaml`);
      const patterns = (p.activation ?? []).map((a) => a.kubeContext).filter((x): x is string => !!x);
      for (const ctx of on)
        assert.ok(
          patterns.some((re) => kubeContextMatches(re, ctx)),
          `${ctx} does not activate ${name}`,
        );
      for (const ctx of off)
        assert.ok(!patterns.some((re) => kubeContextMatches(re, ctx)), `${ctx} activates ${name}`);
    });
  }

  void it(
    'forwards the gateway Service 8080 to localhost:8080 (and price-cache 50052)',
    { skip: kubectl() ? false : 'SKIPPED: kubectl not found' },
    () => {
      const services = renderTarget('kind').filter((o) => o.kind === 'Service') as unknown as IService[];
      const want: Array<[string, number]> = [
        ['gateway', 8080],
        ['price-cache', 50052],
      ];
      for (const [name, port] of want) {
        const pf = config.portForward?.find((x) => x.resourceType === 'service' && x.resourceName === name);
        assert.ok(pf, `no port-forward for ${name}`);
        assert.equal(pf.port, port);
        assert.equal(pf.localPort, port);
        assert.equal(pf.namespace, 'tickmesh');
        const svc = services.find((s) => s.metadata?.name === name);
        assert.ok(
          svc?.spec?.ports?.some((p) => p.port === port),
          `Service ${name} has no port ${port}`,
        );
      }
    },
  );
});

void describe('skaffold itself (optional tool)', () => {
  const skaffold = findTool('skaffold');
  const skip = skaffold
    ? false
    : 'SKIPPED: skaffold not installed (PATH or .tools/bin); install: go install github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold@v2.19.0';

  /** Runs skaffold with a throw-away HOME and a kubeconfig whose current context is `context` (never contacted). */
  function run(context: string, args: string[]) {
    const home = mkdtempSync(join(tmpdir(), 'tickmesh-skaffold-'));
    try {
      const kubeconfig = join(home, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
          'users: [{name: u, user: {token: unused}}]',
          `contexts: [{name: "${context}", context: {cluster: c, user: u}}]`,
          `current-context: "${context}"`,
          '',
        ].join('\n'),
      );
      const r = spawnSync(skaffold!, args, {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        timeout: 120_000,
        env: {
          ...process.env,
          HOME: home,
          KUBECONFIG: kubeconfig,
          SKAFFOLD_UPDATE_CHECK: 'false',
          SKAFFOLD_DETECT_MINIKUBE: 'false',
        },
      });
      assert.equal(r.status, 0, `skaffold ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }

  const cases: Array<[string, string]> = [
    ['kind-tickmesh', 'k8s/overlays/kind'],
    ['minikube', 'k8s/overlays/minikube'],
  ];
  for (const [context, overlay] of cases) {
    void it(`skaffold diagnose --yaml-only: context ${context} activates ${overlay}`, { skip }, () => {
      const out = run(context, ['diagnose', '--yaml-only']);
      const effective = parseAllDocuments(out).map((d) => d.toJS() as SkaffoldConfig)[0]!;
      const paths = effective.manifests?.kustomize?.paths ?? [];
      assert.ok(
        paths.some((p) => p.endsWith(overlay)),
        JSON.stringify(paths),
      );
    });
  }

  void it(
    'skaffold render (offline, kind): every tickmesh container gets the built image',
    { skip: skip || (kubectl() ? false : 'SKIPPED: kubectl not found') },
    () => {
      const out = run('kind-tickmesh', ['render', '--offline=true', '--digest-source=tag']);
      const rendered = workloadObjects(parseObjects(out));
      const ours = rendered
        .flatMap((w) => allContainers(podTemplate(w)?.spec))
        .filter((c) => imageName(c.image ?? '') === OUR_IMAGE);
      const expected = workloadObjects(renderTarget('kind'))
        .flatMap((w) => allContainers(podTemplate(w)?.spec))
        .filter((c) => c.image === OUR_IMAGE).length;
      assert.equal(ours.length, expected);
      for (const c of ours)
        assert.match(c.image ?? '', /^tickmesh:\S+$/, `${c.name} not replaced by skaffold`);
    },
  );
});

void describe('skaffold.yaml parses as YAML', () => {
  void it('has no duplicate keys or syntax errors', () => {
    const docs = parseAllDocuments(readFileSync(SKAFFOLD_FILE, 'utf8'), { uniqueKeys: true });
    for (const d of docs)
      assert.deepEqual(
        d.errors.map((e) => e.message),
        [],
      );
  });
});
