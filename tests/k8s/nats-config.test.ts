// Every NATS config the kustomizations render, checked by the pinned nats-server itself
// (`nats-server -t`): the schema checks cannot know what a server version refuses (for
// example a lame_duck_duration below 30 s), and a refused config crash-loops the pod.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, kubectl, render, type K8sObject } from './lib/render.js';

const NATS_SERVER = join(REPO_ROOT, '.tools', 'bin', 'nats-server');
const PINNED = /^NATS_SERVER_VERSION=(\S+)$/m.exec(
  readFileSync(join(REPO_ROOT, 'deploy', 'versions.env'), 'utf8'),
)?.[1];

/** base and every overlay directory, so a new overlay is checked without editing this file. */
const KUSTOMIZATIONS = [
  'k8s/base',
  ...readdirSync(join(REPO_ROOT, 'k8s', 'overlays')).map((d) => `k8s/overlays/${d}`),
];

/** The nats.conf of the ConfigMap the nats StatefulSet mounts. */
function renderedNatsConf(objects: K8sObject[]): string {
  const sts = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'nats') as
    | { spec?: { template?: { spec?: { volumes?: { name: string; configMap?: { name: string } }[] } } } }
    | undefined;
  assert.ok(sts, 'no StatefulSet nats');
  const cmName = sts.spec?.template?.spec?.volumes?.find((v) => v.configMap)?.configMap?.name;
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === cmName) as
    { data?: Record<string, string> } | undefined;
  const conf = cm?.data?.['nats.conf'];
  assert.ok(conf, `the ConfigMap ${cmName} mounted by StatefulSet nats has no nats.conf`);
  return conf;
}

/** `nats-server -t` on a config text: undefined when valid, else the server's complaint. */
export function natsConfigProblem(conf: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'tickmesh-nats-conf-'));
  try {
    const file = join(dir, 'nats.conf');
    writeFileSync(file, conf);
    // SERVER_NAME is what the pod's environment gives the $SERVER_NAME reference
    const r = spawnSync(NATS_SERVER, ['-t', '-c', file], {
      encoding: 'utf8',
      env: { ...process.env, SERVER_NAME: 'nats-0' },
    });
    return r.status === 0 ? undefined : `${r.stdout}${r.stderr}`.trim() || `exit ${r.status}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void describe('k8s: rendered NATS configs pass the pinned nats-server -t', () => {
  void it(`.tools/bin/nats-server is the pinned ${PINNED} (make tools)`, () => {
    const r = spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' });
    assert.equal(r.error, undefined, `${NATS_SERVER}: ${r.error?.message} (run make tools)`);
    assert.match(r.stdout, new RegExp(`v${PINNED?.replace(/^v/, '')}\\b`));
  });

  void it('the check refuses what the server refuses', () => {
    assert.match(natsConfigProblem('port: 4222\nlame_duck_duration: 10s\n') ?? '', /lame_duck_duration/);
    assert.equal(natsConfigProblem('port: 4222\nlame_duck_duration: 30s\n'), undefined);
  });

  for (const dir of KUSTOMIZATIONS) {
    void it(dir, { skip: kubectl() ? false : 'SKIPPED: kubectl not found, cannot render' }, () => {
      assert.equal(natsConfigProblem(renderedNatsConf(render(dir))), undefined);
    });
  }
});
