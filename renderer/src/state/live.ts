/**
 * The live event store: a ring buffer (cap 50,000 by default) fed by api.onEvents, outside React. Batches coming in
 * are queued and applied once per animation frame (a timer takes over when frames stop, e.g. a hidden window), so a
 * stream of thousands of events a second costs one store update and one render per frame. Components read it with
 * useSyncExternalStore (useLiveVersion) and a FilteredView that scans only what arrived since it last looked.
 *
 * Every event gets a sequence number (its position in the stream since the store started); the ring holds
 * [start, end). An index by sessionId serves the session detail without a scan.
 */
import { useEffect, useSyncExternalStore } from 'react';
import type { ConsoleApi, EventBatch, EventGap } from '../../../shared/console-api.ts';
import type { RelayEvent } from '../../../shared/events.ts';
import type { Predicate } from './filter.ts';

export const DEFAULT_CAP = 50_000;
/** the live store keeps this many of a stream's gaps (the newest) */
export const MAX_GAPS = 10;
/** the live store keeps this many breaks of its stream (the newest) */
export const MAX_BREAKS = 5;

/** a time the console was not connected to the relay whose stream it holds (EventBatch.away) */
export type StreamBreak = NonNullable<EventBatch['away']>;

export interface FrameScheduler {
  request(fn: () => void): void;
}

/** requestAnimationFrame, with a timer fallback when frames stop (hidden window, background tab) */
export const frameScheduler: FrameScheduler = {
  request(fn) {
    let done = false;
    const run = () => {
      if (done) return;
      done = true;
      fn();
    };
    const raf = (globalThis as { requestAnimationFrame?: (cb: () => void) => number }).requestAnimationFrame;
    if (typeof raf === 'function') raf(run);
    setTimeout(run, 250);
  },
};

export class LiveStore {
  readonly cap: number;
  private readonly ring: (RelayEvent | undefined)[];
  /** sequence numbers: the ring holds [start, end) */
  private startSeq = 0;
  private endSeq = 0;
  private pending: RelayEvent[] = [];
  private scheduled = false;
  private version = 0;
  private readonly listeners = new Set<() => void>();
  private readonly sessions = new Map<string, RelayEvent[]>();
  /** events the relay dropped for this console (it could not keep up) */
  droppedByRelay = 0;
  /** events discarded here because the pending queue overflowed before a frame */
  droppedLocally = 0;
  received = 0;
  /** times the store started over at a batch the core marked reset (a relay's fresh history, or another relay) */
  streamResets = 0;
  /** bumps whenever the store is cleared: what a view holds from before (a selected event) belongs to the old stream */
  epoch = 0;
  /**
   * the last backlog the core replayed onto the stream held here after a reconnect: the events the relay logged while
   * the console was away (ms since the epoch). Null until one came; a backlog that starts a stream is not one.
   */
  lastCatchUp: { events: number; at: number } | null = null;
  /**
   * the stretches of the stream held here that a (re)connect's backlog left out (the relay sends at most its newest
   * `backlogMax`, 10,000, events since the console's last id), oldest first: the live view says so, and where they
   * are. They go with the stream (cleared with it); the newest MAX_GAPS are kept.
   */
  gaps: EventGap[] = [];
  /** the times the console was not connected, oldest first, each with the relay's restart if there was one (the newest MAX_BREAKS) */
  breaks: StreamBreak[] = [];
  private readonly rateWindow: { at: number; n: number }[] = [];

  constructor(
    cap = DEFAULT_CAP,
    private readonly scheduler: FrameScheduler = frameScheduler,
    private readonly now: () => number = () => performance.now(),
    /** the wall clock, for what is shown as a time of day */
    private readonly wallNow: () => number = () => Date.now(),
  ) {
    this.cap = cap;
    this.ring = new Array(cap);
  }

  // --- writing --------------------------------------------------------------------------------
  ingest(batch: EventBatch): void {
    const events = batch.events;
    // The core marks the first batch of another stream (a relay restarted with a fresh history, or another relay):
    // what we hold is then another stream's, and mixing the two would put old and new events with the same ids side
    // by side. Start over. Within one stream ids only grow, and a resync batch is the backlog since the core's last
    // id, so it never overlaps what we hold.
    if (batch.reset) {
      this.clear();
      this.streamResets++;
    }
    // a backlog onto what we hold (not the first of a stream: first connection, another relay, a fresh history) fills
    // the time the console was away; the view says so. An empty one is never sent: nothing was missed.
    if (batch.resync && !batch.reset && this.received > 0 && events.length > 0) {
      this.lastCatchUp = { events: events.length, at: this.wallNow() };
    }
    if (batch.gaps?.length) {
      this.gaps = [...this.gaps, ...batch.gaps].slice(-MAX_GAPS);
      // said even if the batch has no event to apply (it always has: a cut backlog holds the newest backlogMax)
      if (events.length === 0) this.notify();
    }
    if (batch.away && !batch.reset) {
      this.breaks = [...this.breaks, batch.away].slice(-MAX_BREAKS);
      // (a reconnect with nothing new sends an empty batch only for this)
      if (events.length === 0) this.notify();
    }
    if (batch.dropped) this.droppedByRelay += batch.dropped;
    if (events.length === 0 && !batch.dropped) return;
    for (const e of events) this.pending.push(e);
    this.received += events.length;
    const now = this.now();
    this.rateWindow.push({ at: now, n: events.length });
    // trimmed here too: rate() is only called while the live view is shown, and the window must not grow meanwhile
    this.trimRate(now);
    if (this.pending.length > this.cap) {
      const extra = this.pending.length - this.cap;
      this.pending.splice(0, extra);
      this.droppedLocally += extra;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.scheduler.request(() => this.flush());
  }

  /** Apply what is pending (normally once per frame). */
  flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0 && this.version > 0) {
      this.notify();
      return;
    }
    this.pending = [];
    for (const e of batch) {
      if (this.endSeq - this.startSeq === this.cap) this.evictOne();
      this.ring[this.endSeq % this.cap] = e;
      this.endSeq++;
      if (e.sessionId !== null) {
        let s = this.sessions.get(e.sessionId);
        if (!s) this.sessions.set(e.sessionId, (s = []));
        s.push(e);
      }
    }
    this.notify();
  }

  private evictOne(): void {
    const i = this.startSeq % this.cap;
    const e = this.ring[i];
    this.ring[i] = undefined;
    this.startSeq++;
    if (e && e.sessionId !== null) {
      const s = this.sessions.get(e.sessionId);
      if (s) {
        if (s[0] === e) s.shift();
        else {
          const k = s.indexOf(e);
          if (k >= 0) s.splice(k, 1);
        }
        if (s.length === 0) this.sessions.delete(e.sessionId);
      }
    }
  }

  private notify(): void {
    this.version++;
    for (const l of this.listeners) l();
  }

  /** Forget everything (at a batch the core marks reset: another relay, or its fresh history). */
  clear(): void {
    this.ring.fill(undefined);
    this.startSeq = this.endSeq;
    this.pending = [];
    this.sessions.clear();
    this.droppedByRelay = 0;
    this.droppedLocally = 0;
    this.received = 0;
    this.rateWindow.length = 0;
    this.lastCatchUp = null;
    this.gaps = [];
    this.breaks = [];
    this.epoch++;
    this.notify();
  }

  // --- reading ---------------------------------------------------------------------------------
  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };
  getVersion = (): number => this.version;

  get start(): number {
    return this.startSeq;
  }
  get end(): number {
    return this.endSeq;
  }
  get size(): number {
    return this.endSeq - this.startSeq;
  }
  /** the event with this sequence number, if still held */
  at(seq: number): RelayEvent | undefined {
    if (seq < this.startSeq || seq >= this.endSeq) return undefined;
    return this.ring[seq % this.cap];
  }
  /** the held events with sequence numbers below `end` (default: all), oldest first (a copy) */
  toArray(end = this.endSeq): RelayEvent[] {
    const stop = Math.min(end, this.endSeq);
    const out: RelayEvent[] = new Array(Math.max(0, stop - this.startSeq));
    for (let s = this.startSeq, i = 0; s < stop; s++, i++) out[i] = this.ring[s % this.cap]!;
    return out;
  }
  /** the held events of one SMTP session, oldest first */
  session(sessionId: string): RelayEvent[] {
    return this.sessions.get(sessionId)?.slice() ?? [];
  }
  private trimRate(now: number): void {
    while (this.rateWindow.length && this.rateWindow[0]!.at < now - 2000) this.rateWindow.shift();
  }
  /** events per second over the last two seconds */
  rate(): number {
    this.trimRate(this.now());
    let n = 0;
    for (const r of this.rateWindow) n += r.n;
    return Math.round(n / 2);
  }
}

/**
 * The events of the store that match a predicate, kept up to date incrementally: sync() scans only the sequence
 * numbers that arrived since the last call and drops the ones the ring evicted. Rows are read newest first.
 */
export class FilteredView {
  private seqs: number[] = [];
  private head = 0;
  private scanned: number;

  constructor(
    private readonly store: LiveStore,
    readonly predicate: Predicate | null,
  ) {
    this.scanned = store.start;
  }

  /** Catch up with the store; returns the number of rows. */
  sync(): number {
    const st = this.store;
    if (this.predicate === null) return st.size;
    const from = Math.max(this.scanned, st.start);
    for (let s = from; s < st.end; s++) {
      const e = st.at(s);
      if (e && this.predicate(e)) this.seqs.push(s);
    }
    this.scanned = st.end;
    while (this.head < this.seqs.length && this.seqs[this.head]! < st.start) this.head++;
    if (this.head > 4096 && this.head > this.seqs.length / 2) {
      this.seqs = this.seqs.slice(this.head);
      this.head = 0;
    }
    return this.seqs.length - this.head;
  }

  get length(): number {
    return this.predicate === null ? this.store.size : this.seqs.length - this.head;
  }

  /** sequence number of row i, 0 = newest */
  seqAt(i: number): number {
    if (this.predicate === null) return this.store.end - 1 - i;
    return this.seqs[this.seqs.length - 1 - i]!;
  }

  /** row i, 0 = newest */
  row(i: number): RelayEvent | undefined {
    return this.store.at(this.seqAt(i));
  }

  /** how many rows have a sequence number >= seq */
  countFrom(seq: number): number {
    if (this.predicate === null) return Math.max(0, this.store.end - Math.max(seq, this.store.start));
    let lo = this.head;
    let hi = this.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return this.seqs.length - lo;
  }
}

// --- the app's one store, fed by the bridge -----------------------------------------------------
let theStore: LiveStore | null = null;
export function liveStore(): LiveStore {
  if (!theStore) theStore = new LiveStore();
  return theStore;
}

/**
 * Feed the store from api.onEvents for the life of the app. A switch to another relay needs nothing here: the core
 * sends a batch marked reset at once (and at a relay's fresh history), and ingest starts over on it.
 */
export function useLiveFeed(api: ConsoleApi): void {
  useEffect(() => api.onEvents((b) => liveStore().ingest(b)), [api]);
}

/** Re-render on every store update (at most once per frame); returns the version. */
export function useLiveVersion(store: LiveStore = liveStore()): number {
  return useSyncExternalStore(store.subscribe, store.getVersion);
}
