// Reading pod templates, containers and images out of rendered objects.
import type { IPodTemplateSpec, IContainer, IPodSpec } from 'kubernetes-models/v1';
import type { K8sObject } from './render.js';

const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

/** The pod template of a workload (CronJob included), or undefined. */
export function podTemplate(obj: K8sObject): IPodTemplateSpec | undefined {
  const spec = obj.spec as Record<string, unknown> | undefined;
  if (!spec) return undefined;
  if (TEMPLATE_KINDS.has(obj.kind)) return spec.template as IPodTemplateSpec | undefined;
  if (obj.kind === 'CronJob') {
    const job = spec.jobTemplate as { spec?: { template?: IPodTemplateSpec } } | undefined;
    return job?.spec?.template;
  }
  if (obj.kind === 'Pod') return { metadata: obj.metadata, spec: obj.spec as IPodSpec };
  return undefined;
}

export function workloadObjects(objects: K8sObject[]): K8sObject[] {
  return objects.filter((o) => podTemplate(o) !== undefined);
}

export function allContainers(spec: IPodSpec | undefined): IContainer[] {
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

/** `registry/repo:tag@digest` -> `registry/repo` */
export function imageName(image: string): string {
  const noDigest = image.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

export function imageTag(image: string): string | undefined {
  const noDigest = image.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(colon + 1) : undefined;
}

export const ref = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

/** Replicas a workload runs with: spec.replicas, else its HPA's minReplicas, else 1. */
export function effectiveReplicas(objects: K8sObject[], workload: K8sObject): number {
  const spec = workload.spec as { replicas?: number } | undefined;
  if (typeof spec?.replicas === 'number') return spec.replicas;
  const hpa = objects.find((o) => {
    if (o.kind !== 'HorizontalPodAutoscaler') return false;
    const t = (o.spec as { scaleTargetRef?: { kind?: string; name?: string } } | undefined)?.scaleTargetRef;
    return t?.kind === workload.kind && t?.name === workload.metadata.name;
  });
  const min = (hpa?.spec as { minReplicas?: number } | undefined)?.minReplicas;
  return typeof min === 'number' ? min : 1;
}
