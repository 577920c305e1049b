// The TICKS stream, created or updated idempotently when a ticker process
// starts: created when absent, updated when an updatable setting differs,
// never deleted or recreated (it is the source of truth the price-cache
// rebuilds from). The partition count is part of the stream: stored in its
// metadata when the stream is created (or by the first ticker that starts on
// a stream made before it was), and a ticker configured for another count
// refuses to start.
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
  type StreamUpdateConfig,
} from '@nats-io/jetstream';
import type { Logger } from '@tickmesh/kit';
import { ConfigError, PARTITIONS_METADATA_KEY, TICK_SUBJECT_PREFIX } from '@tickmesh/kit';

export const TICKS_SUBJECTS = `${TICK_SUBJECT_PREFIX}.>`;

/** TICK_PARTITIONS differs from the count the stream was made for: bad configuration. */
export class PartitionCountMismatchError extends ConfigError {}

export interface TicksStreamSettings {
  name: string;
  replicas: number;
  /** 0: no age limit. */
  maxAgeMs: number;
  /** -1: no size cap. */
  maxBytes: number;
  duplicateWindowMs: number;
  maxMsgSize: number;
  /** TICK_PARTITIONS, stored in the stream's metadata and checked against it (omitted: neither). */
  partitions?: number;
}

const NS_PER_MS = 1_000_000;

export function desiredStreamConfig(s: TicksStreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: s.name,
    subjects: [TICKS_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: s.maxAgeMs * NS_PER_MS,
    max_bytes: s.maxBytes,
    max_msgs: -1,
    max_msg_size: s.maxMsgSize,
    duplicate_window: s.duplicateWindowMs * NS_PER_MS,
    num_replicas: s.replicas,
    ...(s.partitions === undefined ? {} : { metadata: { [PARTITIONS_METADATA_KEY]: String(s.partitions) } }),
  };
}

/**
 * Why a stream cannot be used with this partition count, or undefined. A
 * stream without the key (made by an older ticker) is fine: it gets it.
 */
export function partitionCountProblem(existing: StreamConfig, partitions: number): string | undefined {
  const stored = existing.metadata?.[PARTITIONS_METADATA_KEY];
  if (stored === undefined || stored === String(partitions)) return undefined;
  return (
    `TICK_PARTITIONS=${partitions} but stream ${existing.name} is partitioned ${stored} ways ` +
    `(metadata ${PARTITIONS_METADATA_KEY}=${stored}); use ${stored} or change the count (docs/operations.md)`
  );
}

export interface StreamPlan {
  /** Settings to change (updatable ones only); undefined when nothing differs. */
  update: Partial<StreamUpdateConfig> | undefined;
  /** Differences that cannot be changed in place (left alone, logged). */
  warnings: string[];
}

/** Compares an existing stream's config with the wanted one. Pure, so it is tested without a server. */
export function planStreamUpdate(existing: StreamConfig, desired: Partial<StreamConfig>): StreamPlan {
  const update: Partial<StreamUpdateConfig> = {};
  const warnings: string[] = [];
  // Keep subjects someone else added; only make sure ours are there.
  const subjects = existing.subjects ?? [];
  const missing = (desired.subjects ?? []).filter((s) => !subjects.includes(s));
  if (missing.length > 0) update.subjects = [...subjects, ...missing];
  const updatable = [
    'max_age',
    'max_bytes',
    'max_msgs',
    'max_msg_size',
    'duplicate_window',
    'num_replicas',
    'discard',
  ] as const;
  for (const key of updatable) {
    if (desired[key] !== undefined && existing[key] !== desired[key]) {
      (update as Record<string, unknown>)[key] = desired[key];
    }
  }
  // Add our metadata keys, keep everyone else's (keys starting with _nats are the server's own).
  const wanted = Object.entries(desired.metadata ?? {});
  if (wanted.some(([k, v]) => existing.metadata?.[k] !== v)) {
    const kept = Object.entries(existing.metadata ?? {}).filter(([k]) => !k.startsWith('_nats'));
    (update as Record<string, unknown>).metadata = Object.fromEntries([...kept, ...wanted]);
  }
  for (const key of ['storage', 'retention'] as const) {
    if (desired[key] !== undefined && existing[key] !== desired[key]) {
      warnings.push(
        `${key} is ${String(existing[key])}, wanted ${String(desired[key])}: cannot change in place, left as is`,
      );
    }
  }
  return { update: Object.keys(update).length > 0 ? update : undefined, warnings };
}

export type EnsureOutcome = 'created' | 'updated' | 'unchanged';

/**
 * Creates the stream when absent, updates it when different, never deletes
 * it. Throws PartitionCountMismatchError when the stream was made for another
 * partition count.
 */
export async function ensureTicksStream(
  jsm: JetStreamManager,
  settings: TicksStreamSettings,
  logger?: Logger,
): Promise<EnsureOutcome> {
  const desired = desiredStreamConfig(settings);
  for (let attempt = 0; ; attempt++) {
    let existing: StreamConfig;
    try {
      existing = (await jsm.streams.info(settings.name)).config;
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      try {
        await jsm.streams.add(desired);
        logger?.info({ stream: settings.name, config: desired }, 'created the ticks stream');
        return 'created';
      } catch (addErr) {
        // Another ticker process created it between our info and add: read it again.
        if (attempt === 0 && isAlreadyInUse(addErr)) continue;
        throw addErr;
      }
    }
    if (settings.partitions !== undefined) {
      const problem = partitionCountProblem(existing, settings.partitions);
      if (problem) throw new PartitionCountMismatchError([problem]);
    }
    const plan = planStreamUpdate(existing, desired);
    for (const w of plan.warnings) logger?.warn({ stream: settings.name }, `ticks stream: ${w}`);
    if (!plan.update) {
      logger?.info({ stream: settings.name }, 'ticks stream present with the wanted settings');
      return 'unchanged';
    }
    await jsm.streams.update(settings.name, plan.update);
    logger?.info({ stream: settings.name, changed: plan.update }, 'updated the ticks stream');
    return 'updated';
  }
}

function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

function isAlreadyInUse(err: unknown): boolean {
  // 10058: stream name already in use with a different configuration.
  return err instanceof JetStreamApiError && err.code === 10058;
}
