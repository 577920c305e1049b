// Every policy check can fail: each case breaks one thing in a correct render and
// expects the check to report it (and the unbroken render to pass the same check).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IJob } from 'kubernetes-models/batch/v1';
import type { IConfigMap, IContainer, IService } from 'kubernetes-models/v1';
import { kubectl, renderTarget, type K8sObject, type TargetName } from './lib/render.js';
import * as c from './lib/checks.js';
import {
  EXTERNAL_SECRETS,
  GRPC_SERVICES,
  HPA_TARGETS,
  NO_HPA,
  OUR_IMAGE,
  SERVICES,
  expectedEnv,
  natsReplicas,
} from './lib/design.js';

const skip = kubectl()
  ? false
  : 'SKIPPED: kubectl not found on PATH or in .tools/bin, cannot render kustomizations';

function get<T>(objects: K8sObject[], kind: string, name: string): T {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} not in the render`);
  return o as unknown as T;
}
const deploy = (objs: K8sObject[], name: string) => get<IDeployment>(objs, 'Deployment', name);
const container = (objs: K8sObject[], name: string): IContainer =>
  deploy(objs, name).spec!.template.spec!.containers[0]!;
const sts = (objs: K8sObject[], name: string) => get<IStatefulSet>(objs, 'StatefulSet', name);
const configMap = (objs: K8sObject[], prefix: string) =>
  objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith(prefix)) as unknown as IConfigMap;

interface Case {
  name: string;
  check: c.Check;
  target?: TargetName;
  mutate: (objects: K8sObject[]) => void;
  /** every pattern must match the violations (in any order) */
  expect: RegExp | RegExp[];
}

const cases: Case[] = [
  // resources
  {
    name: 'a container without limits',
    check: c.checkResources,
    mutate: (o) => void (container(o, 'ticker').resources = { requests: { cpu: '100m', memory: '64Mi' } }),
    expect: /Deployment\/ticker container ticker: no cpu limit/,
  },
  {
    name: 'a StatefulSet container without requests',
    check: c.checkResources,
    mutate: (o) => void delete sts(o, 'mysql').spec!.template.spec!.containers[0]!.resources!.requests,
    expect: /StatefulSet\/mysql container mysql: no memory request/,
  },
  {
    name: 'a request above its limit',
    check: c.checkResources,
    mutate: (o) => void (container(o, 'gateway').resources!.requests!.memory = '2Gi'),
    expect: /memory request 2Gi above limit/,
  },
  // probes and commands
  {
    name: 'readiness on the liveness name',
    check: c.checkServiceProbes(SERVICES),
    mutate: (o) => void (container(o, 'customers').readinessProbe!.grpc!.service = 'liveness'),
    expect: /customers: readinessProbe is grpc port 50053 service "liveness", designed .*CustomerService/,
  },
  {
    name: 'liveness following dependencies',
    check: c.checkServiceProbes(SERVICES),
    mutate: (o) =>
      void (container(o, 'price-cache').livenessProbe!.grpc!.service = 'tickmesh.price.v1.PriceService'),
    expect: /price-cache: livenessProbe/,
  },
  {
    name: 'a startup probe on the readiness name (would kill customers before migrations)',
    check: c.checkServiceProbes(SERVICES),
    mutate: (o) => void (container(o, 'customers').startupProbe = container(o, 'customers').readinessProbe),
    expect: /customers: startupProbe/,
  },
  {
    name: 'an HTTP probe on the wrong path',
    check: c.checkServiceProbes(SERVICES),
    mutate: (o) => void (container(o, 'gateway').readinessProbe!.httpGet!.path = '/healthz'),
    expect: /gateway: readinessProbe is http \/healthz/,
  },
  {
    name: 'a wrong command',
    check: c.checkServiceProbes(SERVICES),
    mutate: (o) => void (container(o, 'simulator').command = ['node', 'dist/services/ticker/src/main.js']),
    expect: /simulator: command/,
  },
  {
    name: 'a missing service',
    check: c.checkServiceProbes(SERVICES),
    mutate: (o) =>
      void o.splice(o.indexOf(o.find((x) => x.kind === 'Deployment' && x.metadata.name === 'ticker')!), 1),
    expect: /Deployment\/ticker: missing/,
  },
  // security
  {
    name: 'a writable root filesystem',
    check: c.checkTickmeshSecurity,
    mutate: (o) => void (container(o, 'ticker').securityContext!.readOnlyRootFilesystem = false),
    expect: /ticker container ticker: readOnlyRootFilesystem is not true/,
  },
  {
    name: 'no /tmp emptyDir',
    check: c.checkTickmeshSecurity,
    mutate: (o) => void (container(o, 'gateway').volumeMounts = []),
    expect: /gateway container gateway: no emptyDir mounted at \/tmp/,
  },
  {
    name: 'another uid and a kept capability',
    check: c.checkTickmeshSecurity,
    mutate: (o) => {
      deploy(o, 'customers').spec!.template.spec!.securityContext!.runAsUser = 1000;
      container(o, 'customers').securityContext!.capabilities = { drop: ['NET_RAW'] };
    },
    expect: /customers: pod securityContext.runAsUser is not 10001[\s\S]*capabilities do not drop ALL/,
  },
  {
    name: 'the migration Job without seccomp',
    check: c.checkTickmeshSecurity,
    mutate: (o) =>
      void delete get<IJob>(o, 'Job', 'customers-migrate').spec!.template.spec!.securityContext!
        .seccompProfile,
    expect: /Job\/customers-migrate: pod seccompProfile is not RuntimeDefault/,
  },
  {
    name: 'Service links on (their MYSQL_PORT=tcp://... would collide with the config)',
    check: c.checkTickmeshSecurity,
    mutate: (o) => void delete deploy(o, 'customers').spec!.template.spec!.enableServiceLinks,
    expect: /Deployment\/customers: enableServiceLinks is not false/,
  },
  {
    name: 'a third-party container allowing privilege escalation',
    check: c.checkRestrictedPodSecurity,
    mutate: (o) => void delete container(o, 'redis').securityContext!.allowPrivilegeEscalation,
    expect: /Deployment\/redis container redis: allowPrivilegeEscalation is not false/,
  },
  {
    name: 'a hostPath volume',
    check: c.checkRestrictedPodSecurity,
    mutate: (o) =>
      void sts(o, 'mysql').spec!.template.spec!.volumes!.push({ name: 'h', hostPath: { path: '/' } }),
    expect: /StatefulSet\/mysql: volume h of type hostPath/,
  },
  {
    name: 'a pod running as root',
    check: c.checkRestrictedPodSecurity,
    mutate: (o) => {
      const s = sts(o, 'nats').spec!.template.spec!;
      s.securityContext!.runAsUser = 0;
      s.securityContext!.runAsNonRoot = false;
      delete s.containers[0]!.securityContext!.runAsNonRoot;
      delete s.containers[0]!.securityContext!.runAsUser;
    },
    expect: /StatefulSet\/nats: pod runs as uid 0/,
  },
  // shutdown
  {
    name: 'a grace period shorter than preStop + drain',
    check: c.checkGracefulShutdown,
    mutate: (o) => void (deploy(o, 'price-cache').spec!.template.spec!.terminationGracePeriodSeconds = 20),
    expect: /price-cache: grace 20s does not cover preStop 5s \+ drain 20s/,
  },
  {
    name: 'an exec preStop instead of the native sleep',
    check: c.checkGracefulShutdown,
    mutate: (o) =>
      void (container(o, 'gateway').lifecycle = { preStop: { exec: { command: ['sleep', '5'] } } }),
    expect: /gateway container gateway: preStop is not the native sleep/,
  },
  // HPAs
  {
    name: 'an HPA on the simulator',
    check: c.checkHpas(HPA_TARGETS, NO_HPA),
    mutate: (o) => {
      const h = structuredClone(get<IHorizontalPodAutoscaler>(o, 'HorizontalPodAutoscaler', 'ticker'));
      h.metadata!.name = 'simulator';
      h.spec!.scaleTargetRef.name = 'simulator';
      o.push(h as unknown as K8sObject);
    },
    expect: /simulator must not autoscale/,
  },
  {
    name: 'an HPA targeting a missing Deployment',
    check: c.checkHpas(HPA_TARGETS, NO_HPA),
    mutate: (o) =>
      void (get<IHorizontalPodAutoscaler>(o, 'HorizontalPodAutoscaler', 'gateway').spec!.scaleTargetRef.name =
        'gw'),
    expect: /target Deployment\/gw does not exist/,
  },
  {
    name: 'an HPA target without CPU requests, and no scale-down window',
    check: c.checkHpas(HPA_TARGETS, NO_HPA),
    mutate: (o) => {
      delete container(o, 'ticker').resources!.requests!.cpu;
      delete get<IHorizontalPodAutoscaler>(o, 'HorizontalPodAutoscaler', 'ticker').spec!.behavior;
    },
    expect: /ticker container ticker has no CPU request[\s\S]*stabilizationWindowSeconds/,
  },
  {
    name: 'a missing HPA and replicas fixed on an autoscaled Deployment',
    check: c.checkHpas(HPA_TARGETS, NO_HPA),
    mutate: (o) => {
      o.splice(
        o.indexOf(o.find((x) => x.kind === 'HorizontalPodAutoscaler' && x.metadata.name === 'customers')!),
        1,
      );
      deploy(o, 'gateway').spec!.replicas = 2;
    },
    expect: /gateway: sets spec.replicas[\s\S]*HPA targets are/,
  },
  // PDBs
  {
    name: 'minAvailable equal to the replicas (blocks drains)',
    target: 'kind',
    check: c.checkPdbs,
    mutate: (o) => {
      const p = get<IPodDisruptionBudget>(o, 'PodDisruptionBudget', 'ticker');
      delete p.spec!.maxUnavailable;
      p.spec!.minAvailable = 1;
    },
    expect: /ticker: minAvailable 1 >= replicas 1/,
  },
  {
    name: 'maxUnavailable 0',
    check: c.checkPdbs,
    mutate: (o) =>
      void (get<IPodDisruptionBudget>(o, 'PodDisruptionBudget', 'nats').spec!.maxUnavailable = 0),
    expect: /nats: maxUnavailable 0 blocks every eviction/,
  },
  {
    name: 'a PDB selecting nothing',
    check: c.checkPdbs,
    mutate: (o) =>
      void (get<IPodDisruptionBudget>(o, 'PodDisruptionBudget', 'gateway').spec!.selector = {
        matchLabels: { 'app.kubernetes.io/name': 'gatewy' },
      }),
    expect: /gateway: selects no workload/,
  },
  // spreading
  {
    name: 'hard spreading',
    check: c.checkTopologySpread,
    mutate: (o) =>
      void (deploy(o, 'price-cache').spec!.template.spec!.topologySpreadConstraints![0]!.whenUnsatisfiable =
        'DoNotSchedule'),
    expect: /price-cache: topology spread kubernetes.io\/hostname is hard/,
  },
  {
    name: 'an autoscaled Deployment without spreading',
    check: c.checkTopologySpread,
    mutate: (o) => void delete deploy(o, 'gateway').spec!.template.spec!.topologySpreadConstraints,
    expect: /Deployment\/gateway: no ScheduleAnyway spread/,
  },
  // services
  {
    name: 'a Service selector matching nothing',
    check: c.checkServiceSelectors,
    mutate: (o) =>
      void (get<IService>(o, 'Service', 'redis').spec!.selector = { 'app.kubernetes.io/name': 'rediss' }),
    expect: /Service\/redis: selector .* matches no pod template/,
  },
  {
    name: 'a headless Service mapping its port',
    check: c.checkServiceSelectors,
    mutate: (o) => void (get<IService>(o, 'Service', 'price-cache').spec!.ports![0]!.port = 443),
    expect: /Service\/price-cache: headless port 443 differs from the container port 50052/,
  },
  {
    name: 'a targetPort no container exposes',
    check: c.checkServiceSelectors,
    mutate: (o) => void (get<IService>(o, 'Service', 'gateway').spec!.ports![0]!.targetPort = 'web'),
    expect: /Service\/gateway: port http targets web/,
  },
  {
    name: 'a gRPC Service with a cluster IP',
    check: c.checkGrpcServicesHeadless(GRPC_SERVICES, ['gateway']),
    mutate: (o) => void delete get<IService>(o, 'Service', 'customers').spec!.clusterIP,
    expect: /Service\/customers: not headless/,
  },
  {
    name: 'a headless gateway',
    check: c.checkGrpcServicesHeadless(GRPC_SERVICES, ['gateway']),
    mutate: (o) => void (get<IService>(o, 'Service', 'gateway').spec!.clusterIP = 'None'),
    expect: /Service\/gateway: not a normal ClusterIP Service/,
  },
  // images
  {
    name: 'a third-party image on latest, another without a tag',
    check: c.checkImages([OUR_IMAGE]),
    mutate: (o) => {
      sts(o, 'nats').spec!.template.spec!.containers[0]!.image = 'nats:latest';
      container(o, 'redis').image = 'redis';
    },
    expect: [/nats:latest is not pinned/, /image redis is not pinned/],
  },
  {
    name: 'an image of ours that no skaffold artifact builds',
    check: c.checkImages([OUR_IMAGE]),
    mutate: (o) => void (container(o, 'gateway').image = 'tickmesh-gateway'),
    expect: /tickmesh-gateway is ours but not exactly a skaffold artifact/,
  },
  {
    name: 'our image with a hand-written tag (skaffold would not own the tag)',
    check: c.checkImages([OUR_IMAGE]),
    mutate: (o) => void (container(o, 'ticker').image = 'tickmesh:dev'),
    expect: /tickmesh:dev is ours but not exactly/,
  },
  // labels, namespace, references, env
  {
    name: 'a pod template without a component label',
    check: c.checkLabels,
    mutate: (o) =>
      void delete deploy(o, 'ticker').spec!.template.metadata!.labels!['app.kubernetes.io/component'],
    expect: /Deployment\/ticker pod template: no app.kubernetes.io\/component/,
  },
  {
    name: 'an object in another namespace',
    check: c.checkNamespace(true),
    mutate: (o) => void ((deploy(o, 'redis') as unknown as K8sObject).metadata.namespace = 'default'),
    expect: /Deployment\/redis: namespace default/,
  },
  {
    name: 'a reference to a missing ConfigMap and a missing Secret key',
    target: 'kind',
    check: c.checkReferences([]),
    mutate: (o) => {
      container(o, 'ticker').envFrom![1]!.configMapRef!.name = 'ticker-config-nothash';
      container(o, 'customers').env![0]!.valueFrom!.secretKeyRef!.key = 'PASSWORD';
    },
    expect: [/ConfigMap\/ticker-config-nothash does not exist/, /Secret\/tickmesh-mysql has no key PASSWORD/],
  },
  {
    name: 'a base Secret that is not one the operator provides',
    check: c.checkReferences(EXTERNAL_SECRETS),
    mutate: (o) => void (container(o, 'customers').env![0]!.valueFrom!.secretKeyRef!.name = 'db-creds'),
    expect: /Secret\/db-creds does not exist/,
  },
  {
    name: 'wrong AUTH_MODE, a missing GRPC_PORT and a literal password',
    check: c.checkEnv(expectedEnv('base')),
    mutate: (o) => {
      configMap(o, 'gateway-config').data!.AUTH_MODE = 'none';
      delete configMap(o, 'ticker-config').data!.GRPC_PORT;
      container(o, 'customers').env = [{ name: 'MYSQL_PASSWORD', value: 'hunter2' }];
    },
    expect:
      /ticker: GRPC_PORT is not set[\s\S]*customers: MYSQL_PASSWORD must come from a Secret[\s\S]*AUTH_MODE is "none", designed "api-key"/,
  },
  {
    name: 'the local overlay with three stream replicas',
    target: 'kind',
    check: c.checkEnv(expectedEnv('kind')),
    mutate: (o) => void (configMap(o, 'tickmesh-common').data!.TICKS_STREAM_REPLICAS = '3'),
    expect: /TICKS_STREAM_REPLICAS is "3", designed "1"/,
  },
  {
    name: 'a credential in a ConfigMap',
    check: c.checkEnv(expectedEnv('base')),
    mutate: (o) => {
      delete container(o, 'customers').env;
      configMap(o, 'customers-config').data!.MYSQL_PASSWORD = 'hunter2';
    },
    expect: [
      /customers: MYSQL_PASSWORD must come from a Secret/,
      /customers container customers: MYSQL_PASSWORD is a credential but comes from a configmap/,
      /ConfigMap\/customers-config-\w+: holds MYSQL_PASSWORD/,
    ],
  },
  {
    name: 'a Prometheus port annotation that is not the metrics port',
    check: c.checkPrometheusAnnotations(SERVICES),
    mutate: (o) =>
      void (deploy(o, 'ticker').spec!.template.metadata!.annotations!['prometheus.io/port'] = '50051'),
    expect: /ticker: prometheus.io\/port is 50051, metrics port is 9101/,
  },
  // jobs and infrastructure
  {
    name: 'a load test deployed with the set, and an unbounded Job',
    check: c.checkJobs(true),
    mutate: (o) => {
      o.push(...renderTarget('ghz'));
      delete get<IJob>(o, 'Job', 'customers-migrate').spec!.backoffLimit;
    },
    expect: /customers-migrate: no backoffLimit[\s\S]*Job\/ghz: a load test deploys with the set/,
  },
  {
    name: 'migrations not to latest',
    check: c.checkJobs(true),
    mutate: (o) =>
      void get<IJob>(o, 'Job', 'customers-migrate').spec!.template.spec!.containers[0]!.command!.pop(),
    expect: /customers-migrate: command/,
  },
  {
    name: 'two simulators, rolling',
    check: c.checkSimulator,
    mutate: (o) => {
      deploy(o, 'simulator').spec!.replicas = 2;
      deploy(o, 'simulator').spec!.strategy = { type: 'RollingUpdate' };
    },
    expect: /replicas 2, designed 1[\s\S]*strategy RollingUpdate/,
  },
  {
    name: 'three NATS nodes with stream replicas 1 (local)',
    target: 'kind',
    check: c.checkNats(natsReplicas('kind')),
    mutate: (o) => void (sts(o, 'nats').spec!.replicas = 3),
    expect: /StatefulSet\/nats: replicas 3, designed 1/,
  },
  {
    name: 'a cluster route missing and stream replicas below the node count',
    check: c.checkNats(natsReplicas('base')),
    mutate: (o) => {
      const cm = configMap(o, 'nats-config');
      cm.data!['nats.conf'] = cm.data!['nats.conf']!.replace(/\s*nats:\/\/nats-2\.nats-headless:6222/, '');
      configMap(o, 'tickmesh-common').data!.TICKS_STREAM_REPLICAS = '1';
    },
    expect: /cluster routes \[0,1\] do not name every node[\s\S]*TICKS_STREAM_REPLICAS is 1, but NATS runs 3/,
  },
  {
    name: 'checkpoint replicas above the local NATS node count',
    target: 'kind',
    check: c.checkNats(natsReplicas('kind')),
    mutate: (o) => void (configMap(o, 'price-cache-config').data!.CHECKPOINT_REPLICAS = '3'),
    expect: /CHECKPOINT_REPLICAS=3 exceeds the 1 NATS node/,
  },
  {
    name: 'NATS probes without js-enabled-only, and another image',
    check: c.checkNats(natsReplicas('base')),
    mutate: (o) => {
      const n = sts(o, 'nats').spec!.template.spec!.containers[0]!;
      n.readinessProbe!.httpGet!.path = '/healthz';
      n.image = 'nats:2.10-alpine';
    },
    expect: /image nats:2.10-alpine[\s\S]*readinessProbe is not \/healthz\?js-enabled-only=true/,
  },
  {
    name: 'Redis with persistence, MySQL without a PVC',
    check: c.checkDataStores,
    mutate: (o) => {
      const args = container(o, 'redis').args!;
      args[args.indexOf('--appendonly') + 1] = 'yes';
      sts(o, 'mysql').spec!.template.spec!.containers[0]!.volumeMounts = [];
    },
    expect: /--appendonly is not no[\s\S]*\/var\/lib\/mysql is not on a PVC/,
  },
];

void describe('k8s policy checks fail on broken manifests', { skip }, () => {
  for (const k of cases) {
    void it(`${k.name}`, () => {
      const target = k.target ?? 'base';
      assert.deepEqual(k.check(renderTarget(target)), [], 'the unbroken render must pass');
      const objects = renderTarget(target);
      k.mutate(objects);
      const violations = k.check(objects);
      assert.ok(violations.length > 0, 'the check did not fail');
      for (const re of Array.isArray(k.expect) ? k.expect : [k.expect])
        assert.match(violations.join('\n'), re);
    });
  }
});

void describe('k8s quantity parsing', () => {
  void it('cpu and memory', () => {
    assert.equal(c.cpuMillis('1'), 1000);
    assert.equal(c.cpuMillis('250m'), 250);
    assert.equal(c.cpuMillis('0.5'), 500);
    assert.equal(c.memoryBytes('1Gi'), 2 ** 30);
    assert.equal(c.memoryBytes('512Mi'), 512 * 2 ** 20);
    assert.equal(c.memoryBytes('1G'), 1e9);
    assert.ok(Number.isNaN(c.memoryBytes('1Gb')));
  });
});
