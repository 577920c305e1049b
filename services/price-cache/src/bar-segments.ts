// Incremental checkpoints of bars. A bar whose start is below
// alignDown(maxEventTime - lateTickBound) can never change again (the reducer
// leaves bars alone for older ticks), so final bars are sealed, in groups of
// `segmentBars`, into immutable KV values written once. A symbol's checkpoint
// then carries only its quote, watermarks, the bars not sealed yet and the
// list of its segments: a round writes a few KB per changed symbol instead
// of every retained bar (docs/price-cache.md "Checkpoints"). This module is
// the decision alone (finality itself is reducer.ts's finalBefore): which
// bars to seal, which segments stay listed, which can go.

/** A sealed segment: the starts of its first and last bar (inclusive). */
export type SegmentRef = [from: number, last: number];

export interface SegmentPlan {
  /** New segments, to be written before the checkpoint that lists them. */
  seal: Array<{ ref: SegmentRef; members: string[] }>;
  /** Every segment the new checkpoint lists, oldest first. */
  keep: SegmentRef[];
  /** Listed before, none of their bars retained any more: purge once the new checkpoint is written. */
  drop: SegmentRef[];
  /** Bars the checkpoint carries itself, oldest first. */
  open: string[];
}

/** Start of a bar from its stored member ("start:o:h:l:c:v:n"). */
export function barStart(member: string): number {
  return Number(member.slice(0, member.indexOf(':')));
}

/**
 * @param sealed   segments the stored checkpoint lists, oldest first
 * @param unsealed retained bars newer than the last sealed one, oldest first
 * @param oldestRetained start of the oldest bar still retained (undefined: none)
 */
export function planSegments(opts: {
  sealed: readonly SegmentRef[];
  unsealed: readonly string[];
  oldestRetained: number | undefined;
  finalBefore: number;
  segmentBars: number;
}): SegmentPlan {
  const { sealed, unsealed, oldestRetained, segmentBars } = opts;
  let finalCount = 0;
  while (finalCount < unsealed.length && barStart(unsealed[finalCount]!) < opts.finalBefore) finalCount++;
  const seal: SegmentPlan['seal'] = [];
  let i = 0;
  for (; i + segmentBars <= finalCount; i += segmentBars) {
    const members = unsealed.slice(i, i + segmentBars);
    seal.push({ ref: [barStart(members[0]!), barStart(members[members.length - 1]!)], members });
  }
  const keep: SegmentRef[] = [];
  const drop: SegmentRef[] = [];
  for (const ref of sealed) {
    if (oldestRetained !== undefined && ref[1] >= oldestRetained) keep.push(ref);
    else drop.push(ref);
  }
  for (const s of seal) keep.push(s.ref);
  return { seal, keep, drop, open: unsealed.slice(i) };
}
