// k8s/overlays/local (the offline cluster of `make k8s-up`) is the kind overlay with
// exactly the differences docs/kubernetes.md lists: images built on the machine instead
// of pulled, and two price-cache replicas. Everything else the kind checks prove holds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, kubectl, render, type K8sObject } from './lib/render.js';
import { validateObjects } from './lib/schema.js';

const PINNED_NATS = /^NATS_SERVER_VERSION=v?(\S+)$/m.exec(
  readFileSync(join(REPO_ROOT, 'deploy', 'versions.env'), 'utf8'),
)?.[1];
const PINNED_GHZ = /^GHZ_VERSION=v?(\S+)$/m.exec(
  readFileSync(join(REPO_ROOT, 'deploy', 'versions.env'), 'utf8'),
)?.[1];

/** kind image -> local image; what deploy/k8s-local/images.sh builds under these names. */
const IMAGES: Record<string, string> = {
  tickmesh: 'tickmesh:local',
  [`nats:${PINNED_NATS}-alpine`]: `tickmesh.local/nats:${PINNED_NATS}`,
  'redis:7.4-alpine': 'tickmesh.local/redis:7',
  'mysql:8.4': 'tickmesh.local/mariadb:10.11',
};

const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

/** Every image field below a value, with its JSON path. */
function images(value: unknown, path = ''): [string, string][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => images(v, `${path}[${i}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === 'image' && typeof v === 'string'
      ? [[`${path}.${k}`, v] as [string, string]]
      : images(v, `${path}.${k}`),
  );
}

/** The local object turned back into what kind would have, by undoing the listed differences. */
function undoDifferences(o: K8sObject): unknown {
  const text = JSON.stringify(o, (k, v: unknown) => {
    if (k === 'image' && typeof v === 'string') {
      const kind = Object.entries(IMAGES).find(([, local]) => local === v)?.[0];
      return kind ?? v;
    }
    return v;
  });
  const copy = JSON.parse(text) as K8sObject & { spec?: { minReplicas?: number } };
  if (copy.kind === 'HorizontalPodAutoscaler' && copy.metadata.name === 'price-cache' && copy.spec)
    copy.spec.minReplicas = 1;
  return copy;
}

const skip = kubectl() ? false : 'SKIPPED: kubectl not found, cannot render';

void describe('k8s: the local overlay', { skip }, () => {
  void it('is valid against the Kubernetes schema', async () => {
    assert.deepEqual(await validateObjects(render('k8s/overlays/local')), []);
  });

  void it('runs only images built on the machine (the names images.sh builds)', () => {
    const used = render('k8s/overlays/local').flatMap((o) => images(o).map(([, img]) => img));
    assert.deepEqual([...new Set(used)].sort(), Object.values(IMAGES).sort());
    const ghz = render('k8s/overlays/local/ghz').flatMap((o) => images(o).map(([, img]) => img));
    assert.deepEqual(ghz, [`tickmesh.local/ghz:${PINNED_GHZ}`]);
  });

  void it('differs from the kind overlay only in images and the price-cache minimum', () => {
    const kind = new Map(render('k8s/overlays/kind').map((o) => [key(o), o]));
    const local = render('k8s/overlays/local');
    assert.deepEqual(local.map(key).sort(), [...kind.keys()].sort());
    for (const o of local) assert.deepEqual(undoDifferences(o), kind.get(key(o)), key(o));
    const hpa = local.find((o) => key(o) === 'HorizontalPodAutoscaler/price-cache') as
      { spec: { minReplicas: number } } | undefined;
    assert.equal(hpa?.spec.minReplicas, 2);
  });
});
