// The policy checks that apply to each rendered target, by name.
import {
  checkDataStores,
  checkEnv,
  checkGracefulShutdown,
  checkGrpcServicesHeadless,
  checkHpas,
  checkImages,
  checkJobs,
  checkLabels,
  checkNamespace,
  checkNats,
  checkPdbs,
  checkPrometheusAnnotations,
  checkReferences,
  checkResources,
  checkRestrictedPodSecurity,
  checkServiceProbes,
  checkServiceSelectors,
  checkSimulator,
  checkTickmeshSecurity,
  checkTopologySpread,
  type Check,
} from './checks.js';
import {
  EXTERNAL_SECRETS,
  GRPC_SERVICES,
  HPA_TARGETS,
  NO_HPA,
  SERVICES,
  expectedEnv,
  natsReplicas,
} from './design.js';
import type { TargetName } from './render.js';

export function policyChecks(target: TargetName, artifactImages: string[]): Record<string, Check> {
  const common: Record<string, Check> = {
    'every container has CPU and memory requests and limits': checkResources,
    'every pod meets the restricted Pod Security Standard': checkRestrictedPodSecurity,
    'our images are skaffold artifacts, third-party images are pinned': checkImages(artifactImages),
    'every object carries the app.kubernetes.io labels': checkLabels,
    'ConfigMap and Secret references resolve': checkReferences(target === 'base' ? EXTERNAL_SECRETS : []),
  };
  if (target === 'ghz') {
    return {
      ...common,
      'everything is in the tickmesh namespace': checkNamespace(false),
      'jobs are bounded': checkJobs(false),
    };
  }
  return {
    ...common,
    'everything is in the tickmesh namespace': checkNamespace(true),
    'services run the designed commands, ports and probes': checkServiceProbes(SERVICES),
    'tickmesh pods have the full securityContext and /tmp emptyDir': checkTickmeshSecurity,
    'tickmesh Deployments have preStop sleep and a long enough grace period': checkGracefulShutdown,
    'HPAs: CPU, the designed targets, never the simulator': checkHpas(HPA_TARGETS, NO_HPA),
    'PodDisruptionBudgets cannot block a drain': checkPdbs,
    'scaled workloads spread softly over nodes': checkTopologySpread,
    'every Service selects pods that expose its ports': checkServiceSelectors,
    'gRPC Services are headless, the gateway is ClusterIP': checkGrpcServicesHeadless(GRPC_SERVICES, [
      'gateway',
    ]),
    'workloads see the designed environment; credentials only from Secrets': checkEnv(expectedEnv(target)),
    'metrics ports are annotated for Prometheus': checkPrometheusAnnotations(SERVICES),
    'jobs are bounded, migration runs latest, no load test deploys': checkJobs(true),
    'the simulator is a single Recreate replica': checkSimulator,
    'NATS cluster shape matches the stream replicas': checkNats(natsReplicas(target)),
    'Redis without persistence, MySQL on a PVC': checkDataStores,
  };
}
