// Renders every kustomization (base, the kind and minikube overlays, the on-demand
// ghz Job) with `kubectl kustomize`, validates every object against the Kubernetes
// schema, and runs the policy checks. Offline: no cluster needed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEPLOYABLE, TARGETS, kubectl, renderTarget, type TargetName } from './lib/render.js';
import { validateObjects } from './lib/schema.js';
import { policyChecks } from './lib/policies.js';
import { artifactImages, loadSkaffold } from './lib/skaffold.js';
import { MIGRATION_JOB, OUR_IMAGE } from './lib/design.js';
import { podTemplate, workloadObjects } from './lib/workloads.js';

const skip = kubectl()
  ? false
  : 'SKIPPED: kubectl not found on PATH or in .tools/bin, cannot render kustomizations';
const targets = Object.keys(TARGETS) as TargetName[];

void describe('k8s: kustomize renders', { skip }, () => {
  for (const t of targets) {
    void it(`${t} (${TARGETS[t]}) renders`, () => {
      const objects = renderTarget(t);
      assert.ok(objects.length > 0, 'no objects');
    });
  }
});

void describe(
  'k8s: every object is valid against the Kubernetes schema (no unknown fields)',
  { skip },
  () => {
    for (const t of targets) {
      void it(t, async () => {
        assert.deepEqual(await validateObjects(renderTarget(t)), []);
      });
    }
  },
);

void describe('k8s: policy checks', { skip }, () => {
  const artifacts = artifactImages(loadSkaffold());
  void it('skaffold builds the tickmesh image', () => assert.deepEqual(artifacts, [OUR_IMAGE]));
  for (const t of targets) {
    for (const [name, check] of Object.entries(policyChecks(t, artifacts))) {
      void it(`${t}: ${name}`, () => assert.deepEqual(check(renderTarget(t)), []));
    }
  }
});

void describe('k8s: overlays and on-demand jobs', { skip }, () => {
  void it('the base holds no credentials (no Secret objects)', () => {
    assert.deepEqual(
      renderTarget('base')
        .filter((o) => o.kind === 'Secret')
        .map((o) => o.metadata.name),
      [],
    );
  });
  for (const t of DEPLOYABLE.filter((x) => x !== 'base')) {
    void it(`${t}: example Secrets are clearly marked "EXAMPLE — replace"`, () => {
      const secrets = renderTarget(t).filter((o) => o.kind === 'Secret');
      assert.ok(secrets.length > 0, 'no Secrets');
      for (const s of secrets) {
        assert.match(
          s.metadata.annotations?.['tickmesh.io/example'] ?? '',
          /EXAMPLE — replace/,
          s.metadata.name,
        );
      }
    });
  }
  for (const t of DEPLOYABLE) {
    void it(`${t}: the ghz load test is not part of the deploy`, () => {
      assert.equal(
        renderTarget(t).some((o) => o.kind === 'Job' && o.metadata.name === 'ghz'),
        false,
      );
    });
  }
  void it('the ghz Job calls PriceService/GetQuote through reflection on dns:///price-cache:50052, round_robin', () => {
    const job = renderTarget('ghz').find((o) => o.kind === 'Job' && o.metadata.name === 'ghz');
    assert.ok(job, 'no ghz Job');
    const c = podTemplate(job)?.spec?.containers[0];
    const argv = [...(c?.command ?? []), ...(c?.args ?? [])];
    assert.ok(argv.includes('--call=tickmesh.price.v1.PriceService/GetQuote'), JSON.stringify(argv));
    assert.ok(argv.includes('--lb-strategy=round_robin'), JSON.stringify(argv));
    assert.equal(argv.at(-1), 'dns:///price-cache:50052');
    assert.ok(!argv.some((a) => a.startsWith('--proto') || a.startsWith('--protoset')), 'uses reflection');
  });
  void it('the migration Job uses the tickmesh image', () => {
    const job = workloadObjects(renderTarget('base')).find((o) => o.metadata.name === MIGRATION_JOB.name);
    assert.equal(podTemplate(job!)?.spec?.containers[0]?.image, OUR_IMAGE);
  });
});
