// Everything the price-cache keeps in Redis, and the only code that talks to
// it. Keys (docs/price-cache.md "Redis keys"):
//   tm:epoch              current cache epoch; absent = Redis was emptied or replaced
//   tm:stream             identity (creation time) of the tick stream the state's seqs refer to
//   tm:rebuild-lock       holder of the rebuild (SET NX PX, renewed)
//   tm:symbols            set of symbols with a quote
//   tm:p:<n>              last stream seq applied in partition n
//   tm:q:<SYM>            quote hash: ss, st (seq, day, prices in minor units... packed)
//   tm:w:<SYM>            producer_id -> "<producer_seq>:<stream seq>" dedupe watermarks
//   tm:bars:1s:<SYM>      sorted set, score = bar start, member = "start:o:h:l:c:v:n"
//   tm:bars:1m:<SYM>      likewise for minute bars
// A message is applied with one pipelined read and one Lua call that writes
// only if the epoch (or rebuild lock) and every symbol's ss are unchanged.
import type { Redis } from 'ioredis';
import { newView, type SymbolView } from './reducer.js';
import {
  decodeBar,
  decodeQuoteState,
  decodeWatermarks,
  encodeBar,
  encodeWatermark,
  packQuoteState,
  INTERVAL_MS,
  type BarState,
  type Interval,
  type QuoteState,
} from './state.js';

export const KEY = {
  epoch: 'tm:epoch',
  stream: 'tm:stream',
  lock: 'tm:rebuild-lock',
  checkpointLock: 'tm:checkpoint-lock',
  symbols: 'tm:symbols',
  partition: (n: number) => `tm:p:${n}`,
  quote: (s: string) => `tm:q:${s}`,
  watermarks: (s: string) => `tm:w:${s}`,
  bars: (i: Interval, s: string) => `tm:bars:${i === 's' ? '1s' : '1m'}:${s}`,
};

// KEYS: epoch, lock, symbols, partition, then q/w/b1s/b1m per symbol.
// ARGV: mode ('a' checks the epoch, 'r' the rebuild lock), token, partition
// seq ('' = leave; '<seq>:<min>' also refuses when the stored position is
// below min), retention 1s, retention 1m, nsym, nsym expected ss
// ('*' = do not check), then per symbol: name, replace, ss, st ('' = leave
// the quote), nw, watermark pairs, nd, deleted producers, nb, 1s bar
// members, nm, 1m bar members (a member starts with its bar start).
// Returns {0} ok, {1} epoch missing, {2, epoch} epoch changed, {3} lock lost,
// {4, index, ss} conflict, {5, position} the partition went back in time.
const WRITE_LUA = `
local mode = ARGV[1]
local pseq, pmin = string.match(ARGV[3], '^(%d*):?(%d*)$')
if mode == 'a' then
  local e = redis.call('GET', KEYS[1])
  if not e then return {1} end
  if e ~= ARGV[2] then return {2, e} end
  -- The partition's position went back below what this writer already saw
  -- applied: Redis was restored from an older copy. Drop the epoch, so every
  -- replica stops writing and one rebuilds from checkpoints and the stream.
  if pmin ~= '' then
    local cur = tonumber(redis.call('GET', KEYS[4]) or '0')
    if cur < tonumber(pmin) then
      redis.call('DEL', KEYS[1])
      return {5, cur}
    end
  end
else
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {3} end
end
local nsym = tonumber(ARGV[6])
for j = 1, nsym do
  local exp = ARGV[6 + j]
  if exp ~= '*' then
    local cur = redis.call('HGET', KEYS[4 + 4 * (j - 1) + 1], 'ss') or '0'
    if cur ~= exp then return {4, j - 1, cur} end
  end
end
local keep = {tonumber(ARGV[4]), tonumber(ARGV[5])}
local i = 7 + nsym
for j = 1, nsym do
  local base = 4 + 4 * (j - 1)
  local qk, wk = KEYS[base + 1], KEYS[base + 2]
  local sym, replace = ARGV[i], ARGV[i + 1]
  if replace == '1' then redis.call('DEL', qk, wk, KEYS[base + 3], KEYS[base + 4]) end
  if ARGV[i + 2] ~= '' then
    redis.call('HSET', qk, 'ss', ARGV[i + 2], 'st', ARGV[i + 3])
    redis.call('SADD', KEYS[3], sym)
  end
  i = i + 4
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then redis.call('HSET', wk, unpack(ARGV, i, i + 2 * n - 1)); i = i + 2 * n end
  n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then redis.call('HDEL', wk, unpack(ARGV, i, i + n - 1)); i = i + n end
  for k = 1, 2 do
    local bk = KEYS[base + 2 + k]
    n = tonumber(ARGV[i]); i = i + 1
    for b = 1, n do
      local member = ARGV[i]
      local s = string.match(member, '^(%d+):')
      if replace ~= '1' then redis.call('ZREMRANGEBYSCORE', bk, s, s) end
      redis.call('ZADD', bk, s, member)
      i = i + 1
    end
    if n > 0 then redis.call('ZREMRANGEBYRANK', bk, 0, -(keep[k] + 1)) end
  end
end
if pseq ~= '' then
  local cur = tonumber(redis.call('GET', KEYS[4]) or '0')
  if tonumber(pseq) > cur then redis.call('SET', KEYS[4], pseq) end
end
return {0}
`;

// KEYS: lock; ARGV: token, ttl. Renews the lock only while we hold it.
const RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

// KEYS: lock, epoch, stream; ARGV: token, new epoch, stream identity ('' =
// leave). The epoch is the last thing a rebuild writes.
const FINISH_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3]) end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
`;

// KEYS: lock, epoch, stream, symbols; ARGV: token, new epoch, new stream
// identity, partitions. The stream was re-created: its seqs restart at 1, so
// every seq the state holds (each symbol's ss, the stream seq in each
// watermark, the partition positions) refers to a stream that is gone. They
// become 0 — "before anything of the new stream" — while the state itself
// (quotes, day, bars, the producer seqs in the watermarks) stays: a resend of
// a tick already applied is still dropped. One script, with the new epoch:
// no apply can land between the reset and the epoch.
const REBASE_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, sym in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local qk = 'tm:q:' .. sym
  if redis.call('HEXISTS', qk, 'ss') == 1 then redis.call('HSET', qk, 'ss', '0') end
  local wk = 'tm:w:' .. sym
  local w = redis.call('HGETALL', wk)
  for i = 1, #w, 2 do
    redis.call('HSET', wk, w[i], string.match(w[i + 1], '^[^:]*') .. ':0')
  end
end
for n = 0, tonumber(ARGV[4]) - 1 do redis.call('DEL', 'tm:p:' .. n) end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
`;

// KEYS: epoch; ARGV: epoch. Deletes it only if it is still that one.
const DROP_EPOCH_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

// KEYS: epoch, stream; ARGV: stream identity. State written before the
// identity was kept (or by a version that does not keep it) is taken as the
// current stream's.
const ADOPT_LUA = `
if redis.call('GET', KEYS[1]) and not redis.call('GET', KEYS[2]) then
  redis.call('SET', KEYS[2], ARGV[1])
  return 1
end
return 0
`;

// KEYS: lock, then the keys to delete; ARGV: token. The lock check and the
// delete are one script: a rebuilder that stalled past its TTL must not
// delete keys its successor has restored meanwhile.
const CLEAR_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('DEL', unpack(KEYS, 2))
`;

// KEYS: lock; ARGV: token.
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface RawCheckpointRead {
  epoch: string | null;
  /** The stream identity the state refers to (null: not known). */
  stream: string | null;
  q: Record<string, string>;
  w: Record<string, string>;
  /** Retained bars newer than the last sealed one, oldest first. */
  bars: Record<Interval, string[]>;
  oldestRetained: Record<Interval, number | undefined>;
}

export type WriteMode = { kind: 'apply'; epoch: string } | { kind: 'rebuild'; token: string };

export type WriteOutcome =
  | { ok: true }
  | { ok: false; reason: 'epoch_missing' }
  | { ok: false; reason: 'epoch_changed'; epoch: string }
  | { ok: false; reason: 'lock_lost' }
  | { ok: false; reason: 'rolled_back'; position: number }
  | { ok: false; reason: 'conflict'; symbol: string; ss: string };

export interface WriteItem {
  view: SymbolView;
  /** The ss the state had when read ('0' = none); '*' skips the check. */
  expectedSs: string;
  /** Replace everything of the symbol (restore from a checkpoint). */
  replace?: boolean;
}

type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

export class RedisStore {
  private readonly writeScript: ScriptFn;
  private readonly renewScript: ScriptFn;
  private readonly finishScript: ScriptFn;
  private readonly releaseScript: ScriptFn;
  private readonly clearScript: ScriptFn;
  private readonly rebaseScript: ScriptFn;
  private readonly adoptScript: ScriptFn;
  private readonly dropScript: ScriptFn;
  /** Bars read per interval for an apply: a superset of those the late bound lets change. */
  private readonly window: Record<Interval, number>;

  constructor(
    readonly redis: Redis,
    private readonly opts: { retention: Record<Interval, number>; lateTickBoundMs: number },
  ) {
    const r = redis as unknown as Record<string, ScriptFn | undefined>;
    if (!r.tmWrite) {
      // defineCommand uses EVALSHA and falls back to EVAL after a Redis restart.
      redis.defineCommand('tmWrite', { lua: WRITE_LUA });
      redis.defineCommand('tmRenew', { lua: RENEW_LUA, numberOfKeys: 1 });
      redis.defineCommand('tmFinish', { lua: FINISH_LUA, numberOfKeys: 3 });
      redis.defineCommand('tmRelease', { lua: RELEASE_LUA, numberOfKeys: 1 });
    }
    if (!r.tmClear) redis.defineCommand('tmClear', { lua: CLEAR_LUA });
    if (!r.tmRebase) {
      redis.defineCommand('tmRebase', { lua: REBASE_LUA, numberOfKeys: 4 });
      redis.defineCommand('tmAdopt', { lua: ADOPT_LUA, numberOfKeys: 2 });
      redis.defineCommand('tmDropEpoch', { lua: DROP_EPOCH_LUA, numberOfKeys: 1 });
    }
    this.writeScript = r.tmWrite!.bind(redis);
    this.renewScript = r.tmRenew!.bind(redis);
    this.finishScript = r.tmFinish!.bind(redis);
    this.releaseScript = r.tmRelease!.bind(redis);
    this.clearScript = r.tmClear!.bind(redis);
    this.rebaseScript = r.tmRebase!.bind(redis);
    this.adoptScript = r.tmAdopt!.bind(redis);
    this.dropScript = r.tmDropEpoch!.bind(redis);
    this.window = {
      s: Math.ceil(opts.lateTickBoundMs / INTERVAL_MS.s) + 2,
      m: Math.ceil(opts.lateTickBoundMs / INTERVAL_MS.m) + 2,
    };
  }

  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  async getEpoch(): Promise<string | null> {
    return this.redis.get(KEY.epoch);
  }

  /** One round trip: the epoch and, per symbol, quote, watermarks and the bars that can still change. */
  async readForApply(
    symbols: string[],
  ): Promise<{ epoch: string | null; views: Map<string, SymbolView>; readSs: Map<string, string> }> {
    const p = this.redis.pipeline().get(KEY.epoch);
    for (const s of symbols) {
      p.hgetall(KEY.quote(s))
        .hgetall(KEY.watermarks(s))
        .zrange(KEY.bars('s', s), String(-this.window.s), '-1')
        .zrange(KEY.bars('m', s), String(-this.window.m), '-1');
    }
    const res = unwrap(await p.exec());
    const views = new Map<string, SymbolView>();
    const readSs = new Map<string, string>();
    symbols.forEach((s, j) => {
      const base = 1 + j * 4;
      const state = decodeQuoteState(res[base] as Record<string, string>, s);
      views.set(
        s,
        newView(s, state, decodeWatermarks(res[base + 1] as Record<string, string>, s), {
          s: barMap(res[base + 2] as string[]),
          m: barMap(res[base + 3] as string[]),
        }),
      );
      readSs.set(s, state ? String(state.ss) : '0');
    });
    return { epoch: res[0] as string | null, views, readSs };
  }

  /** Writes the dirty parts of the views atomically, guarded (see WRITE_LUA). */
  async write(
    mode: WriteMode,
    items: WriteItem[],
    partition?: { n: number; seq: number; atLeast?: number },
  ): Promise<WriteOutcome> {
    const keys: string[] = [KEY.epoch, KEY.lock, KEY.symbols, KEY.partition(partition?.n ?? 0)];
    const args: Array<string | number> = [
      mode.kind === 'apply' ? 'a' : 'r',
      mode.kind === 'apply' ? mode.epoch : mode.token,
      partition ? `${partition.seq}${partition.atLeast === undefined ? '' : `:${partition.atLeast}`}` : '',
      this.opts.retention.s,
      this.opts.retention.m,
      items.length,
    ];
    for (const it of items) {
      const s = it.view.symbol;
      keys.push(KEY.quote(s), KEY.watermarks(s), KEY.bars('s', s), KEY.bars('m', s));
      args.push(it.expectedSs);
    }
    for (const it of items) encodeSegment(it, args);
    const res = (await this.writeScript(keys.length, ...keys, ...args)) as Array<number | string>;
    switch (Number(res[0])) {
      case 0:
        return { ok: true };
      case 1:
        return { ok: false, reason: 'epoch_missing' };
      case 2:
        return { ok: false, reason: 'epoch_changed', epoch: String(res[1]) };
      case 3:
        return { ok: false, reason: 'lock_lost' };
      case 5:
        return { ok: false, reason: 'rolled_back', position: Number(res[1]) };
      default:
        return {
          ok: false,
          reason: 'conflict',
          symbol: items[Number(res[1])]?.view.symbol ?? '?',
          ss: String(res[2]),
        };
    }
  }

  /**
   * What a checkpoint of one symbol needs, in one round trip: the epoch, the
   * quote hash and watermarks verbatim, per interval the bars newer than the
   * last sealed one (all of them when nothing is sealed) and the start of the
   * oldest bar still retained.
   */
  async readForCheckpoint(
    symbol: string,
    sealedThrough: Record<Interval, number | undefined>,
  ): Promise<RawCheckpointRead> {
    // MULTI, not a plain pipeline: an apply script could otherwise run between
    // the quote and the bars, and a record whose bars are newer than its ss
    // would count that tick twice when a rebuild replays the tail.
    const p = this.redis
      .multi()
      .get(KEY.epoch)
      .hgetall(KEY.quote(symbol))
      .hgetall(KEY.watermarks(symbol))
      .get(KEY.stream);
    for (const i of ['s', 'm'] as const) {
      const through = sealedThrough[i];
      p.zrangebyscore(KEY.bars(i, symbol), through === undefined ? '-inf' : `(${through}`, '+inf');
      p.zrange(KEY.bars(i, symbol), '0', '0', 'WITHSCORES');
    }
    const res = unwrap(await p.exec());
    // The score is the bar start: nothing to parse (a corrupt member must not fail the read).
    const oldest = (withScores: unknown) => {
      const score = (withScores as string[])[1];
      return score === undefined ? undefined : Number(score);
    };
    return {
      epoch: res[0] as string | null,
      stream: res[3] as string | null,
      q: res[1] as Record<string, string>,
      w: res[2] as Record<string, string>,
      bars: { s: res[4] as string[], m: res[6] as string[] },
      oldestRetained: { s: oldest(res[5]), m: oldest(res[7]) },
    };
  }

  /** Quote states of the symbols (absent ones are left out). */
  async readQuoteStates(symbols: string[]): Promise<Map<string, QuoteState>> {
    const out = new Map<string, QuoteState>();
    if (symbols.length === 0) return out;
    const p = this.redis.pipeline();
    for (const s of symbols) p.hgetall(KEY.quote(s));
    const res = unwrap(await p.exec());
    symbols.forEach((s, j) => {
      const state = decodeQuoteState(res[j] as Record<string, string>, s);
      if (state) out.set(s, state);
    });
    return out;
  }

  /** The ss of each symbol (0 when it has none): a cheap change check for checkpoints. */
  async readSs(symbols: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (symbols.length === 0) return out;
    const p = this.redis.pipeline();
    for (const s of symbols) p.hget(KEY.quote(s), 'ss');
    const res = unwrap(await p.exec());
    symbols.forEach((s, j) => out.set(s, Number(res[j] ?? 0) || 0));
    return out;
  }

  async symbols(): Promise<string[]> {
    return (await this.redis.smembers(KEY.symbols)).sort();
  }

  async partitionSeqs(partitions: number): Promise<Array<number | undefined>> {
    const keys = Array.from({ length: partitions }, (_, n) => KEY.partition(n));
    const values = await this.redis.mget(...keys);
    return values.map((v) => (v === null ? undefined : Number(v)));
  }

  /** Most recent `limit` bars with start in [from, to] (inclusive), oldest first. */
  async bars(
    symbol: string,
    interval: Interval,
    from: number | '-inf',
    to: number | '+inf',
    limit: number,
  ): Promise<BarState[]> {
    const members = await this.redis.zrevrangebyscore(
      KEY.bars(interval, symbol),
      to,
      from,
      'LIMIT',
      0,
      limit,
    );
    return members.map(decodeBar).reverse();
  }

  /**
   * Deletes every tm:* key but the rebuild lock, while we hold it: a rebuild
   * starts from nothing, so leftovers of a half-emptied Redis cannot survive.
   */
  async clear(token: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', 'tm:*', 'COUNT', 1000);
      cursor = next;
      const doomed = keys.filter((k) => k !== KEY.lock);
      if (doomed.length > 0) {
        const out = await this.clearScript(doomed.length + 1, KEY.lock, ...doomed, token);
        if (Number(out) < 0) throw new Error('rebuild lock lost');
      }
    } while (cursor !== '0');
  }

  async acquireLock(token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(KEY.lock, token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async renewLock(token: string, ttlMs: number): Promise<boolean> {
    return Number(await this.renewScript(KEY.lock, token, ttlMs)) === 1;
  }

  async releaseLock(token: string): Promise<void> {
    await this.releaseScript(KEY.lock, token);
  }

  /** Sets the new epoch (and the stream identity the state refers to) and frees the lock, only while we hold it. */
  async finishRebuild(token: string, epoch: string, stream?: string): Promise<boolean> {
    return Number(await this.finishScript(KEY.lock, KEY.epoch, KEY.stream, token, epoch, stream ?? '')) === 1;
  }

  /**
   * Drops the epoch if it is still `epoch` (Redis found behind the
   * checkpoints): every replica stops writing and one rebuilds.
   */
  async dropEpoch(epoch: string): Promise<boolean> {
    return Number(await this.dropScript(KEY.epoch, epoch)) === 1;
  }

  /** The identity of the tick stream the state refers to (null: not known). */
  async getStream(): Promise<string | null> {
    return this.redis.get(KEY.stream);
  }

  /** Records the stream identity for state that has an epoch but no identity; true when it did. */
  async adoptStream(stream: string): Promise<boolean> {
    return Number(await this.adoptScript(KEY.epoch, KEY.stream, stream)) === 1;
  }

  /** Moves the state onto a re-created stream under a new epoch (REBASE_LUA), while we hold the lock. */
  async rebase(token: string, epoch: string, stream: string, partitions: number): Promise<boolean> {
    return (
      Number(
        await this.rebaseScript(
          KEY.lock,
          KEY.epoch,
          KEY.stream,
          KEY.symbols,
          token,
          epoch,
          stream,
          partitions,
        ),
      ) === 1
    );
  }

  /** Extends a lease only while we hold it. */
  async renewLease(key: string, token: string, ttlMs: number): Promise<boolean> {
    return Number(await this.renewScript(key, token, ttlMs)) === 1;
  }

  /** A short exclusive lease (one checkpoint writer at a time). */
  async tryLease(key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async releaseLease(key: string, token: string): Promise<void> {
    await this.releaseScript(key, token);
  }
}

function encodeSegment(it: WriteItem, args: Array<string | number>): void {
  const v = it.view;
  args.push(v.symbol, it.replace ? '1' : '0');
  if (it.replace || v.dirty.state) {
    if (!v.state) throw new Error(`no state to write for ${v.symbol}`);
    args.push(String(v.state.ss), packQuoteState(v.state));
  } else {
    args.push('', '');
  }
  const wm = it.replace ? [...v.watermarks.keys()] : [...v.dirty.wmSet];
  args.push(wm.length);
  for (const producer of wm) args.push(producer, encodeWatermark(v.watermarks.get(producer)!));
  const deleted = it.replace ? [] : [...v.dirty.wmDel];
  args.push(deleted.length, ...deleted);
  for (const interval of ['s', 'm'] as const) {
    const starts = it.replace ? [...v.bars[interval].keys()] : [...v.dirty.bars[interval]];
    args.push(starts.length);
    for (const start of starts) args.push(encodeBar(v.bars[interval].get(start)!));
  }
}

function barMap(members: string[]): Map<number, BarState> {
  const m = new Map<number, BarState>();
  for (const member of members) {
    const b = decodeBar(member);
    m.set(b.start, b);
  }
  return m;
}

function unwrap(results: Array<[Error | null, unknown]> | null): unknown[] {
  if (!results) throw new Error('redis pipeline aborted');
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
