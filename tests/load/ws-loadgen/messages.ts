// Messages between the load-generator coordinator and its worker processes
// (child_process IPC, JSON).
import type { SeqCutoff, DeliverySummary } from '../lib/delivery.js';
import type { SymbolState } from './client-state.js';

export interface WorkerConfig {
  workerId: number;
  url: string;
  subprotocol: string;
  /** Global client indexes [from, to) of this worker. */
  from: number;
  to: number;
  maxPerIp: number;
  /** Symbols to subscribe, or ["*"]. */
  symbols: string[];
  /** New connections per second this worker opens (its share of the total). */
  connectRate: number;
  /** Most handshakes in progress at once. */
  connectConcurrency: number;
  handshakeTimeoutMs: number;
  /** Handshake attempts per client (a failed one is retried after a backoff). */
  connectAttempts: number;
  /** Subscribe only on the coordinator's `subscribe` (after every worker connected). */
  deferSubscribe: boolean;
  /** Sent as `{"op":"auth","token":...}` right after the welcome, when set. */
  authToken?: string;
}

export type ToWorker =
  | { type: 'start'; config: WorkerConfig }
  | { type: 'subscribe' }
  | { type: 'measure' }
  | { type: 'mark' }
  | { type: 'check-final'; expected: Record<string, SymbolState> }
  | { type: 'stop'; cutoffs: Record<string, SeqCutoff>; expectedFinal?: Record<string, SymbolState> };

export interface WorkerProgress {
  /** Longest event-loop stall since the previous report (ms). */
  loopDelayMaxMs: number;
  connected: number;
  open: number;
  subscribed: number;
  /** Failed handshake attempts so far. */
  failed: number;
  closed: number;
  frames: number;
  quotes: number;
}

export interface WorkerMark {
  /** Counters between measure and mark. */
  frames: number;
  quoteFrames: number;
  quotes: number;
  bytes: number;
  measuredMs: number;
  /** Highest seq per symbol (in its latest epoch) any client of the worker saw. */
  maxSeq: Record<string, SeqCutoff>;
}

export interface WorkerResult {
  workerId: number;
  pid: number;
  clients: number;
  connected: number;
  subscribed: number;
  /** Clients that never connected, after all their attempts. */
  failedToConnect: number;
  /** Handshake attempts that failed (retried ones included). */
  handshakeFailures: number;
  /** Clients the server closed (or lost) before the end. */
  closedEarly: number;
  openAtEnd: number;
  /** From the first connect attempt to the last successful open. */
  connectSpanMs: number;
  /** Handshake times, encoded HDR histogram (µs). */
  connectHistogram: string;
  /** Quote delay, encoded HDR histogram (µs). */
  delayHistogram: string;
  mark: WorkerMark;
  conflated: number;
  snapshots: number;
  heartbeats: number;
  resnapshots: number;
  notices: number;
  badFrames: number;
  protocolErrors: Record<string, number>;
  socketErrors: Record<string, number>;
  closeCodes: Record<string, number>;
  delivery: DeliverySummary;
  /** Clients whose final state differs from the expected one (when given). */
  finalStateMismatches: number;
  finalStateExamples: string[];
}

export type FromWorker =
  | { type: 'progress'; workerId: number; progress: WorkerProgress }
  | { type: 'connected'; workerId: number; progress: WorkerProgress }
  | { type: 'mark'; workerId: number; mark: WorkerMark }
  | { type: 'final'; workerId: number; matching: number; total: number }
  | { type: 'result'; workerId: number; result: WorkerResult }
  | { type: 'fatal'; workerId: number; error: string };
