/**
 * Event history and config revisions on disk: DIR/history.sqlite (better-sqlite3, WAL).
 *
 * Events: the bus hands every event to record(), which only pushes it onto a bounded array; every flushMs (200 ms) a
 * timer hands the array, as one JSON string, to the history writer thread (history-writer.mjs), which inserts it in
 * one transaction on its own connection. The SMTP path never waits for the disk, and the thread that runs the SMTP
 * sessions does not pay for the inserts either (measured: about a fifth of its CPU per message). Every read first
 * waits until the writer has stored all it was handed, so reads see every recorded event. The management channel's
 * reads and the retention prune wait without blocking (written(): Atomics.waitAsync), so the SMTP sessions go on while
 * a slow disk holds the writer; flush() blocks, and is left to what must finish before it returns (close(), the
 * start-up's lastEventId(), load()) and to direct callers. If the writer thread stops or does not answer within
 * WRITER_WAIT_MS, its unfinished batches and all later ones are written on the main thread (logged once). A crash loses the history not yet stored (never mail): normally the last flush interval, at
 * most maxPending events if the writer had fallen behind the disk; a process that exits without close() does the same.
 * Rows are indexed by (ip, at), (at), (kind, at) and (session, at) (SQLite appends the rowid, the event id, to every
 * index), so a query by IP over millions of events is an index range scan. Retention: events older than
 * events.retentionDays are deleted in slices; the file is also kept under maxBytes by deleting the oldest events
 * (bounded disk).
 *
 * Config revisions: every config the relay ran with, with who changed it, when and how (see relay/manage/config-revisions.ts).
 *
 * History identity: a random id made once with the database (a `meta` row) and kept with it. Event ids only grow
 * within one history; a console that sees another historyId at login knows the ids it holds belong to another stream
 * (the relay restarted with a fresh history.sqlite) even when the new ids have already passed its last one.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { RelayEvent } from '../../shared/events.ts';
import { CLOSED, DONE, FAILED, STOPPED, WRITER_SLOTS, configureConnection, eventInserter } from './history-rows.mjs';

/** How long a read waits for the writer thread before the main thread takes its work over. */
const WRITER_WAIT_MS = 10_000;
/** Atomics.waitAsync (Node 16+; not in the ES2022 lib this project compiles against) */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number, timeout: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;
/** prepared statements kept for reuse (query() builds one SQL text per combination of filters; the oldest unused go) */
const STATEMENT_CACHE_MAX = 64;

const jsonCache = new WeakMap<RelayEvent, string>();
/** JSON of an event, computed once (history and every subscriber share it). */
export function eventJson(e: RelayEvent): string {
  let s = jsonCache.get(e);
  if (s === undefined) {
    s = JSON.stringify(e);
    jsonCache.set(e, s);
  }
  return s;
}

/**
 * The events of these rows, parsing only those the prefilter keeps.
 *
 * Why a RowTest may look at `json` as the event's JSON: every row is written with jsonOf(e) = eventJson(e) on this
 * thread, or JSON.stringify(e) on the writer thread (for a JSON.parse copy of the batch), and its `ip` column from the
 * same e.ip. JSON.stringify(JSON.parse(s)) === s for any s that JSON.stringify made (same keys in the same order, the
 * same shortest number forms, the same escapes), so eventJson(JSON.parse(row.json)) === row.json: a text test on the
 * stored string gives what the same test on eventJson of the parsed event gives (test/manage-scan-yield.test.ts checks it).
 */
function parseRows(rows: StoredRow[], rowTest: RowTest | null | undefined): RelayEvent[] {
  const out: RelayEvent[] = [];
  for (const r of rows) if (!rowTest || rowTest(r)) out.push(JSON.parse(r.json) as RelayEvent);
  return out;
}

export interface HistoryOptions {
  file: string;
  now?: () => number;
  /** read at each prune, so a config change applies */
  retentionDays?: () => number;
  /** the file is kept under this size by deleting the oldest events (default 2 GiB) */
  maxBytes?: number;
  /** write interval (default 200 ms) */
  flushMs?: number;
  /** events waiting for the disk beyond this are dropped (and counted) rather than eat memory (default 200,000) */
  maxPending?: number;
  /** prune interval (default 10 min) */
  pruneMs?: number;
  log?: (line: string) => void;
  /**
   * For tests: a SharedArrayBuffer of two Int32 slots. While slot 0 is not 0 the writer thread holds each batch before
   * writing it (as a slow disk would), with the batch's seq in slot 1; storing 0 in slot 0 and notifying it lets it go.
   */
  writerGate?: SharedArrayBuffer;
  /** For tests: how long a writer that does not answer is waited for before it is taken over (default 10 s). */
  writerWaitMs?: number;
}

export interface EventQuery {
  from?: number;
  to?: number;
  /** exact address (as events carry it) */
  ip?: string;
  kinds?: readonly string[];
  rejectionsOnly?: boolean;
  sessionId?: string;
  /** events after this id (asc) or before it (desc), in (at, id) order */
  cursor?: number;
  order?: 'asc' | 'desc';
  limit: number;
}

export interface RevisionRow {
  revision: number;
  at: number;
  by: string;
  source: string;
  remoteIp: string | null;
  config: string;
  changes: string;
}

/** A stored event before its JSON is parsed: what a scan can test cheaply (RowTest) to parse only the rows that may match. */
export interface StoredRow {
  id: number;
  /** the event's `ip`, as the event carries it (the column is written from it) */
  ip: string | null;
  /** the event's JSON, exactly eventJson(JSON.parse(json)) (see parseRows) */
  json: string;
}

/**
 * A prefilter on stored rows: false means the parsed event cannot match, so it is not parsed. A RowTest must never
 * say false for a row whose event the caller's own filter would keep (the caller still applies that filter).
 */
export type RowTest = (row: StoredRow) => boolean;

/** How a scan reads: a prefilter, and whether to skip waiting for the writer (a scan waits once, at its first page). */
export interface ScanOptions {
  rowTest?: RowTest | null;
  /** the caller already waited (flush() or written()) for this scan: what it reads was recorded before that */
  noFlush?: boolean;
}

/** rows one prune step deletes at most (about 25 ms of the main thread on a 2-core VM) */
const PRUNE_SLICE = 5_000;

/**
 * What the retention prune has deleted since the history was opened: how many delete steps it ran (a prune deletes in
 * slices, with turns of the event loop between them when its timer runs it), and the highest id
 * and the highest `at` any of them deleted (every deleted row has id <= maxId and at <= maxAt). A scan that reads in
 * pages across turns of the event loop takes `prunes` when it starts and, when it has changed, knows rows may have
 * gone between its pages, and which: none above maxId, none later than maxAt.
 */
export interface PruneMark {
  prunes: number;
  maxId: number;
  maxAt: number;
}

export class EventHistory {
  readonly file: string;
  /** random, made with the database and stable across restarts on the same file (see the file comment) */
  readonly historyId: string;
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly retentionDays: () => number;
  private readonly maxBytes: number;
  private readonly maxPending: number;
  private readonly log: (line: string) => void;
  private readonly writerGate: SharedArrayBuffer | undefined;
  private readonly writerWaitMs: number;
  /** a prune from the timer is under way (it may wait for the writer) */
  private pruning = false;
  private pending: RelayEvent[] = [];
  /** the writer thread, started at the first batch; null before, and for good once the main thread took over */
  private writer: Worker | null = null;
  /** the writer stopped or failed to answer: batches are written on the main thread */
  private writerGone = false;
  private writerExited = false;
  /** shared with the writer: DONE, FAILED, CLOSED, STOPPED (history-rows.mjs) */
  private readonly shared = new Int32Array(new SharedArrayBuffer(WRITER_SLOTS * 4));
  /** batches handed to the writer so far (each one's seq) */
  private posted = 0;
  /** batches handed over and not yet done, kept to write them here should the writer stop */
  private inFlight: { seq: number; events: RelayEvent[] }[] = [];
  private inFlightEvents = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private closed = false;
  /** events dropped here because the disk fell behind, or because the main thread could not store them */
  private dropped = 0;
  private rowCount: number;
  /** FAILED when rowCount was last counted in the database (those failures are not in it) */
  private failedAtCount = 0;
  /** at least the highest id stored (deletes never lower it): a batch of rising ids above it adds one row per event */
  private topId = 0;
  /** writes the events; returns how many rows the table gained (a replaced id is not a new row) */
  private readonly insertMany: (events: RelayEvent[]) => number;
  /** prepared statements by SQL text, least recently used first (bounded by STATEMENT_CACHE_MAX) */
  private readonly statements = new Map<string, Database.Statement>();
  /** what prune() has deleted so far (see `pruned`) */
  private pruneMark: PruneMark = { prunes: 0, maxId: 0, maxAt: Number.NEGATIVE_INFINITY };

  private constructor(opts: HistoryOptions) {
    this.file = opts.file;
    this.now = opts.now ?? Date.now;
    this.retentionDays = opts.retentionDays ?? (() => 7);
    this.maxBytes = opts.maxBytes ?? 2 * 1024 ** 3;
    this.maxPending = opts.maxPending ?? 200_000;
    this.log = opts.log ?? ((line) => console.error(line));
    this.writerGate = opts.writerGate;
    this.writerWaitMs = opts.writerWaitMs ?? WRITER_WAIT_MS;
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    // readable by the relay's user only, as config.json is: it holds every client address and the config's revisions
    // (SQLite makes its -wal and -shm files with the database's mode); an older relay made it 0644
    fs.closeSync(fs.openSync(this.file, 'a', 0o600));
    for (const f of [this.file, `${this.file}-wal`, `${this.file}-shm`]) {
      try {
        fs.chmodSync(f, 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.db = new Database(this.file);
    configureConnection(this.db);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ip TEXT,
        session TEXT,
        json TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS events_ip ON events(ip, at);
      CREATE INDEX IF NOT EXISTS events_at ON events(at);
      CREATE INDEX IF NOT EXISTS events_kind ON events(kind, at);
      CREATE INDEX IF NOT EXISTS events_session ON events(session, at);
      CREATE TABLE IF NOT EXISTS config_revisions (
        revision INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        by TEXT NOT NULL,
        source TEXT NOT NULL,
        remote_ip TEXT,
        config TEXT NOT NULL,
        changes TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
    `);
    // made once with the database: OR IGNORE keeps the id an existing file already has
    this.db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('history_id', ?)").run(randomUUID());
    this.historyId = this.db.prepare("SELECT value FROM meta WHERE key = 'history_id'").pluck().get() as string;
    const insertRows = eventInserter(this.db);
    // INSERT OR REPLACE reports one change per row written, replaced or not (SQLite does not count the delete of the
    // replaced row), so `changes` cannot tell a new row from a replaced one. The rows in the batch's id span before
    // and after the insert can: a REPLACE only touches rows with one of the batch's ids, all inside the span. A flush
    // from the bus (ids rising, all above every stored one) cannot replace a row, so it skips both counts.
    const countSpan = this.db.prepare('SELECT count(*) AS n FROM events WHERE id >= ? AND id <= ?').pluck();
    this.insertMany = this.db.transaction((events: RelayEvent[]): number => {
      if (events.length === 0) return 0;
      let lo = events[0]!.id;
      let hi = lo;
      let rising = lo > this.topId;
      for (let n = 1; n < events.length; n++) {
        const id = events[n]!.id;
        if (id <= events[n - 1]!.id) rising = false;
        if (id < lo) lo = id;
        else if (id > hi) hi = id;
      }
      const before = rising ? 0 : (countSpan.get(lo, hi) as number);
      insertRows(events, eventJson);
      if (hi > this.topId) this.topId = hi;
      return rising ? events.length : (countSpan.get(lo, hi) as number) - before;
    });
    this.rowCount = (this.db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
    this.topId = (this.db.prepare('SELECT max(id) FROM events').pluck().get() as number | null) ?? 0;
    this.flushTimer = setInterval(() => this.handOff(), opts.flushMs ?? 200);
    this.flushTimer.unref();
    this.pruneTimer = setInterval(() => void this.pruneSoon(), opts.pruneMs ?? 10 * 60_000);
    this.pruneTimer.unref();
  }

  static open(opts: HistoryOptions): EventHistory {
    const h = new EventHistory(opts);
    h.prune();
    return h;
  }

  /** The prepared statement for this SQL text, from the cache when it was prepared before (LRU, bounded). */
  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (s !== undefined) {
      // most recently used goes last, so the first key is the one to evict
      this.statements.delete(sql);
    } else {
      s = this.db.prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_MAX) this.statements.delete(this.statements.keys().next().value!);
    }
    this.statements.set(sql, s);
    return s;
  }

  /** Prepared statements held for reuse (at most STATEMENT_CACHE_MAX). */
  get cachedStatements(): number {
    return this.statements.size;
  }

  /** Listen to a bus: every event is recorded. */
  attach(bus: { subscribe(l: (e: RelayEvent) => void): () => void }): void {
    this.unsubscribe = bus.subscribe((e) => this.record(e));
  }

  /** Cheap: pushes onto the pending array (bounded, with what the writer has not stored yet). */
  record(e: RelayEvent): void {
    if (this.closed) return;
    if (this.pending.length + this.inFlightEvents >= this.maxPending) {
      // inFlightEvents is settled only at a hand-off: batches the writer has finished since then no longer count
      if (this.inFlightEvents > 0) this.settle(Atomics.load(this.shared, DONE));
      if (this.pending.length + this.inFlightEvents >= this.maxPending) {
        this.dropped++;
        return;
      }
    }
    this.pending.push(e);
  }

  /** Events that were recorded and will never be stored: the disk fell behind (maxPending), or an insert failed. */
  get droppedEvents(): number {
    return this.dropped + Atomics.load(this.shared, FAILED);
  }

  /**
   * Hands the pending events on without waiting: to the writer thread when their ids rise above every stored one (the
   * bus's batches: each adds one row per event, so rowCount is exact at once), else, or when the writer is gone, into
   * the database from this thread, after the writer's batches.
   */
  private handOff(): void {
    if (this.pending.length === 0 || this.closed) return;
    this.settle(Atomics.load(this.shared, DONE));
    if (this.writerStopped() && !this.writerGone) this.takeOver('stopped');
    const batch = this.pending;
    this.pending = [];
    if (!this.writerGone && this.rising(batch) && this.startWriter()) {
      const seq = ++this.posted;
      this.writer!.postMessage({ seq, count: batch.length, json: JSON.stringify(batch) });
      this.inFlight.push({ seq, events: batch });
      this.inFlightEvents += batch.length;
      this.rowCount += batch.length;
      this.topId = batch[batch.length - 1]!.id;
      return;
    }
    this.waitForWriter();
    this.writeHere(batch);
  }

  private rising(batch: RelayEvent[]): boolean {
    let last = this.topId;
    for (const e of batch) {
      if (!(e.id > last)) return false;
      last = e.id;
    }
    return true;
  }

  /** false when the batch could not be stored (then counted as dropped and logged) */
  private writeHere(batch: RelayEvent[]): boolean {
    try {
      this.rowCount += this.insertMany(batch);
      return true;
    } catch (err) {
      this.dropped += batch.length;
      this.log(`history: could not store ${batch.length} events in ${this.file}: ${(err as Error).message}`);
      return false;
    }
  }

  private startWriter(): boolean {
    if (this.writer) return true;
    try {
      const w = new Worker(new URL('./history-writer.mjs', import.meta.url), { workerData: { file: this.file, state: this.shared.buffer, gate: this.writerGate } });
      w.on('message', (m: { failed?: number; message?: string }) => {
        if (m.failed) this.log(`history: could not store ${m.failed} events in ${this.file}: ${m.message}`);
      });
      w.on('error', (err) => this.log(`history: the writer thread failed: ${err.message}`));
      w.on('exit', () => {
        if (this.writer === w) this.writerExited = true;
      });
      // an idle history must not keep a process alive; close() stops the writer in order
      w.unref();
      this.writer = w;
      return true;
    } catch (err) {
      this.takeOver(`could not start (${(err as Error).message})`);
      return false;
    }
  }

  /**
   * The writer thread has ended (or is ending). STOPPED, which it sets itself, is seen while this thread blocks;
   * the 'exit' event covers a writer that ended without running its exit handler (terminate()).
   */
  private writerStopped(): boolean {
    return this.writerExited || Atomics.load(this.shared, STOPPED) !== 0;
  }

  /** Forget the batches the writer has finished (stored, or counted in FAILED). */
  private settle(done: number): void {
    let n = 0;
    while (n < this.inFlight.length && this.inFlight[n]!.seq <= done) this.inFlightEvents -= this.inFlight[n++]!.events.length;
    if (n > 0) this.inFlight = this.inFlight.slice(n);
  }

  /** Blocks until the writer has finished every batch handed to it (or takes its work over). */
  private waitForWriter(): void {
    if (this.inFlight.length === 0) return;
    const deadline = Date.now() + this.writerWaitMs;
    let done: number;
    while ((done = Atomics.load(this.shared, DONE)) < this.posted) {
      const left = deadline - Date.now();
      if (left <= 0 || this.writerStopped()) {
        this.takeOver(left <= 0 ? `did not answer within ${this.writerWaitMs / 1000} s` : 'stopped');
        return;
      }
      Atomics.wait(this.shared, DONE, done, Math.min(left, 50));
    }
    this.settle(done);
  }

  /**
   * The writer is gone (or stuck): from now on batches are written on this thread, starting with those it did not
   * finish. INSERT OR REPLACE makes a batch it stored after all harmless; rowCount counted them when they were handed over.
   */
  private takeOver(why: string): void {
    if (this.writerGone) return;
    this.writerGone = true;
    this.log(`history: the writer thread ${why}; events are written on the relay's main thread from now on`);
    const w = this.writer;
    this.writer = null;
    if (w) void w.terminate();
    this.settle(Atomics.load(this.shared, DONE));
    const left = this.inFlight;
    this.inFlight = [];
    this.inFlightEvents = 0;
    for (const b of left) {
      const rows = this.rowCount;
      // already counted when handed over: only a batch this thread cannot store either comes off again
      this.rowCount = this.writeHere(b.events) ? rows : rows - b.events.length;
    }
  }

  /**
   * Everything recorded so far is in the database when this returns: pending events are handed on and the writer's
   * batches waited for, blocking this thread (up to WRITER_WAIT_MS, then the takeover). Reads call it first unless
   * told the caller waited already (ScanOptions.noFlush); the management channel waits with written() instead.
   */
  flush(): void {
    this.handOff();
    this.waitForWriter();
  }

  /**
   * flush() without blocking: resolves once every event recorded before the call is in the database. Pending events
   * are handed on at once; the writer's batches are awaited with Atomics.waitAsync, so the event loop (the SMTP
   * sessions) keeps running meanwhile. A writer that stops, or does not answer within WRITER_WAIT_MS, is taken over
   * as flush() does. Batches handed over after the call (events recorded since) are not waited for. A read that
   * follows it in the same turn of the event loop passes noFlush.
   */
  async written(): Promise<void> {
    this.handOff();
    const target = this.posted;
    const deadline = Date.now() + this.writerWaitMs;
    for (;;) {
      // gone: takeOver() wrote every unfinished batch here; closed: close() flushed
      if (this.writerGone || this.closed) return;
      const done = Atomics.load(this.shared, DONE);
      if (done >= target) {
        this.settle(done);
        return;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.writerStopped()) {
        this.takeOver(left <= 0 ? `did not answer within ${this.writerWaitMs / 1000} s` : 'stopped');
        return;
      }
      // woken by the writer's notify after each batch (and when it stops); the timeout re-checks a terminated writer
      const w = waitAsync(this.shared, DONE, done, Math.min(left, 50));
      if (w.async) await w.value;
    }
  }

  /** For tests: end the writer thread as a crash would; the next batch or read finds it gone. */
  async killWriter(): Promise<void> {
    await this.writer?.terminate();
  }

  /** Bulk load (bench and tests): insert events directly, in transactions of 50,000. */
  load(events: Iterable<RelayEvent>): void {
    this.flush();
    let batch: RelayEvent[] = [];
    for (const e of events) {
      batch.push(e);
      if (batch.length >= 50_000) {
        this.rowCount += this.insertMany(batch);
        batch = [];
      }
    }
    if (batch.length) this.rowCount += this.insertMany(batch);
  }

  /** The highest event id stored (0 when none): the bus continues after it, so ids stay monotonic across restarts. */
  lastEventId(): number {
    this.flush();
    return (this.stmt('SELECT max(id) AS id FROM events').get() as { id: number | null }).id ?? 0;
  }

  /**
   * Rows in the events table, pending events included. Exact without waiting for the writer: the bus's batches (ids
   * rising above every stored one, one new row per event) are counted when handed over, less what the writer could
   * not store; any other batch (an id already stored or pending twice replaces a row rather than adding one) is
   * written here and counted by insertMany.
   */
  get storedEvents(): number {
    this.handOff();
    return this.rows();
  }

  private rows(): number {
    return this.rowCount - (Atomics.load(this.shared, FAILED) - this.failedAtCount);
  }

  oldestAt(): number | null {
    return (this.stmt('SELECT min(at) AS at FROM events').get() as { at: number | null }).at;
  }

  bytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const size = this.db.pragma('page_size', { simple: true }) as number;
    let wal = 0;
    try {
      wal = fs.statSync(this.file + '-wal').size;
    } catch {
      // no WAL file right now
    }
    return pages * size + wal;
  }

  /** Bytes of the pages holding data (free pages, which SQLite reuses, not counted). */
  private liveBytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    const size = this.db.pragma('page_size', { simple: true }) as number;
    return (pages - free) * size;
  }

  /**
   * Events in (at, id) order. Filters on ip, kinds, session and time use the indexes; `more` says whether another
   * page follows (pass the last event's id as `cursor`).
   */
  query(q: EventQuery, opts: ScanOptions = {}): { events: RelayEvent[]; more: boolean; lastRowId: number | null } {
    if (!opts.noFlush) this.flush();
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.ip !== undefined) {
      where.push('ip = ?');
      args.push(q.ip);
    }
    if (q.sessionId !== undefined) {
      where.push('session = ?');
      args.push(q.sessionId);
    }
    if (q.from !== undefined) {
      where.push('at >= ?');
      args.push(q.from);
    }
    if (q.to !== undefined) {
      where.push('at < ?');
      args.push(q.to);
    }
    const kinds = q.rejectionsOnly ? ['rejected'] : q.kinds && [...new Set(q.kinds)];
    if (kinds?.length === 0) return { events: [], more: false, lastRowId: null };
    const desc = (q.order ?? 'asc') === 'desc';
    if (q.cursor !== undefined) {
      const row = this.stmt('SELECT at FROM events WHERE id = ?').get(q.cursor) as { at: number } | undefined;
      if (row) {
        // the bound on `at` alone lets SQLite start the index scan at the cursor: with only the OR it reads every
        // index entry before the cursor again on each page (a paged scan would cost more page after page)
        where.push(desc ? 'at <= ? AND (at < ? OR (at = ? AND id < ?))' : 'at >= ? AND (at > ? OR (at = ? AND id > ?))');
        args.push(row.at, row.at, row.at, q.cursor);
      } else {
        where.push(desc ? 'id < ?' : 'id > ?');
        args.push(q.cursor);
      }
    }
    const dir = desc ? 'DESC' : 'ASC';
    const order = `ORDER BY at ${dir}, id ${dir} LIMIT ?`;
    let sql: string;
    let params = args;
    if (kinds !== undefined && kinds.length > 1 && q.ip === undefined && q.sessionId === undefined) {
      // Two kinds or more, and no address or session (whose indexes serve any kinds in (at, id) order): one walk of
      // the (kind, at) index per kind, each from the cursor in (at, id) order, merged (MERGE (UNION ALL), no sort).
      // The merge pulls rows from its arms as it goes, so the LIMIT ends every walk: a page reads its rows and one
      // more per kind. `kind IN (...)` took that index too, but read every row of those kinds from the cursor to the
      // end of the range and sorted them (TEMP B-TREE), on every page; the (at) index instead would step over the
      // rows of every other kind, all of them for kinds that are rare.
      const rest = where.length ? ` AND ${where.join(' AND ')}` : '';
      sql = kinds.map(() => `SELECT id, ip, json, at FROM events WHERE kind = ?${rest}`).join(' UNION ALL ') + ` ${order}`;
      params = kinds.flatMap((k) => [k, ...args]);
    } else {
      if (kinds !== undefined) {
        where.push(`kind IN (${kinds.map(() => '?').join(', ')})`);
        args.push(...kinds);
      }
      sql = `SELECT id, ip, json FROM events ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ${order}`;
    }
    const rows = this.stmt(sql).all(...params, q.limit + 1) as StoredRow[];
    const more = rows.length > q.limit;
    if (more) rows.pop();
    return { events: parseRows(rows, opts.rowTest), more, lastRowId: rows.length ? rows[rows.length - 1]!.id : null };
  }

  /** Events with sinceId < id <= untilId in id order, at most limit (the subscription backlog older than the bus ring). */
  range(sinceId: number, untilId: number, limit: number): RelayEvent[] {
    this.flush();
    const rows = this.stmt('SELECT json FROM events WHERE id > ? AND id <= ? ORDER BY id LIMIT ?').all(sinceId, untilId, limit) as { json: string }[];
    return rows.map((r) => JSON.parse(r.json) as RelayEvent);
  }

  /**
   * Events with sinceId < id <= untilId, newest first, at most limit: the subscription backlog older than the bus
   * ring, read back from now. It walks the primary key (the rowid, the event id) down from untilId and uses no other
   * index, so a call reads at most the rows of (sinceId, untilId]: callers keep that span bounded (a page of ids),
   * not only `limit`, since a narrow `where` may match few of them. `where.kinds` and `where.ip` are tested on the rows
   * and `where.rowTest` on each row read, before any JSON is parsed (prefilters: the caller still applies its own
   * filter). `limit` counts the rows read, whether the prefilter kept them or not.
   */
  rangeDesc(sinceId: number, untilId: number, limit: number, where: { kinds?: readonly string[] | null; ip?: string | null } & ScanOptions = {}): RelayEvent[] {
    if (!where.noFlush) this.flush();
    const cond = ['id > ?', 'id <= ?'];
    const args: (string | number)[] = [sinceId, untilId];
    if (where.kinds) {
      if (where.kinds.length === 0) return [];
      cond.push(`kind IN (${where.kinds.map(() => '?').join(', ')})`);
      args.push(...where.kinds);
    }
    if (where.ip) {
      cond.push('ip = ?');
      args.push(where.ip);
    }
    // NOT INDEXED: the rowid range, never the (kind, at) or (ip, at) index (which would read every row of that kind
    // or address in the whole history and sort them)
    const sql = `SELECT id, ip, json FROM events NOT INDEXED WHERE ${cond.join(' AND ')} ORDER BY id DESC LIMIT ?`;
    const rows = this.stmt(sql).all(...args, limit) as StoredRow[];
    return parseRows(rows, where.rowTest);
  }

  /** The lowest stored event id, or null when none is stored. */
  oldestId(opts: ScanOptions = {}): number | null {
    if (!opts.noFlush) this.flush();
    return (this.stmt('SELECT min(id) AS id FROM events').get() as { id: number | null }).id;
  }

  /**
   * One page of events in [from, to) after the keyset (at, id), in (at, id) order: the simulation reads in pages.
   * Each page walks the (at) index (INDEXED BY: the (kind, at) index the planner would take for `kind IN` reads every
   * row of those kinds from the lower bound to `to` and sorts them, for every page) from the cursor, its `at` bounded
   * on its own beside the (at, id) condition (as in query()), and stops after `limit` rows: a page costs the same
   * early or late in a long replay.
   */
  page(from: number, to: number, after: { at: number; id: number } | null, kinds: readonly string[], limit: number, opts: ScanOptions = {}): RelayEvent[] {
    if (!opts.noFlush) this.flush();
    const k = kinds.map(() => '?').join(', ');
    const rows = (after
      ? this.stmt(`SELECT json FROM events INDEXED BY events_at WHERE at >= ? AND at < ? AND (at > ? OR (at = ? AND id > ?)) AND kind IN (${k}) ORDER BY at, id LIMIT ?`).all(
          Math.max(from, after.at),
          to,
          after.at,
          after.at,
          after.id,
          ...kinds,
          limit,
        )
      : this.stmt(`SELECT json FROM events INDEXED BY events_at WHERE at >= ? AND at < ? AND kind IN (${k}) ORDER BY at, id LIMIT ?`).all(from, to, ...kinds, limit)) as {
      json: string;
    }[];
    return rows.map((r) => JSON.parse(r.json) as RelayEvent);
  }

  /**
   * The (skip + 1)th newest event of these kinds (null: of any kind) in [from, to), in page()'s (at, id) order,
   * counting from just below `before` when given (an event found by an earlier call, inside [from, to)), or null when
   * there are no more than `skip`: a replay that reads at most `skip` events starts right after it (policy.simulate's
   * cap, which finds it in steps of a bounded `skip`, a turn of the event loop each). Reads the index only, no event
   * JSON, and about `skip` entries of it: the walk starts at `before` (its `at` bounded on its own, as in query()) and
   * stops at the row it returns, on the (at) index for any kind, else on one (kind, at) walk per kind, merged (as
   * query() does for several kinds), never sorting (`kind IN` with ORDER BY ... OFFSET sorted every row of those kinds
   * in the range).
   */
  cutAfter(
    from: number,
    to: number,
    kinds: readonly string[] | null,
    skip: number,
    opts: ScanOptions & { before?: { at: number; id: number } | null } = {},
  ): { at: number; id: number } | null {
    if (!opts.noFlush) this.flush();
    const b = opts.before ?? null;
    // `at` is an integer: at < to is at <= to - 1
    const cond = b ? 'at >= ? AND at <= ? AND (at < ? OR (at = ? AND id < ?))' : 'at >= ? AND at < ?';
    const args = b ? [from, Math.min(b.at, to - 1), b.at, b.at, b.id] : [from, to];
    const order = 'ORDER BY at DESC, id DESC LIMIT 1 OFFSET ?';
    let row: unknown;
    if (kinds === null) {
      row = this.stmt(`SELECT at, id FROM events INDEXED BY events_at WHERE ${cond} ${order}`).get(...args, skip);
    } else {
      const ks = [...new Set(kinds)];
      if (ks.length === 0) return null;
      row = this.stmt(`${ks.map(() => `SELECT at, id FROM events WHERE kind = ? AND ${cond}`).join(' UNION ALL ')} ${order}`).get(...ks.flatMap((k) => [k, ...args]), skip);
    }
    return (row as { at: number; id: number } | undefined) ?? null;
  }

  /** Events of every kind in [from, to) (the simulation's size bound). */
  countBetween(from: number, to: number, opts: ScanOptions = {}): number {
    if (!opts.noFlush) this.flush();
    return (this.stmt('SELECT count(*) AS n FROM events WHERE at >= ? AND at < ?').get(from, to) as { n: number }).n;
  }

  /** What prune() has deleted so far (a copy): see PruneMark. Cheap, no read of the database. */
  get pruned(): PruneMark {
    return { ...this.pruneMark };
  }

  /** Delete events past the retention and, if the file is over maxBytes, the oldest tenth; in slices. Blocks on flush(). */
  prune(): void {
    if (this.closed) return;
    this.flush();
    for (const _ of this.pruneSteps()) {
      // all slices in one go: the caller (start-up, tests) asked to wait for it
    }
  }

  /**
   * The prune timer's: once the writer has stored what it was handed (waited for without blocking), the slices of
   * pruneSteps() with a turn of the event loop after each, so SMTP sessions go on between them: deleting 200,000 rows
   * at once held the event loop for about a second (measured on a 2-core VM), every SMTP reply waiting behind it.
   */
  private async pruneSoon(): Promise<void> {
    if (this.pruning || this.closed) return;
    this.pruning = true;
    try {
      await this.written();
      const steps = this.pruneSteps();
      while (!this.closed && !steps.next().done) await new Promise((r) => setImmediate(r));
    } catch (err) {
      this.log(`history: could not prune ${this.file}: ${(err as Error).message}`);
    } finally {
      this.pruning = false;
    }
  }

  /**
   * Delete the `limit` oldest events (those before `cutoff`, when given); returns how many went. PruneMark is moved on
   * before the delete, by what it is about to delete (the (at) index alone), so a scan that reads between two slices
   * knows rows may have gone, and which.
   */
  private deleteOldest(limit: number, cutoff: number | null): number {
    const where = cutoff === null ? '' : 'WHERE at < ?';
    const args = cutoff === null ? [limit] : [cutoff, limit];
    const span = this.stmt(`SELECT max(id) AS id, max(at) AS at FROM (SELECT id, at FROM events ${where} ORDER BY at LIMIT ?)`).get(...args) as {
      id: number | null;
      at: number | null;
    };
    if (span.id === null || span.at === null) return 0;
    const m = this.pruneMark;
    this.pruneMark = { prunes: m.prunes + 1, maxId: Math.max(m.maxId, span.id), maxAt: Math.max(m.maxAt, span.at) };
    return this.stmt(`DELETE FROM events WHERE id IN (SELECT id FROM events ${where} ORDER BY at LIMIT ?)`).run(...args).changes;
  }

  /**
   * prune() on what is stored (batches handed to the writer since the last wait may still be in flight), one slice of
   * at most PRUNE_SLICE rows per step: a step is a few tens of milliseconds of the main thread at most.
   */
  private *pruneSteps(): Generator<void, void, void> {
    const cutoff = this.now() - this.retentionDays() * 86_400_000;
    let removed = 0;
    for (;;) {
      const n = this.deleteOldest(PRUNE_SLICE, cutoff);
      removed += n;
      if (n < PRUNE_SLICE) break;
      yield;
      if (this.closed) return;
    }
    // the size bound counts pages in use: pages freed by deletes are reused, so the file stops growing at about maxBytes
    let rows = removed > 0 ? (this.stmt('SELECT count(*) AS n FROM events').get() as { n: number }).n : this.rows();
    for (let i = 0; i < 20 && this.liveBytes() > this.maxBytes && rows > 0; i++) {
      let left = Math.max(1, Math.floor(rows / 10));
      let n = 0;
      while (left > 0) {
        const k = this.deleteOldest(Math.min(PRUNE_SLICE, left), null);
        n += k;
        left -= k;
        if (k === 0) break;
        yield;
        if (this.closed) return;
      }
      removed += n;
      rows -= n;
      this.log(`history: ${this.file} is over its size limit (${Math.round(this.maxBytes / 1024 ** 2)} MiB); deleted the oldest ${n} events`);
    }
    if (removed > 0) {
      this.settle(Atomics.load(this.shared, DONE));
      if (this.inFlight.length === 0) {
        // nothing on its way to the table: count it afresh (failures so far are in the count, by their absence)
        this.rowCount = (this.stmt('SELECT count(*) AS n FROM events').get() as { n: number }).n;
        this.failedAtCount = Atomics.load(this.shared, FAILED);
      } else {
        // the writer's batches in flight are counted already and not in the table yet: the deletes took stored rows
        this.rowCount -= removed;
      }
    }
  }

  // --- config revisions ----------------------------------------------------------------------------------------

  saveRevision(r: RevisionRow): void {
    this.stmt('INSERT OR REPLACE INTO config_revisions (revision, at, by, source, remote_ip, config, changes) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
      r.revision,
      r.at,
      r.by,
      r.source,
      r.remoteIp,
      r.config,
      r.changes,
    );
  }

  lastRevision(): RevisionRow | null {
    return (this.stmt('SELECT revision, at, by, source, remote_ip AS remoteIp, config, changes FROM config_revisions ORDER BY revision DESC LIMIT 1').get() as
      | RevisionRow
      | undefined) ?? null;
  }

  getRevision(revision: number): RevisionRow | null {
    return (this.stmt('SELECT revision, at, by, source, remote_ip AS remoteIp, config, changes FROM config_revisions WHERE revision = ?').get(revision) as
      | RevisionRow
      | undefined) ?? null;
  }

  /** Newest first, without the configs. */
  revisions(limit: number, beforeRevision?: number): Omit<RevisionRow, 'config'>[] {
    return this.stmt(
      `SELECT revision, at, by, source, remote_ip AS remoteIp, changes FROM config_revisions ${beforeRevision !== undefined ? 'WHERE revision < ?' : ''} ORDER BY revision DESC LIMIT ?`,
    ).all(...(beforeRevision !== undefined ? [beforeRevision, limit] : [limit])) as Omit<RevisionRow, 'config'>[];
  }

  /**
   * Rewrite, with `map`, the stored revisions whose config has a smarthost password other than `kept` (rows an older
   * relay stored): the selection is made in SQL, so a start with nothing to rewrite parses no config.
   */
  rewriteRevisionsWithPassword(kept: string, map: (config: string) => string): number {
    const rows = this.stmt(
      "SELECT revision, config FROM config_revisions WHERE json_valid(config) AND json_extract(config, '$.delivery.smarthost.password') IS NOT NULL AND json_extract(config, '$.delivery.smarthost.password') != ?",
    ).all(kept) as { revision: number; config: string }[];
    const update = this.stmt('UPDATE config_revisions SET config = ? WHERE revision = ?');
    this.db.transaction(() => {
      for (const r of rows) update.run(map(r.config), r.revision);
    })();
    return rows.length;
  }

  /** Keep the newest `keep` revisions. */
  trimRevisions(keep: number): void {
    this.stmt('DELETE FROM config_revisions WHERE revision <= (SELECT max(revision) FROM config_revisions) - ?').run(keep);
  }

  /** Flush and close (the relay's stop). */
  close(): void {
    if (this.closed) return;
    this.unsubscribe?.();
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.flush();
    this.closed = true;
    this.stopWriter();
    this.db.close();
  }

  /** The writer closes its connection and ends; waited for (5 s at most), so the file is closed when close() returns. */
  private stopWriter(): void {
    const w = this.writer;
    if (!w) return;
    this.writer = null;
    w.postMessage({ close: true });
    const deadline = Date.now() + 5000;
    while (Atomics.load(this.shared, CLOSED) === 0 && Atomics.load(this.shared, STOPPED) === 0 && Date.now() < deadline) Atomics.wait(this.shared, CLOSED, 0, 50);
    if (Atomics.load(this.shared, CLOSED) === 0) void w.terminate();
  }
}
