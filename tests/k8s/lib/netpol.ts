// Computes which (source, destination, port) flows the rendered NetworkPolicies
// allow, following the NetworkPolicy semantics (networking.k8s.io/v1):
//  - a pod is isolated for ingress (egress) when some policy in its namespace
//    selects it with that policy type; a non-isolated direction allows everything;
//  - an isolated direction allows the union of the selecting policies' rules;
//  - a connection needs both the source's egress and the destination's ingress;
//  - no `from`/`to` = every peer; no `ports` = every port; podSelector alone = pods of
//    the policy's namespace; namespaceSelector alone = every pod of the matching
//    namespaces; both = the intersection; ipBlock = addresses (pods included);
//  - policyTypes defaults to ["Ingress"] plus "Egress" when egress rules exist.
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { IContainerPort } from 'kubernetes-models/v1';
import { MONITORING_NAMESPACE_LABEL } from './design.js';
import { podTemplate, workloadObjects } from './workloads.js';
import type { K8sObject } from './render.js';

type PolicySpec = NonNullable<INetworkPolicy['spec']>;
type LabelSelector = PolicySpec['podSelector'];
type IngressRule = NonNullable<PolicySpec['ingress']>[number];
type Rule = { peers: IngressRule['from']; ports: IngressRule['ports'] };

export interface PortSpec {
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  name?: string;
}

export interface Peer {
  id: string;
  namespace: string;
  namespaceLabels: Record<string, string>;
  /** undefined: not a pod (an address outside the cluster) */
  podLabels?: Record<string, string>;
  ip: string;
  /** ports it listens on (as a destination) */
  ports: PortSpec[];
}

export function selectorMatches(
  selector: LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, req.key);
    const value = labels[req.key];
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!has || !values.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function cidrContains(cidr: string, ip: string): boolean {
  if (cidr.includes(':') || ip.includes(':')) return false; // IPv4 model only
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText ?? '32');
  if (bits === 0) return true;
  const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  return (ipToInt(base!) & mask) >>> 0 === (ipToInt(ip) & mask) >>> 0;
}

function peerMatches(policyNamespace: string, rulePeers: Rule['peers'], candidate: Peer): boolean {
  if (!rulePeers || rulePeers.length === 0) return true;
  return rulePeers.some((p) => {
    if (p.ipBlock) {
      if (!cidrContains(p.ipBlock.cidr, candidate.ip)) return false;
      return !(p.ipBlock.except ?? []).some((e) => cidrContains(e, candidate.ip));
    }
    if (!candidate.podLabels) return false; // selectors only select pods
    if (p.namespaceSelector) {
      if (!selectorMatches(p.namespaceSelector, candidate.namespaceLabels)) return false;
    } else if (candidate.namespace !== policyNamespace) {
      return false;
    }
    return p.podSelector ? selectorMatches(p.podSelector, candidate.podLabels) : true;
  });
}

function portMatches(rulePorts: Rule['ports'], dest: Peer, port: PortSpec): boolean {
  if (!rulePorts || rulePorts.length === 0) return true;
  return rulePorts.some((rp) => {
    const protocol = rp.protocol ?? 'TCP';
    if (protocol !== port.protocol) return false;
    if (rp.port === undefined) return true;
    if (typeof rp.port === 'number') {
      return rp.endPort !== undefined
        ? port.port >= rp.port && port.port <= rp.endPort
        : port.port === rp.port;
    }
    // a named port is resolved on the destination pod
    return dest.ports.some((p) => p.name === rp.port && p.port === port.port && p.protocol === protocol);
  });
}

function policyTypes(np: INetworkPolicy): Array<'Ingress' | 'Egress'> {
  const spec = np.spec;
  if (!spec) return [];
  if (spec.policyTypes && spec.policyTypes.length > 0) return spec.policyTypes;
  return spec.egress && spec.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

function selecting(policies: INetworkPolicy[], pod: Peer, direction: 'Ingress' | 'Egress'): INetworkPolicy[] {
  if (!pod.podLabels) return [];
  return policies.filter(
    (np) =>
      (np.metadata?.namespace ?? 'default') === pod.namespace &&
      policyTypes(np).includes(direction) &&
      selectorMatches(np.spec?.podSelector, pod.podLabels!),
  );
}

export function allowed(policies: INetworkPolicy[], src: Peer, dst: Peer, port: PortSpec): boolean {
  const egress = selecting(policies, src, 'Egress');
  const egressOk =
    egress.length === 0 ||
    egress.some((np) =>
      (np.spec?.egress ?? []).some(
        (r) => peerMatches(np.metadata?.namespace ?? 'default', r.to, dst) && portMatches(r.ports, dst, port),
      ),
    );
  if (!egressOk) return false;
  const ingress = selecting(policies, dst, 'Ingress');
  return (
    ingress.length === 0 ||
    ingress.some((np) =>
      (np.spec?.ingress ?? []).some(
        (r) =>
          peerMatches(np.metadata?.namespace ?? 'default', r.from, src) && portMatches(r.ports, dst, port),
      ),
    )
  );
}

function containerPorts(ports: IContainerPort[] | undefined): PortSpec[] {
  return (ports ?? []).map((p) => ({ port: p.containerPort, protocol: p.protocol ?? 'TCP', name: p.name }));
}

/** The pods of the rendered workloads, plus the outside peers the design talks about. */
export function peers(objects: K8sObject[]): Peer[] {
  const nsLabels = new Map<string, Record<string, string>>();
  for (const o of objects) {
    if (o.kind === 'Namespace') {
      nsLabels.set(o.metadata.name, {
        ...(o.metadata.labels ?? {}),
        'kubernetes.io/metadata.name': o.metadata.name,
      });
    }
  }
  const out: Peer[] = [];
  let n = 10;
  for (const w of workloadObjects(objects)) {
    const tpl = podTemplate(w)!;
    const ns = w.metadata.namespace ?? 'default';
    out.push({
      id: w.metadata.name,
      namespace: ns,
      namespaceLabels: nsLabels.get(ns) ?? { 'kubernetes.io/metadata.name': ns },
      podLabels: tpl.metadata?.labels ?? {},
      ip: `10.244.0.${n++}`,
      ports: (tpl.spec?.containers ?? []).flatMap((c) => containerPorts(c.ports)),
    });
  }
  out.push(
    {
      id: 'internet',
      namespace: '',
      namespaceLabels: {},
      ip: '203.0.113.10',
      ports: [{ port: 443, protocol: 'TCP' }],
    },
    {
      id: 'other-namespace',
      namespace: 'default',
      namespaceLabels: { 'kubernetes.io/metadata.name': 'default' },
      podLabels: { app: 'other' },
      ip: '10.244.1.10',
      ports: [{ port: 8080, protocol: 'TCP' }],
    },
    {
      id: 'monitoring',
      namespace: 'monitoring',
      namespaceLabels: { 'kubernetes.io/metadata.name': 'monitoring', ...MONITORING_NAMESPACE_LABEL },
      podLabels: { 'app.kubernetes.io/name': 'prometheus' },
      ip: '10.244.2.10',
      ports: [{ port: 9090, protocol: 'TCP' }],
    },
    {
      id: 'kube-dns',
      namespace: 'kube-system',
      namespaceLabels: { 'kubernetes.io/metadata.name': 'kube-system' },
      podLabels: { 'k8s-app': 'kube-dns' },
      ip: '10.244.3.10',
      ports: [
        { port: 53, protocol: 'UDP', name: 'dns' },
        { port: 53, protocol: 'TCP', name: 'dns-tcp' },
        { port: 9153, protocol: 'TCP', name: 'metrics' },
      ],
    },
  );
  return out;
}

/**
 * Every allowed flow with at least one end in `namespace`, as
 * "src -> dst:port/PROTO", sorted.
 */
export function computeFlows(objects: K8sObject[], namespace: string): string[] {
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy') as unknown as INetworkPolicy[];
  const all = peers(objects);
  const flows = new Set<string>();
  for (const src of all) {
    for (const dst of all) {
      if (src.namespace !== namespace && dst.namespace !== namespace) continue;
      for (const port of dst.ports) {
        if (allowed(policies, src, dst, port))
          flows.add(`${src.id} -> ${dst.id}:${port.port}/${port.protocol}`);
      }
    }
  }
  return [...flows].sort();
}

/** Differences between allowed and designed flows ([] when equal). */
export function flowDifferences(actual: string[], expected: string[]): string[] {
  const a = new Set(actual);
  const e = new Set(expected);
  return [
    ...[...a].filter((f) => !e.has(f)).map((f) => `allowed but not designed: ${f}`),
    ...[...e].filter((f) => !a.has(f)).map((f) => `designed but not allowed: ${f}`),
  ];
}

/** Workloads (in `namespace`) whose pods cannot resolve names: no DNS egress to kube-dns. */
export function missingDnsEgress(objects: K8sObject[], namespace: string): string[] {
  const flows = new Set(computeFlows(objects, namespace));
  return peers(objects)
    .filter((p) => p.namespace === namespace)
    .flatMap((p) =>
      ['UDP', 'TCP']
        .filter((proto) => !flows.has(`${p.id} -> kube-dns:53/${proto}`))
        .map((proto) => `${p.id}: no DNS egress to kube-dns on 53/${proto}`),
    );
}
