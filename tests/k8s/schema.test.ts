// The schema validation used by manifests.test.ts rejects what it must: an unknown
// field (which the plain Kubernetes JSON schema lets through), a wrong type, a
// missing required field and an unknown kind; and it accepts a correct object.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { schemaErrors, strictFieldErrors, validateObjects } from './lib/schema.js';
import type { K8sObject } from './lib/render.js';

function deployment(): K8sObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'demo', namespace: 'tickmesh', labels: { app: 'demo' } },
    spec: {
      selector: { matchLabels: { app: 'demo' } },
      template: {
        metadata: { labels: { app: 'demo' } },
        spec: {
          containers: [
            {
              name: 'demo',
              image: 'tickmesh',
              ports: [{ name: 'grpc', containerPort: 50051 }],
              readinessProbe: { grpc: { port: 50051, service: 'x' } },
              lifecycle: { preStop: { sleep: { seconds: 5 } } },
              resources: { requests: { cpu: '100m' }, limits: { memory: '1Gi' } },
            },
          ],
        },
      },
    },
  };
}

type Mutable = Record<string, unknown> & {
  spec: { template: { spec: { containers: Array<Record<string, unknown>> } } };
};

void describe('k8s schema validation', () => {
  void it('accepts a correct Deployment (grpc probes, preStop sleep)', async () => {
    assert.deepEqual(await validateObjects([deployment()]), []);
  });

  void it('rejects an unknown field (a misspelt readinessProbe)', async () => {
    const d = deployment() as unknown as Mutable;
    const c = d.spec.template.spec.containers[0]!;
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    const problems = await validateObjects([d as unknown as K8sObject]);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /readinesProbe/);
    // the plain JSON schema alone would have accepted it: that is why the strict layer exists
    assert.deepEqual(await schemaErrors(d as unknown as K8sObject), []);
  });

  void it('rejects an unknown field deep in a list (a NetworkPolicy port)', () => {
    const np: K8sObject = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'x' },
      spec: { podSelector: {}, ingress: [{ ports: [{ port: 80, protocl: 'TCP' }] }] },
    };
    const errors = strictFieldErrors([np]).get(0) ?? [];
    assert.ok(
      errors.some((e) => /protocl/.test(e)),
      errors.join('\n'),
    );
  });

  void it('rejects a wrong type (containerPort as a string)', async () => {
    const d = deployment() as unknown as Mutable;
    d.spec.template.spec.containers[0]!.ports = [{ name: 'grpc', containerPort: '50051' }];
    const problems = await schemaErrors(d as unknown as K8sObject);
    assert.ok(
      problems.some((p) => /containerPort must be integer/.test(p)),
      problems.join('\n'),
    );
    assert.ok((strictFieldErrors([d as unknown as K8sObject]).get(0) ?? []).length > 0);
  });

  void it('rejects a missing required field (a container without a name)', async () => {
    const d = deployment() as unknown as Mutable;
    delete d.spec.template.spec.containers[0]!.name;
    const problems = await validateObjects([d as unknown as K8sObject]);
    assert.ok(
      problems.some((p) => /name/.test(p)),
      problems.join('\n'),
    );
  });

  void it('rejects an invalid enum value (imagePullPolicy)', async () => {
    const d = deployment() as unknown as Mutable;
    d.spec.template.spec.containers[0]!.imagePullPolicy = 'Sometimes';
    const problems = await schemaErrors(d as unknown as K8sObject);
    assert.ok(
      problems.some((p) => /allowed values/.test(p)),
      problems.join('\n'),
    );
  });

  void it('rejects an unknown kind or apiVersion', async () => {
    const o: K8sObject = { apiVersion: 'apps/v1', kind: 'Deploymnet', metadata: { name: 'x' } };
    assert.match((await schemaErrors(o))[0] ?? '', /no Kubernetes schema/);
  });
});
