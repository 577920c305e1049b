// Reading skaffold.yaml and locating its JSON schema.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './render.js';

export interface SkaffoldArtifact {
  image: string;
  context?: string;
  docker?: { dockerfile?: string; target?: string };
}
export interface SkaffoldProfile {
  name: string;
  activation?: Array<{ kubeContext?: string; env?: string; command?: string }>;
  manifests?: { kustomize?: { paths?: string[] } };
  build?: { artifacts?: SkaffoldArtifact[] };
}
export interface SkaffoldConfig {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string };
  build?: { artifacts?: SkaffoldArtifact[] };
  manifests?: { kustomize?: { paths?: string[] } };
  deploy?: { kubectl?: Record<string, unknown> };
  portForward?: Array<{
    resourceType: string;
    resourceName: string;
    namespace?: string;
    port: number | string;
    localPort?: number;
  }>;
  profiles?: SkaffoldProfile[];
}

export const SKAFFOLD_FILE = join(REPO_ROOT, 'skaffold.yaml');

/** Every document of skaffold.yaml (one per skaffold module). */
export function loadSkaffold(file = SKAFFOLD_FILE): SkaffoldConfig[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`skaffold.yaml: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as SkaffoldConfig | null;
    })
    .filter((d): d is SkaffoldConfig => d !== null);
}

/** The images skaffold builds (base and profiles). */
export function artifactImages(configs: SkaffoldConfig[]): string[] {
  const images = new Set<string>();
  for (const c of configs) {
    for (const a of c.build?.artifacts ?? []) images.add(a.image);
    for (const p of c.profiles ?? []) for (const a of p.build?.artifacts ?? []) images.add(a.image);
  }
  return [...images].sort();
}

/** skaffold's published JSON schema for skaffold/v4beta14, kept in the repository (tests/k8s/schemas). */
export const SKAFFOLD_SCHEMA_PATH = join(REPO_ROOT, 'tests', 'k8s', 'schemas', 'skaffold-v4beta14.json');

/** skaffold's own activation rule: exact match, else regex search; a leading ! negates. */
export function kubeContextMatches(pattern: string, context: string): boolean {
  if (pattern.startsWith('!')) return !kubeContextMatches(pattern.slice(1), context);
  if (pattern === context) return true;
  try {
    return new RegExp(pattern).test(context);
  } catch {
    return false;
  }
}
