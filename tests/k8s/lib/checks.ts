// Policy checks over rendered manifests. Each check is a function from objects to a
// list of violations ([] = pass), so a test can feed it a deliberately broken
// object and see it fail (checks-fail.test.ts).
import type { IContainer, IPodSpec, IProbe, IService } from 'kubernetes-models/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IJob } from 'kubernetes-models/batch/v1';
import type { IStatefulSet, IDeployment } from 'kubernetes-models/apps/v1';
import {
  GRACE_SECONDS,
  MIGRATION_JOB,
  NAMESPACE,
  NATS_IMAGE,
  OUR_IMAGE,
  PRESTOP_SLEEP_SECONDS,
  RUN_AS_USER,
  SHUTDOWN_TIMEOUT_MS,
  type EnvExpectation,
  type ProbeSpec,
  type ServiceDesign,
} from './design.js';
import type { K8sObject } from './render.js';
import {
  allContainers,
  effectiveReplicas,
  imageName,
  imageTag,
  podTemplate,
  ref,
  workloadObjects,
} from './workloads.js';
import { selectorMatches } from './netpol.js';

export type Check = (objects: K8sObject[]) => string[];

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const find = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);
const isOurs = (image: string | undefined) => {
  const name = imageName(image ?? '');
  return name === OUR_IMAGE || name.startsWith('tickmesh') || name.endsWith('/tickmesh');
};
const usesOurImage = (o: K8sObject) => allContainers(podTemplate(o)?.spec).some((c) => isOurs(c.image));

// ---------------------------------------------------------------------------
// quantities

/** CPU in millicores ("1" -> 1000, "250m" -> 250, "0.5" -> 500). */
export function cpuMillis(q: string | number): number {
  const s = String(q);
  if (s.endsWith('m')) return Number(s.slice(0, -1));
  return Number(s) * 1000;
}

const MEMORY_UNITS: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

/** Memory in bytes ("512Mi", "1Gi", "1G", "1000"). */
export function memoryBytes(q: string | number): number {
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(String(q));
  if (!m) return NaN;
  const unit = m[2] ?? '';
  if (unit === '') return Number(m[1]);
  const factor = MEMORY_UNITS[unit];
  return factor === undefined ? NaN : Number(m[1]) * factor;
}

// ---------------------------------------------------------------------------
// resources

/** Every container of every workload has CPU and memory requests and limits, requests <= limits. */
export const checkResources: Check = (objects) => {
  const out: string[] = [];
  for (const w of workloadObjects(objects)) {
    for (const c of allContainers(podTemplate(w)?.spec)) {
      const where = `${ref(w)} container ${c.name}`;
      const req = c.resources?.requests ?? {};
      const lim = c.resources?.limits ?? {};
      for (const r of ['cpu', 'memory'] as const) {
        if (req[r] === undefined) out.push(`${where}: no ${r} request`);
        if (lim[r] === undefined) out.push(`${where}: no ${r} limit`);
      }
      if (req.cpu !== undefined && lim.cpu !== undefined && cpuMillis(req.cpu) > cpuMillis(lim.cpu)) {
        out.push(`${where}: cpu request ${req.cpu} above limit ${lim.cpu}`);
      }
      if (
        req.memory !== undefined &&
        lim.memory !== undefined &&
        memoryBytes(req.memory) > memoryBytes(lim.memory)
      ) {
        out.push(`${where}: memory request ${req.memory} above limit ${lim.memory}`);
      }
    }
  }
  return out;
};

// ---------------------------------------------------------------------------
// probes and commands of the tickmesh services

function containerPort(c: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

function probeTarget(c: IContainer, probe: IProbe | undefined): string {
  if (!probe) return 'none';
  if (probe.grpc) return `grpc port ${probe.grpc.port} service "${probe.grpc.service ?? ''}"`;
  if (probe.httpGet) return `http ${probe.httpGet.path ?? '/'} port ${containerPort(c, probe.httpGet.port)}`;
  if (probe.tcpSocket) return `tcp port ${containerPort(c, probe.tcpSocket.port)}`;
  if (probe.exec) return `exec ${JSON.stringify(probe.exec.command)}`;
  return 'unknown';
}

function describe(p: ProbeSpec): string {
  return 'grpc' in p
    ? `grpc port ${p.grpc.port} service "${p.grpc.service}"`
    : `http ${p.http.path} port ${p.http.port}`;
}

/** The container of a Deployment named like it (or its only container). */
function mainContainer(w: K8sObject): IContainer | undefined {
  const cs = podTemplate(w)?.spec?.containers ?? [];
  return cs.find((c) => c.name === w.metadata.name) ?? (cs.length === 1 ? cs[0] : undefined);
}

/**
 * Each designed service exists as a Deployment running the designed command with
 * the designed ports, liveness on the process-only name and readiness on the
 * dependency-following name (or HTTP /healthz and /readyz); a startup probe, if
 * any, must use the liveness target (never readiness: customers waits for its schema).
 */
export function checkServiceProbes(services: Record<string, ServiceDesign>): Check {
  return (objects) => {
    const out: string[] = [];
    for (const [name, design] of Object.entries(services)) {
      const d = find(objects, 'Deployment', name);
      if (!d) {
        out.push(`Deployment/${name}: missing`);
        continue;
      }
      const c = mainContainer(d);
      if (!c) {
        out.push(`Deployment/${name}: no container named ${name}`);
        continue;
      }
      const cmd = [...(c.command ?? []), ...(c.args ?? [])];
      if (JSON.stringify(cmd) !== JSON.stringify(design.command)) {
        out.push(
          `Deployment/${name}: command ${JSON.stringify(cmd)}, designed ${JSON.stringify(design.command)}`,
        );
      }
      for (const [portName, port] of Object.entries(design.ports)) {
        if (containerPort(c, portName) !== port)
          out.push(`Deployment/${name}: container port ${portName} is not ${port}`);
      }
      const checks: Array<[string, IProbe | undefined, ProbeSpec]> = [
        ['livenessProbe', c.livenessProbe, design.liveness],
        ['readinessProbe', c.readinessProbe, design.readiness],
      ];
      if (c.startupProbe) checks.push(['startupProbe', c.startupProbe, design.liveness]);
      for (const [field, probe, want] of checks) {
        const got = probeTarget(c, probe);
        if (got !== describe(want))
          out.push(`Deployment/${name}: ${field} is ${got}, designed ${describe(want)}`);
      }
    }
    return out;
  };
}

// ---------------------------------------------------------------------------
// security

/**
 * tickmesh pods (our image): the full securityContext at pod and container level,
 * uid 10001, a writable emptyDir at /tmp, no service account token, and no Service
 * links (their <SERVICE>_PORT variables would collide with MYSQL_PORT and friends).
 */
export const checkTickmeshSecurity: Check = (objects) => {
  const out: string[] = [];
  for (const w of workloadObjects(objects).filter(usesOurImage)) {
    const spec = podTemplate(w)?.spec;
    const psc = spec?.securityContext;
    const where = ref(w);
    if (psc?.runAsNonRoot !== true) out.push(`${where}: pod securityContext.runAsNonRoot is not true`);
    if (psc?.runAsUser !== RUN_AS_USER)
      out.push(`${where}: pod securityContext.runAsUser is not ${RUN_AS_USER}`);
    if (psc?.seccompProfile?.type !== 'RuntimeDefault')
      out.push(`${where}: pod seccompProfile is not RuntimeDefault`);
    if (spec?.automountServiceAccountToken !== false)
      out.push(`${where}: automountServiceAccountToken is not false`);
    if (spec?.enableServiceLinks !== false) {
      out.push(
        `${where}: enableServiceLinks is not false (injects MYSQL_PORT=tcp://..., REDIS_PORT=... into the config)`,
      );
    }
    for (const c of allContainers(spec)) {
      const sc = c.securityContext;
      const at = `${where} container ${c.name}`;
      if (sc?.runAsNonRoot !== true) out.push(`${at}: runAsNonRoot is not true`);
      if (sc?.runAsUser !== RUN_AS_USER) out.push(`${at}: runAsUser is not ${RUN_AS_USER}`);
      if (sc?.readOnlyRootFilesystem !== true) out.push(`${at}: readOnlyRootFilesystem is not true`);
      if (sc?.allowPrivilegeEscalation !== false) out.push(`${at}: allowPrivilegeEscalation is not false`);
      if (!(sc?.capabilities?.drop ?? []).includes('ALL')) out.push(`${at}: capabilities do not drop ALL`);
      if ((sc?.capabilities?.add ?? []).length > 0) out.push(`${at}: adds capabilities`);
      if (sc?.seccompProfile?.type !== 'RuntimeDefault')
        out.push(`${at}: seccompProfile is not RuntimeDefault`);
      const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
      const vol = tmp && spec?.volumes?.find((v) => v.name === tmp.name);
      if (!vol?.emptyDir) out.push(`${at}: no emptyDir mounted at /tmp`);
    }
  }
  return out;
};

const RESTRICTED_VOLUMES = [
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
];

/** Every pod (ours and third-party) meets the "restricted" Pod Security Standard the namespace enforces. */
export const checkRestrictedPodSecurity: Check = (objects) => {
  const out: string[] = [];
  for (const w of workloadObjects(objects)) {
    const spec: IPodSpec | undefined = podTemplate(w)?.spec;
    const psc = spec?.securityContext;
    const where = ref(w);
    if (spec?.hostNetwork || spec?.hostPID || spec?.hostIPC) out.push(`${where}: uses host namespaces`);
    for (const v of spec?.volumes ?? []) {
      const types = Object.keys(v).filter((k) => k !== 'name');
      for (const t of types)
        if (!RESTRICTED_VOLUMES.includes(t)) out.push(`${where}: volume ${v.name} of type ${t}`);
    }
    if (psc?.runAsUser === 0) out.push(`${where}: pod runs as uid 0`);
    for (const c of allContainers(spec)) {
      const sc = c.securityContext;
      const at = `${where} container ${c.name}`;
      if (sc?.privileged) out.push(`${at}: privileged`);
      if (sc?.allowPrivilegeEscalation !== false) out.push(`${at}: allowPrivilegeEscalation is not false`);
      const nonRoot = sc?.runAsNonRoot ?? psc?.runAsNonRoot;
      if (nonRoot !== true) out.push(`${at}: runAsNonRoot is not true (pod or container)`);
      if ((sc?.runAsUser ?? psc?.runAsUser) === 0) out.push(`${at}: runs as uid 0`);
      const seccomp = sc?.seccompProfile?.type ?? psc?.seccompProfile?.type;
      if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
        out.push(`${at}: no RuntimeDefault seccomp profile`);
      if (!(sc?.capabilities?.drop ?? []).includes('ALL')) out.push(`${at}: capabilities do not drop ALL`);
      for (const cap of sc?.capabilities?.add ?? []) {
        if (cap !== 'NET_BIND_SERVICE') out.push(`${at}: adds capability ${cap}`);
      }
      for (const p of c.ports ?? []) if (p.hostPort) out.push(`${at}: hostPort ${p.hostPort}`);
    }
  }
  return out;
};

/**
 * tickmesh Deployments shut down cleanly: a native preStop sleep so endpoint removal
 * propagates first, and a grace period longer than preStop + drain.
 */
export const checkGracefulShutdown: Check = (objects) => {
  const out: string[] = [];
  const drainSeconds = SHUTDOWN_TIMEOUT_MS / 1000;
  for (const d of byKind(objects, 'Deployment').filter(usesOurImage)) {
    const spec = podTemplate(d)?.spec;
    const grace = spec?.terminationGracePeriodSeconds ?? 30;
    if (grace !== GRACE_SECONDS)
      out.push(`${ref(d)}: terminationGracePeriodSeconds ${grace}, designed ${GRACE_SECONDS}`);
    for (const c of spec?.containers ?? []) {
      const sleep = c.lifecycle?.preStop?.sleep?.seconds;
      if (sleep !== PRESTOP_SLEEP_SECONDS) {
        out.push(
          `${ref(d)} container ${c.name}: preStop is not the native sleep of ${PRESTOP_SLEEP_SECONDS}s`,
        );
      }
      if (grace <= (sleep ?? 0) + drainSeconds) {
        out.push(`${ref(d)}: grace ${grace}s does not cover preStop ${sleep ?? 0}s + drain ${drainSeconds}s`);
      }
    }
  }
  return out;
};

// ---------------------------------------------------------------------------
// autoscaling, disruption budgets, spreading

/**
 * HPAs (autoscaling/v2) exist for exactly `targets`, scale an existing Deployment
 * whose containers all request CPU, on CPU utilisation, with a scale-down
 * stabilisation window; `forbidden` workloads have none; an HPA-managed Deployment
 * leaves spec.replicas unset (so `kubectl apply` never resets the scale).
 */
export function checkHpas(targets: string[], forbidden: string[]): Check {
  return (objects) => {
    const out: string[] = [];
    const hpas = byKind(objects, 'HorizontalPodAutoscaler');
    const seen: string[] = [];
    for (const o of hpas) {
      const hpa = o as unknown as IHorizontalPodAutoscaler;
      const where = ref(o);
      if (o.apiVersion !== 'autoscaling/v2')
        out.push(`${where}: apiVersion ${o.apiVersion}, want autoscaling/v2`);
      const t = hpa.spec?.scaleTargetRef;
      if (!t || t.kind !== 'Deployment') {
        out.push(`${where}: does not target a Deployment`);
        continue;
      }
      seen.push(t.name);
      if (forbidden.includes(t.name)) out.push(`${where}: ${t.name} must not autoscale`);
      const d = find(objects, 'Deployment', t.name);
      if (!d) {
        out.push(`${where}: target Deployment/${t.name} does not exist`);
        continue;
      }
      for (const c of podTemplate(d)?.spec?.containers ?? []) {
        if (c.resources?.requests?.cpu === undefined)
          out.push(`${where}: ${t.name} container ${c.name} has no CPU request`);
      }
      if ((d.spec as IDeployment['spec'])?.replicas !== undefined) {
        out.push(`Deployment/${t.name}: sets spec.replicas although an HPA owns the count`);
      }
      const cpu = (hpa.spec?.metrics ?? []).some(
        (m) =>
          m.type === 'Resource' && m.resource?.name === 'cpu' && m.resource.target.type === 'Utilization',
      );
      if (!cpu) out.push(`${where}: no CPU utilization metric`);
      const win = hpa.spec?.behavior?.scaleDown?.stabilizationWindowSeconds;
      if (win === undefined || win < 60)
        out.push(`${where}: behavior.scaleDown.stabilizationWindowSeconds unset or < 60`);
      const min = hpa.spec?.minReplicas ?? 1;
      if (min < 1 || min > (hpa.spec?.maxReplicas ?? 0))
        out.push(`${where}: minReplicas ${min} / maxReplicas invalid`);
    }
    const want = [...targets].sort();
    const got = [...seen].sort();
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      out.push(`HPA targets are ${JSON.stringify(got)}, designed ${JSON.stringify(want)}`);
    }
    return out;
  };
}

/**
 * PodDisruptionBudgets select a workload and can never block a drain: maxUnavailable
 * of at least 1, or a minAvailable below the replicas.
 */
export const checkPdbs: Check = (objects) => {
  const out: string[] = [];
  const workloads = workloadObjects(objects);
  for (const o of byKind(objects, 'PodDisruptionBudget')) {
    const pdb = o as unknown as IPodDisruptionBudget;
    const where = ref(o);
    const matched = workloads.filter(
      (w) =>
        w.metadata.namespace === o.metadata.namespace &&
        selectorMatches(pdb.spec?.selector ?? {}, podTemplate(w)?.metadata?.labels ?? {}),
    );
    if (!pdb.spec?.selector || matched.length === 0) {
      out.push(`${where}: selects no workload`);
      continue;
    }
    const maxU = pdb.spec.maxUnavailable;
    const minA = pdb.spec.minAvailable;
    if (maxU !== undefined) {
      const ok = typeof maxU === 'number' ? maxU >= 1 : Number.parseInt(maxU, 10) > 0;
      if (!ok) out.push(`${where}: maxUnavailable ${maxU} blocks every eviction`);
    } else if (minA !== undefined) {
      for (const w of matched) {
        const replicas = effectiveReplicas(objects, w);
        const needed =
          typeof minA === 'number' ? minA : Math.ceil((Number.parseInt(minA, 10) / 100) * replicas);
        if (needed >= replicas)
          out.push(`${where}: minAvailable ${minA} >= replicas ${replicas} of ${ref(w)}: blocks drains`);
      }
    } else {
      out.push(`${where}: neither maxUnavailable nor minAvailable`);
    }
  }
  return out;
};

/**
 * Workloads that may run several pods (an HPA, or replicas > 1) spread over nodes
 * (kubernetes.io/hostname) softly (ScheduleAnyway); no hard spreading anywhere.
 */
export const checkTopologySpread: Check = (objects) => {
  const out: string[] = [];
  const scaled = new Set(
    byKind(objects, 'HorizontalPodAutoscaler').map(
      (h) => (h as unknown as IHorizontalPodAutoscaler).spec?.scaleTargetRef.name,
    ),
  );
  for (const w of workloadObjects(objects)) {
    const tpl = podTemplate(w);
    const constraints = tpl?.spec?.topologySpreadConstraints ?? [];
    for (const c of constraints) {
      if (c.whenUnsatisfiable !== 'ScheduleAnyway')
        out.push(`${ref(w)}: topology spread ${c.topologyKey} is hard`);
    }
    const replicas = (w.spec as { replicas?: number } | undefined)?.replicas ?? 1;
    if (!scaled.has(w.metadata.name) && replicas <= 1) continue;
    const ok = constraints.some(
      (c) =>
        c.topologyKey === 'kubernetes.io/hostname' &&
        c.whenUnsatisfiable === 'ScheduleAnyway' &&
        c.labelSelector !== undefined &&
        selectorMatches(c.labelSelector, tpl?.metadata?.labels ?? {}),
    );
    if (!ok) out.push(`${ref(w)}: no ScheduleAnyway spread on kubernetes.io/hostname selecting its own pods`);
  }
  return out;
};

// ---------------------------------------------------------------------------
// services

/**
 * Every Service selects some pod template in its namespace, each port's targetPort is
 * a container port of those pods, and a headless Service's port is that container
 * port itself (DNS hands out pod addresses: no port mapping happens).
 */
export const checkServiceSelectors: Check = (objects) => {
  const out: string[] = [];
  const workloads = workloadObjects(objects);
  for (const o of byKind(objects, 'Service')) {
    const svc = o as unknown as IService;
    const where = ref(o);
    const selector = svc.spec?.selector;
    if (!selector || Object.keys(selector).length === 0) {
      out.push(`${where}: no selector`);
      continue;
    }
    const pods = workloads
      .filter((w) => w.metadata.namespace === o.metadata.namespace)
      .map((w) => podTemplate(w)!)
      .filter((t) => selectorMatches({ matchLabels: selector }, t.metadata?.labels ?? {}));
    if (pods.length === 0) {
      out.push(`${where}: selector ${JSON.stringify(selector)} matches no pod template`);
      continue;
    }
    const headless = svc.spec?.clusterIP === 'None';
    for (const p of svc.spec?.ports ?? []) {
      const target = p.targetPort ?? p.port;
      const resolved = pods
        .flatMap((t) => t.spec?.containers ?? [])
        .flatMap((c) => {
          const n = containerPort(c, target);
          return n !== undefined && (c.ports ?? []).some((x) => x.containerPort === n) ? [n] : [];
        })[0];
      if (resolved === undefined) {
        out.push(`${where}: port ${p.name ?? p.port} targets ${target}, which no selected container exposes`);
      } else if (headless && resolved !== p.port) {
        out.push(`${where}: headless port ${p.port} differs from the container port ${resolved}`);
      }
    }
  }
  return out;
};

/**
 * The gRPC services are headless (client-side round_robin over dns:///name:port);
 * the gateway is a normal ClusterIP Service; any Service with a port named grpc is headless.
 */
export function checkGrpcServicesHeadless(grpcServices: string[], clusterIpServices: string[]): Check {
  return (objects) => {
    const out: string[] = [];
    for (const name of grpcServices) {
      const s = find(objects, 'Service', name) as unknown as IService | undefined;
      if (!s) out.push(`Service/${name}: missing`);
      else if (s.spec?.clusterIP !== 'None') out.push(`Service/${name}: not headless (clusterIP: None)`);
    }
    for (const name of clusterIpServices) {
      const s = find(objects, 'Service', name) as unknown as IService | undefined;
      if (!s) out.push(`Service/${name}: missing`);
      else if (s.spec?.clusterIP === 'None' || (s.spec?.type ?? 'ClusterIP') !== 'ClusterIP') {
        out.push(`Service/${name}: not a normal ClusterIP Service`);
      }
    }
    for (const o of byKind(objects, 'Service')) {
      const s = o as unknown as IService;
      const grpc = (s.spec?.ports ?? []).some(
        (p) => p.name === 'grpc' || p.appProtocol === 'kubernetes.io/h2c',
      );
      if (grpc && s.spec?.clusterIP !== 'None') out.push(`${ref(o)}: serves gRPC but is not headless`);
    }
    return out;
  };
}

// ---------------------------------------------------------------------------
// images

/**
 * Images that are ours are exactly the names of skaffold artifacts (untagged, so
 * skaffold substitutes the built tag); third-party images are pinned to a version tag.
 */
export function checkImages(artifactImages: string[]): Check {
  return (objects) => {
    const out: string[] = [];
    for (const w of workloadObjects(objects)) {
      for (const c of allContainers(podTemplate(w)?.spec)) {
        const image = c.image ?? '';
        const at = `${ref(w)} container ${c.name}`;
        if (!image) {
          out.push(`${at}: no image`);
          continue;
        }
        if (isOurs(image) || artifactImages.includes(imageName(image))) {
          if (!artifactImages.includes(image)) {
            out.push(
              `${at}: image ${image} is ours but not exactly a skaffold artifact (${artifactImages.join(', ')})`,
            );
          }
          continue;
        }
        const tag = imageTag(image);
        const digest = image.includes('@sha256:');
        if (!digest && (!tag || tag === 'latest' || !/\d/.test(tag))) {
          out.push(`${at}: third-party image ${image} is not pinned to a version tag`);
        }
      }
    }
    return out;
  };
}

// ---------------------------------------------------------------------------
// labels, namespace, references, environment

/** Every object and pod template carries app.kubernetes.io/name, component and part-of: tickmesh. */
export const checkLabels: Check = (objects) => {
  const out: string[] = [];
  const need = (where: string, labels: Record<string, string> | undefined) => {
    if (!labels?.['app.kubernetes.io/name']) out.push(`${where}: no app.kubernetes.io/name label`);
    if (!labels?.['app.kubernetes.io/component']) out.push(`${where}: no app.kubernetes.io/component label`);
    if (labels?.['app.kubernetes.io/part-of'] !== 'tickmesh') out.push(`${where}: part-of is not tickmesh`);
  };
  for (const o of objects) {
    need(ref(o), o.metadata.labels);
    const tpl = podTemplate(o);
    if (tpl) need(`${ref(o)} pod template`, tpl.metadata?.labels);
  }
  return out;
};

/** Everything lives in the tickmesh namespace (which the set itself creates when `withNamespace`). */
export function checkNamespace(withNamespace: boolean): Check {
  return (objects) => {
    const out: string[] = [];
    for (const o of objects) {
      if (o.kind === 'Namespace') continue;
      if (o.metadata.namespace !== NAMESPACE)
        out.push(`${ref(o)}: namespace ${o.metadata.namespace ?? '(none)'}`);
    }
    if (withNamespace && !find(objects, 'Namespace', NAMESPACE)) out.push(`Namespace/${NAMESPACE}: missing`);
    return out;
  };
}

interface KeyedObject {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/**
 * Every ConfigMap/Secret a pod refers to (envFrom, env valueFrom, volumes) exists in
 * the render with the referenced key, unless the reference is optional or the
 * Secret is one the operator provides (`externalSecrets`, for the base).
 */
export function checkReferences(externalSecrets: string[]): Check {
  return (objects) => {
    const out: string[] = [];
    const lookup = (kind: string, name: string, ns: string | undefined) =>
      objects.find((o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === ns) as
        (K8sObject & KeyedObject) | undefined;
    const need = (
      w: K8sObject,
      kind: 'ConfigMap' | 'Secret',
      name: string | undefined,
      key: string | undefined,
      optional: boolean | undefined,
    ) => {
      if (!name) return;
      const obj = lookup(kind, name, w.metadata.namespace);
      if (!obj) {
        if (optional || (kind === 'Secret' && externalSecrets.includes(name))) return;
        out.push(`${ref(w)}: ${kind}/${name} does not exist`);
        return;
      }
      if (key !== undefined && !(key in (obj.data ?? {})) && !(key in (obj.stringData ?? {})) && !optional) {
        out.push(`${ref(w)}: ${kind}/${name} has no key ${key}`);
      }
    };
    for (const w of workloadObjects(objects)) {
      const spec = podTemplate(w)?.spec;
      for (const c of allContainers(spec)) {
        for (const ef of c.envFrom ?? []) {
          need(w, 'ConfigMap', ef.configMapRef?.name, undefined, ef.configMapRef?.optional);
          need(w, 'Secret', ef.secretRef?.name, undefined, ef.secretRef?.optional);
        }
        for (const e of c.env ?? []) {
          const cm = e.valueFrom?.configMapKeyRef;
          const sk = e.valueFrom?.secretKeyRef;
          if (cm) need(w, 'ConfigMap', cm.name, cm.key, cm.optional);
          if (sk) need(w, 'Secret', sk.name, sk.key, sk.optional);
        }
      }
      for (const v of spec?.volumes ?? []) {
        if (v.configMap) need(w, 'ConfigMap', v.configMap.name, undefined, v.configMap.optional);
        if (v.secret) need(w, 'Secret', v.secret.secretName, undefined, v.secret.optional);
      }
    }
    return out;
  };
}

type EnvSource =
  | { from: 'value'; value: string }
  | { from: 'configmap'; value: string | undefined }
  | { from: 'secret'; optional: boolean }
  | { from: 'other' };

/** The environment a container sees (envFrom first, env overrides), with where each value comes from. */
export function resolveEnv(objects: K8sObject[], w: K8sObject, c: IContainer): Map<string, EnvSource> {
  const env = new Map<string, EnvSource>();
  const data = (kind: string, name: string | undefined) =>
    (
      objects.find(
        (o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === w.metadata.namespace,
      ) as KeyedObject | undefined
    )?.data ?? {};
  for (const ef of c.envFrom ?? []) {
    const prefix = ef.prefix ?? '';
    if (ef.configMapRef) {
      for (const [k, v] of Object.entries(data('ConfigMap', ef.configMapRef.name))) {
        env.set(prefix + k, { from: 'configmap', value: v });
      }
    }
    if (ef.secretRef) {
      const s = objects.find((o) => o.kind === 'Secret' && o.metadata.name === ef.secretRef?.name) as
        KeyedObject | undefined;
      for (const k of Object.keys({ ...(s?.data ?? {}), ...(s?.stringData ?? {}) })) {
        env.set(prefix + k, { from: 'secret', optional: ef.secretRef.optional === true });
      }
    }
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env.set(e.name, { from: 'value', value: e.value });
    else if (e.valueFrom?.configMapKeyRef) {
      const ref2 = e.valueFrom.configMapKeyRef;
      env.set(e.name, { from: 'configmap', value: data('ConfigMap', ref2.name)[ref2.key] });
    } else if (e.valueFrom?.secretKeyRef) {
      env.set(e.name, { from: 'secret', optional: e.valueFrom.secretKeyRef.optional === true });
    } else env.set(e.name, { from: 'other' });
  }
  return env;
}

const SECRET_NAME = /PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL/i;

/**
 * Each workload sees the designed environment (exact values where the design fixes
 * them); credentials come from Secrets, never from ConfigMaps or literal values.
 */
export function checkEnv(expected: Record<string, EnvExpectation>): Check {
  return (objects) => {
    const out: string[] = [];
    for (const [name, vars] of Object.entries(expected)) {
      const w = workloadObjects(objects).find((o) => o.metadata.name === name);
      if (!w) continue; // presence of workloads is checked elsewhere
      const c = mainContainer(w) ?? podTemplate(w)?.spec?.containers?.[0];
      if (!c) continue;
      const env = resolveEnv(objects, w, c);
      for (const [key, want] of Object.entries(vars)) {
        const got = env.get(key);
        const where = `${ref(w)}: ${key}`;
        if (!got) {
          out.push(`${where} is not set`);
        } else if (want === 'secret' || want === 'optional-secret') {
          if (got.from !== 'secret') out.push(`${where} must come from a Secret`);
          else if (want === 'secret' && got.optional) out.push(`${where} must be a required Secret key`);
        } else if (want !== true) {
          const value = got.from === 'value' || got.from === 'configmap' ? got.value : undefined;
          if (value !== want)
            out.push(`${where} is ${JSON.stringify(value)}, designed ${JSON.stringify(want)}`);
        }
      }
    }
    for (const w of workloadObjects(objects)) {
      for (const c of allContainers(podTemplate(w)?.spec)) {
        for (const [key, src] of resolveEnv(objects, w, c)) {
          if (SECRET_NAME.test(key) && (src.from === 'value' || src.from === 'configmap')) {
            out.push(`${ref(w)} container ${c.name}: ${key} is a credential but comes from a ${src.from}`);
          }
        }
      }
    }
    for (const cm of byKind(objects, 'ConfigMap')) {
      for (const key of Object.keys((cm as KeyedObject).data ?? {})) {
        if (SECRET_NAME.test(key)) out.push(`${ref(cm)}: holds ${key}; credentials belong in a Secret`);
      }
    }
    return out;
  };
}

/** Pods are scraped by Prometheus on their metrics port (annotations), which the pod exposes. */
export function checkPrometheusAnnotations(services: Record<string, ServiceDesign>): Check {
  return (objects) => {
    const out: string[] = [];
    for (const [name, design] of Object.entries(services)) {
      const d = find(objects, 'Deployment', name);
      if (!d) continue;
      const tpl = podTemplate(d);
      const a = tpl?.metadata?.annotations ?? {};
      if (a['prometheus.io/scrape'] !== 'true') out.push(`${ref(d)}: prometheus.io/scrape is not "true"`);
      if (a['prometheus.io/port'] !== String(design.metricsPort)) {
        out.push(
          `${ref(d)}: prometheus.io/port is ${a['prometheus.io/port']}, metrics port is ${design.metricsPort}`,
        );
      }
      if (a['prometheus.io/path'] !== '/metrics') out.push(`${ref(d)}: prometheus.io/path is not /metrics`);
      const exposed = (tpl?.spec?.containers ?? []).some((c) =>
        (c.ports ?? []).some((p) => p.containerPort === design.metricsPort),
      );
      if (!exposed) out.push(`${ref(d)}: metrics port ${design.metricsPort} is not a container port`);
    }
    return out;
  };
}

// ---------------------------------------------------------------------------
// jobs and infrastructure

/**
 * Jobs are bounded (backoffLimit, ttlSecondsAfterFinished); the migration Job runs
 * `migrate-main.js latest`; load tests (component load-test) never deploy with the
 * set unless suspended.
 */
export function checkJobs(requireMigration: boolean): Check {
  return (objects) => {
    const out: string[] = [];
    for (const o of byKind(objects, 'Job')) {
      const job = o as unknown as IJob;
      if (job.spec?.backoffLimit === undefined) out.push(`${ref(o)}: no backoffLimit`);
      if (job.spec?.ttlSecondsAfterFinished === undefined) out.push(`${ref(o)}: no ttlSecondsAfterFinished`);
      const rp = job.spec?.template.spec?.restartPolicy;
      if (rp !== 'Never' && rp !== 'OnFailure')
        out.push(`${ref(o)}: restartPolicy ${rp ?? '(default Always)'}`);
      if (
        requireMigration &&
        o.metadata.labels?.['app.kubernetes.io/component'] === 'load-test' &&
        job.spec?.suspend !== true
      ) {
        out.push(`${ref(o)}: a load test deploys with the set; apply it on demand (k8s/jobs) or suspend it`);
      }
    }
    if (requireMigration) {
      const m = find(objects, 'Job', MIGRATION_JOB.name);
      if (!m) out.push(`Job/${MIGRATION_JOB.name}: missing`);
      else {
        const c = podTemplate(m)?.spec?.containers?.[0];
        const cmd = [...(c?.command ?? []), ...(c?.args ?? [])];
        if (JSON.stringify(cmd) !== JSON.stringify(MIGRATION_JOB.command)) {
          out.push(
            `${ref(m)}: command ${JSON.stringify(cmd)}, designed ${JSON.stringify(MIGRATION_JOB.command)}`,
          );
        }
      }
    }
    return out;
  };
}

/** The feed simulator: one replica, Recreate (never two feeds at once). */
export const checkSimulator: Check = (objects) => {
  const d = find(objects, 'Deployment', 'simulator');
  if (!d) return ['Deployment/simulator: missing'];
  const spec = d.spec as IDeployment['spec'];
  const out: string[] = [];
  if (spec?.replicas !== 1) out.push(`${ref(d)}: replicas ${spec?.replicas}, designed 1`);
  if (spec?.strategy?.type !== 'Recreate')
    out.push(`${ref(d)}: strategy ${spec?.strategy?.type ?? 'RollingUpdate'}, designed Recreate`);
  return out;
};

function natsConf(objects: K8sObject[], sts: IStatefulSet): string | undefined {
  const vol = sts.spec?.template.spec?.volumes?.find((v) => v.configMap);
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === vol?.configMap?.name) as
    KeyedObject | undefined;
  return cm?.data?.['nats.conf'];
}

/**
 * NATS: a StatefulSet of `replicas` nodes on PVCs, image nats:2.12.15-alpine, a cluster
 * block with one route per node when clustered (none when single), JetStream on the
 * volume, /healthz?js-enabled-only=true probes on 8222, a headless Service that
 * publishes not-ready addresses, and TICKS_STREAM_REPLICAS equal to the node count.
 */
export function checkNats(replicas: number): Check {
  return (objects) => {
    const out: string[] = [];
    const o = find(objects, 'StatefulSet', 'nats');
    if (!o) return ['StatefulSet/nats: missing'];
    const sts = o as unknown as IStatefulSet;
    if (sts.spec?.replicas !== replicas)
      out.push(`StatefulSet/nats: replicas ${sts.spec?.replicas}, designed ${replicas}`);
    const c = sts.spec?.template.spec?.containers.find((x) => x.name === 'nats');
    if (c?.image !== NATS_IMAGE) out.push(`StatefulSet/nats: image ${c?.image}, designed ${NATS_IMAGE}`);
    const pvc = sts.spec?.volumeClaimTemplates?.[0]?.metadata?.name;
    const dataMount = c?.volumeMounts?.find((m) => m.name === pvc)?.mountPath;
    if (!pvc || !dataMount) out.push('StatefulSet/nats: no PVC mounted');
    for (const [field, probe] of [
      ['livenessProbe', c?.livenessProbe],
      ['readinessProbe', c?.readinessProbe],
    ] as const) {
      const h = probe?.httpGet;
      const port = c ? containerPort(c, h?.port) : undefined;
      if (port !== 8222 || !h?.path?.startsWith('/healthz?js-enabled-only=true')) {
        out.push(`StatefulSet/nats: ${field} is not /healthz?js-enabled-only=true on 8222`);
      }
    }
    const conf = natsConf(objects, sts);
    if (!conf) out.push('StatefulSet/nats: no nats.conf ConfigMap');
    else {
      const storeDir = /store_dir:\s*"?([^\s"]+)"?/.exec(conf)?.[1];
      if (!storeDir || !dataMount || !storeDir.startsWith(dataMount)) {
        out.push(`nats.conf: JetStream store_dir ${storeDir} is not on the PVC (${dataMount})`);
      }
      const routes = [...conf.matchAll(/nats:\/\/nats-(\d+)\.nats-headless[^\s]*:6222/g)].map((m) =>
        Number(m[1]),
      );
      const clustered = /^\s*cluster\s*\{/m.test(conf);
      if (replicas > 1) {
        const want = Array.from({ length: replicas }, (_, i) => i);
        if (!clustered || JSON.stringify(routes.sort()) !== JSON.stringify(want)) {
          out.push(
            `nats.conf: cluster routes ${JSON.stringify(routes)} do not name every node 0..${replicas - 1}`,
          );
        }
      } else if (clustered) {
        out.push('nats.conf: a single node must not configure a cluster');
      }
    }
    const headless = objects.find(
      (x) =>
        x.kind === 'Service' &&
        x.metadata.name === sts.spec?.serviceName &&
        (x as unknown as IService).spec?.clusterIP === 'None' &&
        (x as unknown as IService).spec?.publishNotReadyAddresses === true,
    );
    if (!headless)
      out.push(
        `StatefulSet/nats: serviceName ${sts.spec?.serviceName} is not a headless Service publishing not-ready addresses`,
      );
    const common = objects.find(
      (x) => x.kind === 'ConfigMap' && x.metadata.name.startsWith('tickmesh-common'),
    ) as KeyedObject | undefined;
    const streamReplicas = common?.data?.TICKS_STREAM_REPLICAS;
    if (streamReplicas !== String(replicas)) {
      out.push(`TICKS_STREAM_REPLICAS is ${streamReplicas}, but NATS runs ${replicas} node(s)`);
    }
    // any other JetStream replica setting (e.g. CHECKPOINT_REPLICAS) cannot exceed the nodes
    for (const cm of byKind(objects, 'ConfigMap')) {
      for (const [k, v] of Object.entries((cm as KeyedObject).data ?? {})) {
        if (/_REPLICAS$/.test(k) && Number(v) > replicas)
          out.push(`${ref(cm)}: ${k}=${v} exceeds the ${replicas} NATS node(s)`);
      }
    }
    return out;
  };
}

/** Redis is a cache without persistence; MySQL 8.4 keeps its data on a PVC. */
export const checkDataStores: Check = (objects) => {
  const out: string[] = [];
  const redis = find(objects, 'Deployment', 'redis');
  const rc = redis && podTemplate(redis)?.spec?.containers[0];
  const args = [...(rc?.command ?? []), ...(rc?.args ?? [])];
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (!rc) out.push('Deployment/redis: missing');
  else {
    if (flag('--save') !== '') out.push('Deployment/redis: persistence not disabled (--save "")');
    if (flag('--appendonly') !== 'no') out.push('Deployment/redis: --appendonly is not no');
  }
  const mysql = find(objects, 'StatefulSet', 'mysql') as unknown as IStatefulSet | undefined;
  if (!mysql) out.push('StatefulSet/mysql: missing');
  else {
    const c = mysql.spec?.template.spec?.containers[0];
    if (!c?.image?.startsWith('mysql:8.4'))
      out.push(`StatefulSet/mysql: image ${c?.image}, designed mysql:8.4`);
    const pvc = mysql.spec?.volumeClaimTemplates?.[0]?.metadata?.name;
    if (!c?.volumeMounts?.some((m) => m.name === pvc && m.mountPath === '/var/lib/mysql')) {
      out.push('StatefulSet/mysql: /var/lib/mysql is not on a PVC');
    }
  }
  return out;
};
