import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StreamConfig } from '@nats-io/jetstream';
import {
  desiredStreamConfig,
  partitionCountProblem,
  planStreamUpdate,
  TICKS_SUBJECTS,
} from '../src/ticks-stream.js';
import { PARTITIONS_METADATA_KEY } from '@tickmesh/kit';

const settings = {
  name: 'TICKS',
  replicas: 1,
  maxAgeMs: 86_400_000,
  maxBytes: 1 << 30,
  duplicateWindowMs: 120_000,
  maxMsgSize: 1 << 20,
};

describe('TICKS stream settings', () => {
  it('asks for file storage, limits retention, discard old and the configured limits in nanoseconds', () => {
    const d = desiredStreamConfig(settings);
    assert.deepEqual(d.subjects, [TICKS_SUBJECTS]);
    assert.equal(d.storage, 'file');
    assert.equal(d.retention, 'limits');
    assert.equal(d.discard, 'old');
    assert.equal(d.max_age, 86_400_000 * 1e6);
    assert.equal(d.duplicate_window, 120_000 * 1e6);
  });

  it('plans nothing for an identical stream', () => {
    const d = desiredStreamConfig(settings);
    assert.deepEqual(planStreamUpdate(d as StreamConfig, d), { update: undefined, warnings: [] });
  });

  it('updates only what differs, keeps foreign subjects, and leaves storage alone with a warning', () => {
    const d = desiredStreamConfig(settings);
    const existing = {
      ...d,
      subjects: ['other.>'],
      max_age: 5,
      duplicate_window: 7,
      storage: 'memory',
    } as unknown as StreamConfig;
    const plan = planStreamUpdate(existing, d);
    assert.deepEqual(plan.update, {
      subjects: ['other.>', TICKS_SUBJECTS],
      max_age: d.max_age,
      duplicate_window: d.duplicate_window,
    });
    assert.equal(plan.warnings.length, 1);
    assert.match(plan.warnings[0]!, /storage/);
  });
});

describe('the partition count in the stream metadata', () => {
  const withCount = { ...settings, partitions: 8 };

  it('is stored when the stream is created', () => {
    assert.deepEqual(desiredStreamConfig(withCount).metadata, { [PARTITIONS_METADATA_KEY]: '8' });
  });

  it('is added to a stream made before it was, keeping metadata others set', () => {
    const d = desiredStreamConfig(withCount);
    const existing = {
      ...desiredStreamConfig(settings),
      metadata: { owner: 'ops', '_nats.ver': '2.12.15' },
    } as unknown as StreamConfig;
    const plan = planStreamUpdate(existing, d);
    assert.deepEqual(plan.update, { metadata: { owner: 'ops', [PARTITIONS_METADATA_KEY]: '8' } });
    assert.equal(partitionCountProblem(existing, 8), undefined);
  });

  it('another count is refused in one line naming both values', () => {
    const existing = desiredStreamConfig({ ...settings, partitions: 4 }) as StreamConfig;
    const problem = partitionCountProblem(existing, 8);
    assert.ok(problem);
    assert.doesNotMatch(problem, /\n/);
    assert.match(problem, /TICK_PARTITIONS=8/);
    assert.match(problem, /partitioned 4 ways/);
    assert.equal(partitionCountProblem(existing, 4), undefined);
  });
});
