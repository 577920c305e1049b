// The configuration reference and the Kubernetes manifests agree with the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { projectPath } from '@tickmesh/kit';
import { CONFIG_CATALOG, renderConfigurationDoc } from './config-catalog.js';

test('docs/configuration.md is current (run `make docs`)', () => {
  assert.equal(readFileSync(projectPath('docs', 'configuration.md'), 'utf8'), renderConfigurationDoc());
});

test('every variable the Kubernetes manifests set is one the code reads', (t) => {
  let rendered: string;
  try {
    rendered = execFileSync('kubectl', ['kustomize', projectPath('k8s', 'base')], { encoding: 'utf8' });
  } catch {
    t.skip('kubectl is not installed: cannot render k8s/base');
    return;
  }
  const known = new Set(CONFIG_CATALOG.flatMap((c) => Object.keys(c.spec)));
  const docs = parseAllDocuments(rendered).map(
    (d) => d.toJS() as { kind: string; metadata: { name: string }; data?: Record<string, string> },
  );
  const unknown: string[] = [];
  for (const doc of docs) {
    if (doc.kind !== 'ConfigMap' || !doc.data) continue;
    // nats-config holds the NATS server's own config file, not env vars.
    if (!Object.keys(doc.data).every((k) => /^[A-Z][A-Z0-9_]*$/.test(k))) continue;
    for (const key of Object.keys(doc.data))
      if (!known.has(key)) unknown.push(`${doc.metadata.name}: ${key}`);
  }
  assert.deepEqual(unknown, [], 'variables set in ConfigMaps that no process reads');
});
