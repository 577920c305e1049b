// Rendering the kustomizations with `kubectl kustomize` (kubectl ships kustomize),
// and finding optional tools. No cluster is needed for anything here.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Every kustomization the project ships, by the name tests report. */
export const TARGETS = {
  base: 'k8s/base',
  kind: 'k8s/overlays/kind',
  minikube: 'k8s/overlays/minikube',
  ghz: 'k8s/jobs/ghz',
} as const;
export type TargetName = keyof typeof TARGETS;

/** The deployable sets: base and the local overlays (ghz is applied on demand on top). */
export const DEPLOYABLE: readonly TargetName[] = ['base', 'kind', 'minikube'];

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A rendered object: fields beyond the type meta are read through the helpers in checks.ts. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** The path of an executable found on PATH or in the project's .tools/bin, or undefined. */
export function findTool(name: string): string | undefined {
  const dirs = [join(REPO_ROOT, '.tools', 'bin'), ...(process.env.PATH ?? '').split(delimiter)];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

let kubectlChecked: string | undefined | null = null;

/** kubectl with a working built-in kustomize, or undefined (tests then skip visibly). */
export function kubectl(): string | undefined {
  if (kubectlChecked !== null) return kubectlChecked;
  const path = findTool('kubectl');
  kubectlChecked = undefined;
  if (path) {
    const r = spawnSync(path, ['version', '--client'], { encoding: 'utf8' });
    if (r.status === 0) kubectlChecked = path;
  }
  return kubectlChecked;
}

export function parseObjects(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`YAML error: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isK8sObject(value))
      throw new Error(`not a Kubernetes object: ${JSON.stringify(value).slice(0, 200)}`);
    out.push(value);
  }
  return out;
}

export function isK8sObject(value: unknown): value is K8sObject {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const meta = v.metadata as Record<string, unknown> | undefined;
  return (
    typeof v.apiVersion === 'string' &&
    typeof v.kind === 'string' &&
    typeof meta === 'object' &&
    meta !== null &&
    typeof meta.name === 'string'
  );
}

const cache = new Map<string, K8sObject[]>();

/** Renders a kustomization directory (relative to the repo) into objects. */
export function render(dir: string): K8sObject[] {
  const hit = cache.get(dir);
  if (hit) return structuredClone(hit);
  const bin = kubectl();
  if (!bin) throw new Error('kubectl not found');
  const text = execFileSync(bin, ['kustomize', join(REPO_ROOT, dir)], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const objects = parseObjects(text);
  cache.set(dir, objects);
  return structuredClone(objects);
}

export function renderTarget(name: TargetName): K8sObject[] {
  return render(TARGETS[name]);
}

/** A deployable set together with the on-demand ghz Job (for checks that span both). */
export function renderWithGhz(name: TargetName): K8sObject[] {
  return [...renderTarget(name), ...renderTarget('ghz')];
}
