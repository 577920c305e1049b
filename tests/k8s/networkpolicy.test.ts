// NetworkPolicies: the allowed flows computed from the rendered policies equal the
// designed flows exactly (nothing more, nothing less), and every pod can use DNS.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEPLOYABLE, kubectl, renderWithGhz, type K8sObject } from './lib/render.js';
import { ALL_WORKLOADS, NAMESPACE, expectedFlows } from './lib/design.js';
import {
  allowed,
  cidrContains,
  computeFlows,
  flowDifferences,
  missingDnsEgress,
  peers,
  selectorMatches,
  type Peer,
} from './lib/netpol.js';
import { workloadObjects } from './lib/workloads.js';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';

const skip = kubectl()
  ? false
  : 'SKIPPED: kubectl not found on PATH or in .tools/bin, cannot render kustomizations';

function flowsOf(objects: K8sObject[]) {
  const workloads = workloadObjects(objects).map((w) => w.metadata.name);
  return flowDifferences(computeFlows(objects, NAMESPACE), expectedFlows(workloads));
}

function policy(name: string, spec: INetworkPolicy['spec']): K8sObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: NAMESPACE },
    spec,
  } as unknown as K8sObject;
}

void describe('k8s NetworkPolicies: exactly the designed flows', { skip }, () => {
  for (const t of DEPLOYABLE) {
    void it(`${t} (with the ghz Job): allowed flows == designed flows`, () => {
      assert.deepEqual(flowsOf(renderWithGhz(t)), []);
    });
    void it(`${t}: every pod has DNS egress to kube-dns (UDP and TCP 53)`, () => {
      assert.deepEqual(missingDnsEgress(renderWithGhz(t), NAMESPACE), []);
    });
    void it(`${t}: default deny for ingress and egress`, () => {
      const deny = renderWithGhz(t).find((o) => {
        const np = o as unknown as INetworkPolicy;
        return (
          o.kind === 'NetworkPolicy' &&
          Object.keys(np.spec?.podSelector ?? { x: 1 }).length === 0 &&
          !np.spec?.ingress &&
          !np.spec?.egress &&
          JSON.stringify([...(np.spec?.policyTypes ?? [])].sort()) === '["Egress","Ingress"]'
        );
      });
      assert.ok(deny, 'no default-deny policy');
    });
    void it(`${t}: the flow model sees every workload`, () => {
      assert.deepEqual(
        workloadObjects(renderWithGhz(t))
          .map((w) => w.metadata.name)
          .sort(),
        ALL_WORKLOADS,
      );
    });
  }
});

void describe('k8s NetworkPolicies: the comparison fails on a wrong policy', { skip }, () => {
  void it('an extra flow (gateway -> redis) is reported', () => {
    const objects = renderWithGhz('base');
    objects.push(
      policy('extra', {
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'gateway' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'redis' } } }] }],
      }),
      policy('extra-in', {
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'redis' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: {} }] }],
      }),
    );
    assert.deepEqual(flowsOf(objects), ['allowed but not designed: gateway -> redis:6379/TCP']);
  });

  void it('an allow-all ingress on MySQL is reported (from every namespace)', () => {
    const objects = renderWithGhz('kind');
    objects.push(
      policy('open-mysql', {
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'mysql' } },
        ingress: [{}],
      }),
    );
    const diff = flowsOf(objects);
    assert.ok(diff.includes('allowed but not designed: internet -> mysql:3306/TCP'), diff.join('\n'));
    assert.ok(diff.includes('allowed but not designed: other-namespace -> mysql:3306/TCP'), diff.join('\n'));
  });

  void it('a missing flow (price-cache -> redis removed) is reported', () => {
    const objects = renderWithGhz('base');
    const np = objects.find(
      (o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'price-cache',
    ) as unknown as INetworkPolicy;
    np.spec!.egress = np.spec!.egress!.filter((r) => r.ports?.[0]?.port !== 6379);
    assert.deepEqual(flowsOf(objects as unknown as K8sObject[]), [
      'designed but not allowed: price-cache -> redis:6379/TCP',
    ]);
  });

  void it('without the DNS policy every pod is reported', () => {
    const objects = renderWithGhz('base').filter((o) => o.metadata.name !== 'allow-dns-egress');
    const missing = missingDnsEgress(objects, NAMESPACE);
    assert.equal(missing.length, ALL_WORKLOADS.length * 2, missing.join('\n'));
  });

  void it('without the default deny, unlisted pods would be open: a new workload is reported', () => {
    const objects = renderWithGhz('base').filter((o) => o.metadata.name !== 'default-deny-all');
    objects.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'debug', namespace: NAMESPACE },
      spec: {
        template: {
          metadata: { labels: { 'app.kubernetes.io/name': 'debug' } },
          spec: { containers: [{ name: 'debug', image: 'busybox:1.36', ports: [{ containerPort: 22 }] }] },
        },
      },
    });
    const diff = flowsOf(objects);
    assert.ok(diff.includes('allowed but not designed: internet -> debug:22/TCP'), diff.join('\n'));
    assert.ok(diff.includes('allowed but not designed: debug -> mysql:3306/TCP') === false);
  });
});

void describe('k8s NetworkPolicy semantics (flow model)', () => {
  const pod = (
    id: string,
    labels: Record<string, string>,
    ns = NAMESPACE,
    ports = [{ port: 80, protocol: 'TCP' as const, name: 'http' }],
  ): Peer => ({
    id,
    namespace: ns,
    namespaceLabels: { 'kubernetes.io/metadata.name': ns },
    podLabels: labels,
    ip: '10.244.0.5',
    ports,
  });
  const np = (spec: INetworkPolicy['spec']) =>
    ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'p', namespace: NAMESPACE },
      spec,
    }) as INetworkPolicy;

  void it('matchExpressions: In, NotIn, Exists, DoesNotExist', () => {
    const l = { a: '1', b: '2' };
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '3'] }] }, l));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, l));
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'b', operator: 'Exists' }] }, l));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'b', operator: 'DoesNotExist' }] }, l));
  });

  void it('ipBlock with except', () => {
    assert.ok(cidrContains('0.0.0.0/0', '203.0.113.10'));
    assert.ok(cidrContains('10.0.0.0/8', '10.244.0.5'));
    assert.ok(!cidrContains('10.0.0.0/8', '203.0.113.10'));
  });

  void it('named ports resolve on the destination; policyTypes default to Ingress', () => {
    const a = pod('a', { app: 'a' });
    const b = pod('b', { app: 'b' });
    const ingressOnly = np({
      podSelector: { matchLabels: { app: 'b' } },
      ingress: [{ ports: [{ port: 'http' }] }],
    });
    assert.ok(allowed([ingressOnly], a, b, { port: 80, protocol: 'TCP', name: 'http' }));
    assert.ok(!allowed([ingressOnly], a, b, { port: 81, protocol: 'TCP' }));
    // the policy has no egress rules, so it does not isolate b's egress
    assert.ok(allowed([ingressOnly], b, a, { port: 80, protocol: 'TCP', name: 'http' }));
  });

  void it('podSelector alone stays in the policy namespace; namespaceSelector widens it', () => {
    const other = pod('o', { app: 'a' }, 'other');
    const b = pod('b', { app: 'b' });
    const sameNs = np({
      podSelector: { matchLabels: { app: 'b' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
    });
    assert.ok(!allowed([sameNs], other, b, { port: 80, protocol: 'TCP' }));
    const anyNs = np({
      podSelector: { matchLabels: { app: 'b' } },
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'a' } } }] }],
    });
    assert.ok(allowed([anyNs], other, b, { port: 80, protocol: 'TCP' }));
  });

  void it('peers include the outside world and kube-dns', () => {
    const ids = peers([]).map((p) => p.id);
    assert.deepEqual(ids, ['internet', 'other-namespace', 'monitoring', 'kube-dns']);
  });
});
