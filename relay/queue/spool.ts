/**
 * The durable queue: the spool written before `250` is the queue. See files.ts for the on-disk format.
 *
 * The SMTP front calls begin() for each DATA, write()s the bytes as they arrive and commit()s the envelope; only when
 * commit resolves is the message on disk (its segment or its own file fsynced, renamed into queue/, the directory
 * fsynced) and may the client get its `250`. Small messages committed at the same time share a segment (group commit).
 * acceptingMail turns false after a write failure (disk full, I/O error) and back to true when a probe write succeeds.
 */
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../shared/config.ts';
import { destinationLabel } from '../../shared/destinations.ts';
import type { QueueSummary } from '../../shared/protocol.ts';
import type { EventBus } from '../events/bus.ts';
import { buildDsn, DSN_FULL_MESSAGE_LIMIT, enhancedStatus, globalDsn, type DsnInput, type FailedRecipient } from './dsn.ts';
import { oneLineReason } from './reason.ts';
import { crashHookFromEnv, type StepHook } from './commit-steps.mjs';
import { InlineCommitter, WorkerCommitter, type SpoolCommitter } from './committer.ts';
import { DirSyncer, encodeTrailer, fsyncDir, ID_PATTERN, isTombstone, newQueueId, parseSegment, readTrailer, SEGMENT_HEADER_LENGTH, segmentHeader, writeFileAtomic } from './files.ts';
import { destinationFor, domainOf, resolveTargets, targetName, type Destination, type Target } from './route.ts';
import { DEFAULT_RETRY_DELAYS_MS, Fifo, MinHeap, retryDelay } from './schedule.ts';
import { InProcessDeliverer, WorkerDeliverer, type DataSource, type Deliverer } from './deliverer.ts';
import { relayHostname } from '../store/config-store.ts';

export interface Envelope {
  /** '' = null sender (bounces) */
  from: string;
  to: string[];
  sessionId: string;
  clientIp: string;
  clientHostname: string | null;
  helo: string;
  authUser: string | null;
  /** ms since the epoch */
  receivedAt: number;
  /**
   * RFC 6152: the MAIL declared BODY=8BITMIME (declared again to a next hop that offers 8BITMIME). Written only when
   * true: BODY=7BIT, no BODY, and spool files from before this field read as not declared.
   */
  body8bit?: true;
  /** RFC 6531: the MAIL declared SMTPUTF8 (written only when true; absent in spool files from before this field) */
  smtpUtf8?: true;
}

export interface SpoolWriter {
  /** Buffered, no fsync; never blocks the event loop on disk. */
  write(chunk: Buffer): void;
  /**
   * Flushes, fsyncs the data and envelope, renames into the queue, fsyncs the directory; resolves only when the message
   * is durably on disk. Rejects (err.code e.g. 'ENOSPC') if anything failed; then nothing is left behind.
   */
  commit(envelope: Envelope): Promise<{ id: string; size: number }>;
  /** The client dropped or the message was refused: removes the temp file. */
  abort(): Promise<void>;
}

export interface MxRecord {
  exchange: string;
  priority: number;
}
export type DnsAnswer<T> =
  | { status: 'ok'; records: T[]; ttl: number }
  | { status: 'nxdomain' }
  | { status: 'nodata' }
  | { status: 'temperror'; reason: string; brief?: string };
/** What the queue needs from the DNS layer; relay/dns/resolver.ts's DnsResolver satisfies it. */
export interface MxResolver {
  mx(name: string): Promise<DnsAnswer<MxRecord>>;
  a(name: string): Promise<DnsAnswer<string>>;
  aaaa(name: string): Promise<DnsAnswer<string>>;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
export const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Test hook at the storage edge: throw from it to simulate a failing disk operation. `messages` is how many messages
 * the operation commits (a segment holds several; 1 for everything else).
 */
export type FaultInjector = StepHook;

export type MessageKind = 'message' | 'dsn';

/** What retryAll() did: see there. */
export interface RetryAllResult {
  scheduled: number;
  delivering: number;
  /** absent (with down) when no destination held a message back */
  heldBack?: number;
  down?: { destination: string; messages: number; heldBack: number }[];
}
export type RecipientStatus = 'pending' | 'delivered' | 'bounced';

export interface QueueItem {
  id: string;
  from: string;
  /** recipients still to deliver */
  to: string[];
  /** recipients already delivered or bounced */
  done: { to: string; status: 'delivered' | 'bounced' }[];
  size: number;
  receivedAt: number;
  kind: MessageKind;
  status: 'queued' | 'delivering' | 'deferred';
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /**
   * a delete or return the administrator asked for that is not done yet: the message is being delivered (the attempt
   * is not cut; the message leaves the queue when it ends), or its return waits for its DSN to be stored
   */
  removal: 'delete' | 'bounce' | null;
  /**
   * the destinations its waiting recipients go to: the scheduler's per-destination keys (`local:HOST:PORT`,
   * `mx:DOMAIN`, `smarthost:HOST:PORT`), as in summary() and retryAll's filter
   */
  destinations: string[];
}


/** What the queue knows about one destination (a scheduler key), in memory. */
interface DestState {
  /** the last failure reason of a job for it */
  lastError: string | null;
  /**
   * its last attempt failed at the connection level (could not connect, no greeting, a 421 greeting, TLS required but
   * not possible): at most one connection at a time (a probe), not before probeAt; the other jobs are not tried.
   * `failures`: connection-level failures in a row (the probe interval grows with them, as the retry delays do).
   */
  down: {
    since: number;
    reason: string;
    at: number;
    probeAt: number;
    failures: number;
    /** an administrator's retry moved the probe to now: the time it had (the automatic schedule, kept if it fails) */
    scheduledProbeAt?: number;
  } | null;
  /** the probe is under way */
  probing: boolean;
  /**
   * it answered since the relay started (or since this entry was made): full concurrency. Until then at most
   * INITIAL_CONCURRENCY connections (Postfix's initial_destination_concurrency): a server that accepts and never
   * greets holds five connections for the greeting timeout, not twenty, before it is known to be down.
   */
  up: boolean;
  /** messages waiting whose last failure for it was at the connection level: a delivery to it brings them forward */
  connWaiting: Set<QueuedMessage>;
}

/**
 * A session of its current attempt has started (or its outcome is being recorded): what queue.list calls
 * "delivering". Not so while its attempt's jobs wait for a free connection (msg.delivering is set then already).
 */
function beingDelivered(m: QueuedMessage): boolean {
  return m.attempt ? m.attempt.started : m.delivering && m.wrapUp;
}

/** Connections to a destination that has not answered yet (DestState.up), as Postfix's initial_destination_concurrency. */
const INITIAL_CONCURRENCY = 5;

/** summary() is computed afresh up to this many queued messages; past it, at most every SUMMARY_CACHE_MS. */
const SUMMARY_FRESH_MAX = 5000;
const SUMMARY_CACHE_MS = 5000;

/** What a delete() or bounce() did. */
export type Removal =
  /**
   * gone from the queue, durably (a restart does not bring it back): deleted, or returned. `returned` (bounce() only):
   * whether a DSN to the sender was stored; false when there was no one left to return it to (the attempt under way
   * delivered every recipient) or no one to tell (a null sender, a DSN)
   */
  | { result: 'removed'; returned?: boolean }
  /**
   * a delivery attempt is under way and is not cut: when it ends, the recipients it delivered stay delivered and the
   * message leaves the queue (the others deleted, or returned in a DSN). Recorded on disk before this answer, and no new
   * connection is made for it from then on. A return whose DSN cannot be stored then stays pending (listed so, not
   * delivered) and is tried again.
   */
  | { result: 'pending'; removal: 'delete' | 'bounce' }
  /** not in the queue (never was, or delivered, bounced or removed already) */
  | { result: 'not-found' }
  /** the other removal is pending already (a delete asked during a return, or the reverse): nothing changed */
  | { result: 'conflict'; removal: 'delete' | 'bounce' }
  /**
   * nothing changed, the message stays queued as it was (a delivery under way goes on): `what` could not be done,
   * the return's DSN could not be stored ('bounce'), the pending removal could not be recorded on disk ('record'), or
   * the removal failed unexpectedly ('internal', logged)
   */
  | { result: 'failed'; what: 'bounce' | 'record' | 'internal'; reason: string }
  /**
   * it has left the queue (with bounce(): `returned` as for 'removed'), but that could not be made durable on disk
   * (the unlink, the directory fsync or the tombstone failed): a restart of the relay may queue it again
   */
  | { result: 'unrecorded'; reason: string; returned?: boolean };

/** How finishAttempt ends an attempt that a removal asked for now ends. */
interface EndOptions {
  /** a return asked for now (not pending): a DSN that cannot be stored gives it up, and nothing changes */
  direct?: boolean;
  /** the attempt's jobs that were waiting for a slot, taken out to end it now: put back if the return is given up */
  dropped?: Job[];
}

/** How an attempt's end (finishAttempt) went, for the removal it carried out. */
interface AttemptEnd {
  /** why the DSN of a return could not be stored, or null */
  returnFailed: string | null;
  /** the message left the queue by the administrator's removal, but not durably: why */
  unrecorded: string | null;
  /** a DSN for the administrator's return was stored */
  returned: boolean;
}

/** A segment file in queue/ and how many of its messages are still queued; unlinked when none is left. */
interface Segment {
  file: string;
  /** every message id recorded in it (deleted or copied out ones included) */
  ids: string[];
  live: number;
  /** .state files of its messages, unlinked after the segment itself (never before: a crash would lose them) */
  stateFiles: string[];
  /** no message left: its unlink is under way (it stays known until the unlink returned, so removals still tombstone) */
  dying: boolean;
  /** when it was written (Date.now() at its commit; its file's mtime when loaded at start): an age on disk */
  bornAt: number;
  /** messages that left it (or its copies of them) without a "deleted" state while it was young: see tombstoneOld() */
  gone: string[];
}

/** One queued message, as the queue holds it in memory (the bytes stay on disk). */
export interface QueuedMessage {
  id: string;
  /** the file holding its bytes: its own .msg, or the segment it was committed in */
  file: string;
  /** the segment it lives in (null: its own .msg file) */
  seg: Segment | null;
  /** the segment it was copied out of, whose record of it stays on disk until that segment goes */
  origin: Segment | null;
  /** where its raw bytes start in `file` (0 in a .msg) */
  offset: number;
  envelope: Envelope;
  kind: MessageKind;
  /** bytes of the raw message (the trailer excluded) */
  size: number;
  rcpts: Map<string, { status: RecipientStatus; error: string | null }>;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /** an attempt is under way (its jobs are queued or running) */
  delivering: boolean;
  /** waiting in the ready list */
  inReady: boolean;
  /**
   * set by delete() or bounce(). During a delivery it is pending (and on disk: a "deleted" or "returning" state) until
   * the attempt ends; a return whose DSN could not be stored stays so, and is tried again at nextAttemptAt.
   */
  removed: null | 'delete' | 'bounce';
  /** who asked for the removal (the management token's name), for the `deleted` event; null when not known */
  removedBy?: string | null;
  /**
   * the answer to a delete() or bounce() being carried out now, given once it is done and durable (a delete of a
   * message not being delivered, a return once its DSN is stored and the message is gone): a repeat gets the same
   */
  answer: { kind: 'delete' | 'bounce'; promise: Promise<Removal> } | null;
  /**
   * the state file recording a pending removal (asked for during a delivery) being written: the attempt's end and
   * every new connection of the attempt wait for it. Resolves with why it failed (the removal is then undone), or null.
   */
  persisting: Promise<string | null> | null;
  /** the end of its attempt (or return) being recorded: finishAttempt under way */
  finishing: Promise<AttemptEnd> | null;
  /** the attempt being recorded (finishAttempt) had started connections: listed as delivering until it is recorded */
  wrapUp: boolean;
  /** how its last attempt (or return) ended */
  lastEnd: AttemptEnd | null;
  /** `keys`: the destinations of its jobs (jobs not started yet wait in those queues) */
  attempt: { jobsLeft: number; outcomes: Outcome[]; started: boolean; keys: string[] } | null;
  /** the raw bytes, kept in memory from the commit until the first attempt ends (small messages, bounded in total) */
  data: Buffer | null;
  /** a .state file may exist for it (one was written or found at start): remove() unlinks it */
  hasState: boolean;
  /**
   * failed attempts that count for the retry delay (absent: `attempts`). An attempt made ahead of the schedule (the
   * administrator's retry, a destination's recovery) and failed is counted in `attempts`, not here.
   */
  steps?: number;
  /** tried ahead of its schedule (retry(), retryAll(), a recovery): the nextAttemptAt it had, kept if that fails */
  early?: number | null;
  /** its nextAttemptAt is its destination's next probe (it was not tried: skip()), not a step of its own backoff */
  skipped?: boolean;
  /** destinations whose last attempt for it failed at the connection level (or was not tried: down); in memory */
  connDests?: Set<string>;
  /** the key of its live entry in the retry heap, if any (no duplicate entries at the same time) */
  heapAt?: number | null;
}

/**
 * A queued message as it enters the queue (committed now, or read from disk at start): every recipient pending, never
 * tried, due at `nextAttemptAt`, nothing under way. Its state file, if any, is read over it after.
 */
export function queuedMessage(m: {
  id: string;
  file: string;
  seg: Segment | null;
  offset: number;
  envelope: Envelope;
  kind: MessageKind;
  size: number;
  nextAttemptAt: number;
  data: Buffer | null;
  hasState: boolean;
}): QueuedMessage {
  return {
    ...m,
    origin: null,
    rcpts: new Map(m.envelope.to.map((to) => [to, { status: 'pending' as RecipientStatus, error: null as string | null }])),
    attempts: 0,
    lastError: null,
    delivering: false,
    inReady: false,
    removed: null,
    answer: null,
    persisting: null,
    finishing: null,
    wrapUp: false,
    lastEnd: null,
    attempt: null,
  };
}

/** What one attempt decided for one recipient. */
interface Outcome extends FailedRecipient {
  result: 'delivered' | 'deferred' | 'bounced';
  /**
   * the stop cut this delivery short, and nothing else ended it: it never started (still queued, or no address was
   * tried yet), or stop() closed its connection before the server answered. No step of the retry schedule. Also a
   * delivery a pending removal stopped before it connected (its message leaves the queue, or waits for its return).
   */
  cut?: true;
  /**
   * not tried: its destination is down (one probe at a time). Not an attempt; the message's next one is this time
   * (the destination's next probe, plus jitter).
   */
  skippedUntil?: number;
}

interface Job {
  msg: QueuedMessage;
  dest: Destination;
  rcpts: string[];
  /** stop() closed a connection of this job (it called the closer the job's delivery registered) */
  closedByStop?: true;
  /** the one connection allowed to a destination that is down */
  probe?: true;
  /** that probe was started by an administrator's retry: if it fails, the destination's schedule stays as it was */
  manualProbe?: true;
  /** what this job learned about its destination: it did not answer usably (connection level), or it answered */
  verdict?: { down: string } | 'up';
  /** a recipient was delivered */
  delivered?: true;
}

export interface QueueOptions {
  /** spool directory, created if missing */
  dir: string;
  config: () => Config;
  resolver: MxResolver;
  bus: EventBus;
  now?: () => number;
  timers?: Timers;
  /** retry delays in ms for attempt 1, 2, ...; the last repeats. Default 1, 5, 15, 30 min, then hourly. */
  retryDelaysMs?: number[];
  /** jitter as a fraction of the delay (default 0.1: +-10%) */
  jitter?: number;
  random?: () => number;
  /** concurrent deliveries (SMTP sessions) in total (default 100) and per destination (default 20) */
  concurrency?: number;
  perDestination?: number;
  /** port for MX and address-literal delivery (default 25; tests point it at their loopback sinks) */
  mxPort?: number;
  /** how long stop() waits for deliveries under way before closing their connections (default 5000 ms) */
  stopTimeoutMs?: number;
  /** SMTP conversations in a worker thread (default true); false runs them on the calling thread */
  deliveryWorker?: boolean;
  /** keep a connection open this long after a delivery for the next message to the same address (default 2000 ms; 0: never reuse) */
  connectionCacheMs?: number;
  /** while not accepting, how often to try a probe write (default 2000 ms) */
  probeIntervalMs?: number;
  /** bytes the probe must be able to write and fsync (default 256 KiB) */
  probeBytes?: number;
  /** flush buffered DATA to the temp file past this many bytes (default 256 KiB) */
  flushBytes?: number;
  /**
   * messages that fit in flushBytes keep their bytes in memory from the commit until their first delivery attempt
   * ends, up to this many bytes in total (default 64 MiB; 0: always read from the spool)
   */
  retainBytes?: number;
  /**
   * a message delivered (or bounced) out of a segment this old that still holds others, or was copied out of one, leaves
   * a "deleted" state so that a crash does not deliver it again (default 5 s; younger segments go soon, and a crash
   * then re-delivers what was delivered from them: at least once, without a write per message)
   */
  segmentTombstoneAfterMs?: number;
  fault?: FaultInjector;
  /** timeouts for a delivery connection: connect and greeting (default 30 s), each later command (default 300 s) */
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  log?: (line: string) => void;
}

/**
 * A message's .state file. Still version 1: a relay older than `returning` reads a file with another `v` as no state
 * at all and would deliver the message to every recipient, so a new field that must stop delivery cannot come with a
 * new version. It comes with `deleted` instead, which every relay reads (see `returning`).
 */
interface StateFile {
  v: 1;
  /**
   * deleted or returned by the administrator while its segment still holds other messages, or deleted during a
   * delivery (until the attempt ends): never load it again. Also set with `returning` (which then wins).
   */
  deleted?: true;
  /**
   * the administrator asked to return it to its sender, and that is not done yet: return it, never deliver it. Always
   * written with `deleted: true`, so that a relay older than this field, which would ignore it and deliver, reads the
   * file as a deletion instead (it neither delivers nor returns it). Not a tombstone (files.ts isTombstone).
   */
  returning?: true;
  attempts: number;
  /** failed attempts that count for the retry delay, when not `attempts` (QueuedMessage.steps; older relays ignore it) */
  steps?: number;
  nextAttemptAt: number;
  lastError: string | null;
  rcpts: Record<string, { status: RecipientStatus; error: string | null }>;
}

interface TrailerJson {
  v: 1;
  id: string;
  kind: MessageKind;
  envelope: Envelope;
}

/** finished messages' files are unlinked in bursts: after this delay, or at once when this many are pending */
const UNLINK_DELAY_MS = 20;
const UNLINK_BURST = 32;

const FATAL_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EMFILE', 'ENFILE', 'EACCES', 'EPERM', 'ENOENT', 'EFBIG']);

/**
 * Disk calls on this thread. Commits (create, write, fdatasync, rename, directory fsync) run in the commit worker
 * (committer.ts). What stays here goes through libuv's thread pool, so the event loop never waits for the ext4
 * journal or the disk: a large message's streaming writes, unlinks. (A pool trip costs 40-60 us of CPU per call on
 * the 2-core VM measured: bench/RESULTS.md.)
 */
function openAsync(file: string, flags: string, mode: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function unlinkAsync(file: string): Promise<void> {
  return new Promise((resolve, reject) => fs.unlink(file, (err) => (err ? reject(err) : resolve())));
}

function writeAsync(fd: number, buf: Buffer, off: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, buf.length - off, null, (err, n) => (err ? reject(err) : resolve(n))));
}

function closeQuietly(fd: number | null): void {
  if (fd === null) return;
  try {
    fs.closeSync(fd);
  } catch {
    // nothing to do
  }
}

function unlinkQuietly(file: string): Promise<void> {
  return unlinkAsync(file).catch(() => {});
}

class Writer implements SpoolWriter {
  private chunks: Buffer[] = [];
  private pending = 0;
  private bytes = 0;
  private fd: number | null = null;
  /** background writes of a large message (past flushBytes); null while everything is still in memory */
  private chain: Promise<void> | null = null;
  private error: Error | null = null;
  private finished = false;
  private opened = false;
  readonly id: string;
  readonly tmpFile: string;

  constructor(
    private readonly q: Queue,
    private readonly kind: MessageKind = 'message',
  ) {
    this.id = newQueueId(q.clock());
    this.tmpFile = path.join(q.tmpDir, `${this.id}.tmp`);
    q.activeTemps.add(this.tmpFile);
  }

  write(chunk: Buffer): void {
    if (this.finished || this.error) return;
    this.chunks.push(chunk);
    this.pending += chunk.length;
    this.bytes += chunk.length;
    if (this.pending >= this.q.flushBytes) this.flush();
  }

  private async open(): Promise<number> {
    if (this.fd === null) {
      this.opened = true;
      this.q.inject('open', this.tmpFile);
      this.fd = await openAsync(this.tmpFile, 'wx', 0o600);
    }
    return this.fd;
  }

  /** A large message: write what is buffered in the background, in order. */
  private flush(): void {
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.pending = 0;
    this.chain = (this.chain ?? this.q.ready)
      .then(async () => {
        if (this.error) return;
        const fd = await this.open();
        this.q.inject('write', this.tmpFile);
        for (let off = 0; off < buf.length; ) off += await writeAsync(fd, buf, off);
      })
      .catch((err: Error) => {
        this.error ??= err;
      });
  }

  commit(envelope: Envelope): Promise<{ id: string; size: number }> {
    if (this.finished) return Promise.reject(new Error('this message was already committed or aborted'));
    this.finished = true;
    // begun now: stop() lets it finish before it shuts the committer down
    return this.q.commitUnderWay(this.store(envelope));
  }

  private async store(envelope: Envelope): Promise<{ id: string; size: number }> {
    const trailer: TrailerJson = { v: 1, id: this.id, kind: this.kind, envelope };
    if (!this.chain) return this.commitInSegment(envelope, trailer);
    const size = this.bytes;
    const target = path.join(this.q.queueDir, `${this.id}.msg`);
    try {
      const tail = encodeTrailer(JSON.stringify(trailer));
      await this.chain;
      if (this.error) throw this.error;
      // the rest goes at the end of the temp file, from the commit worker: this thread's descriptor is done
      const bufs = this.chunks;
      this.chunks = [];
      bufs.push(tail);
      const fd = this.fd;
      this.fd = null;
      if (fd !== null) fs.closeSync(fd);
      await this.q.commitFile(this.tmpFile, target, bufs, 1, true);
    } catch (err) {
      await this.cleanup();
      this.q.storageFailed(err as Error);
      throw err;
    }
    this.q.committing.delete(target);
    this.q.committed(this.queued(envelope, target, null, 0, size, null));
    return { id: this.id, size };
  }

  /** A message that never left memory goes to disk with the others committed meanwhile, in one segment. */
  private async commitInSegment(envelope: Envelope, trailer: TrailerJson): Promise<{ id: string; size: number }> {
    const size = this.bytes;
    const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, size);
    this.chunks = [];
    let placed: { seg: Segment; offset: number };
    try {
      placed = await this.q.group.add(this.id, data, Buffer.from(JSON.stringify(trailer), 'utf8'));
    } catch (err) {
      this.q.activeTemps.delete(this.tmpFile);
      this.q.storageFailed(err as Error);
      throw err;
    }
    this.q.activeTemps.delete(this.tmpFile);
    // kept (bounded, see Queue.retain) for its first delivery: no read back
    this.q.committed(this.queued(envelope, placed.seg.file, placed.seg, placed.offset, size, this.q.retain(data)));
    return { id: this.id, size };
  }

  private queued(envelope: Envelope, file: string, seg: Segment | null, offset: number, size: number, data: Buffer | null): QueuedMessage {
    return queuedMessage({ id: this.id, file, seg, offset, envelope, kind: this.kind, size, nextAttemptAt: this.q.clock(), data, hasState: false });
  }

  private async cleanup(): Promise<void> {
    this.chunks = [];
    if (this.chain) await this.chain.catch(() => {});
    closeQuietly(this.fd);
    this.fd = null;
    if (this.opened) await unlinkQuietly(this.tmpFile);
    this.q.activeTemps.delete(this.tmpFile);
  }

  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.cleanup();
  }
}

/** records per segment at most (three buffers each in one writev, under IOV_MAX 1024) and bytes per segment at most */
const SEGMENT_MAX_RECORDS = 256;
const SEGMENT_MAX_BYTES = 8 * 1024 * 1024;

interface PendingRecord {
  id: string;
  data: Buffer;
  json: Buffer;
  resolve: (placed: { seg: Segment; offset: number }) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of small messages. Commits that arrive while a segment is being written wait and go together in the
 * next one (at most one segment is in flight, so a busy relay writes bigger segments, an idle one a segment per
 * message). A segment: created in tmp/, one write into the page cache, fdatasync, rename into queue/, directory
 * fsync, all in the commit worker thread (committer.ts); each commit resolves only after all of that. Any failure
 * rejects every commit of the segment and leaves nothing behind.
 */
class GroupCommit {
  private pending: PendingRecord[] = [];
  private busy = false;
  private scheduled = false;

  constructor(private readonly q: Queue) {}

  add(id: string, data: Buffer, json: Buffer): Promise<{ seg: Segment; offset: number }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, data, json, resolve, reject });
      if (!this.busy && !this.scheduled) {
        // the commits finishing in this event-loop turn share the segment
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.next();
        });
      }
    });
  }

  private next(): void {
    if (this.busy || this.pending.length === 0) return;
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length && n < SEGMENT_MAX_RECORDS) {
      const r = this.pending[n]!;
      const size = SEGMENT_HEADER_LENGTH + r.data.length + r.json.length;
      if (n > 0 && bytes + size > SEGMENT_MAX_BYTES) break;
      bytes += size;
      n++;
    }
    const batch = this.pending.splice(0, n);
    this.busy = true;
    void this.write(batch).finally(() => {
      this.busy = false;
      this.next();
    });
  }

  private async write(batch: PendingRecord[]): Promise<void> {
    const q = this.q;
    const segId = newQueueId(q.clock());
    const tmp = path.join(q.tmpDir, `${segId}.seg`);
    const target = path.join(q.queueDir, `${segId}.seg`);
    const n = batch.length;
    q.activeTemps.add(tmp);
    try {
      await q.ready;
      const bufs: Buffer[] = [];
      const offsets: number[] = [];
      let off = 0;
      for (const r of batch) {
        bufs.push(segmentHeader(r.id, r.data.length, r.json.length), r.data, r.json);
        offsets.push(off + SEGMENT_HEADER_LENGTH);
        off += SEGMENT_HEADER_LENGTH + r.data.length + r.json.length;
      }
      await q.commitFile(tmp, target, bufs, n);
      const seg = q.segmentCommitted(target, batch.map((r) => r.id));
      q.committing.delete(target);
      batch.forEach((r, i) => r.resolve({ seg, offset: offsets[i]! }));
    } catch (err) {
      await unlinkQuietly(tmp);
      q.activeTemps.delete(tmp);
      for (const r of batch) r.reject(err);
    }
  }
}

export class Queue {
  readonly dir: string;
  readonly tmpDir: string;
  readonly queueDir: string;
  /**
   * Resolves when the spool directories exist. Made in the constructor; if that failed (tmp/ is a file...), start()
   * tries again, so a start() after the fault was fixed works.
   */
  get ready(): Promise<void> {
    return this.dirsMade;
  }
  private dirsMade: Promise<void>;
  readonly dirSync: DirSyncer;
  /** @internal makes commits durable (a worker thread; on this thread when a test injects faults) */
  readonly committer: SpoolCommitter;
  /** @internal */
  readonly group: GroupCommit;
  readonly activeTemps = new Set<string>();
  /** segments in queue/ that this queue knows, by file */
  private readonly segments = new Map<string, Segment>();
  /** @internal files renamed into queue/ whose commit has not finished: start() leaves them to their writer */
  readonly committing = new Set<string>();
  /** Writer commits begun and not yet settled: stop() waits for them before it shuts the committer down */
  private readonly commitsUnderWay = new Set<Promise<void>>();
  readonly flushBytes: number;
  readonly clock: () => number;
  private readonly retainBytes: number;
  private retainedBytes = 0;
  private readonly opts: QueueOptions;
  private readonly timers: Timers;
  private readonly messages = new Map<string, QueuedMessage>();
  private readonly log: (line: string) => void;
  private accepting = true;
  /** the last undeliverable bounce said on stdout, and how many were not said since (undeliverableBounce) */
  private bounceNote = { at: -Infinity, held: 0, timer: null as unknown };
  /** the smarthost login problem last said on stdout, and when (smarthostLogin) */
  private loginProblem: { host: string; at: number } | null = null;
  private probeTimer: unknown = null;
  private probing = false;
  private running = false;
  private stopped = false;
  private unlinks: string[] = [];
  /** segments whose file is in `unlinks` */
  private dyingSegments: Segment[] = [];
  private unlinkTimer: NodeJS.Timeout | null = null;
  /** tombstoneOld()'s interval while the queue runs */
  private tombstoneTimer: NodeJS.Timeout | null = null;
  private unlinking: Promise<void> = Promise.resolve();

  // scheduling
  private readonly readyList = new Fifo<QueuedMessage>();
  private readonly waiting = new MinHeap<QueuedMessage>();
  private timer: unknown = null;
  private timerAt: number | null = null;
  private readonly destQueues = new Map<string, Fifo<Job>>();
  private readonly destActive = new Map<string, number>();
  /** per destination key: down or not, last failure */
  private readonly dests = new Map<string, DestState>();
  /** the table's size at which pruneDests() runs next */
  private destsPruneAt = 16;
  /** a recipient domain's destination key under one config object (destinationFor depends on nothing else) */
  private keyCache: { config: Config; byDomain: Map<string, string> } | null = null;
  private summaryCache: { at: number; value: Omit<QueueSummary, 'destinations'> & { destinations: { destination: string; messages: number; nextAttemptAt: number | null; messageError: string | null; later: number }[] } } | null = null;
  private active = 0;
  private readonly work = new Set<Promise<void>>();
  private readonly connections = new Set<() => void>();
  private readonly concurrency: number;
  private readonly perDestination: number;
  private readonly fault: FaultInjector | undefined;
  private readonly client: Deliverer;

  constructor(opts: QueueOptions) {
    this.opts = opts;
    this.dir = path.resolve(opts.dir);
    this.tmpDir = path.join(this.dir, 'tmp');
    this.queueDir = path.join(this.dir, 'queue');
    this.clock = opts.now ?? Date.now;
    this.timers = opts.timers ?? realTimers;
    this.flushBytes = opts.flushBytes ?? 256 * 1024;
    this.retainBytes = opts.retainBytes ?? 64 * 1024 * 1024;
    this.log = opts.log ?? ((line) => console.error(line));
    this.concurrency = opts.concurrency ?? 100;
    this.perDestination = opts.perDestination ?? 20;
    this.fault = opts.fault ?? crashHookFromEnv();
    const idleMs = opts.connectionCacheMs ?? 2000;
    const clientOpts = { idleMs, maxIdlePerAddress: idleMs > 0 ? this.perDestination : 0 };
    this.client = opts.deliveryWorker === false ? new InProcessDeliverer(clientOpts) : new WorkerDeliverer(clientOpts, this.log);
    this.dirSync = new DirSyncer(this.queueDir);
    this.committer = opts.fault ? new InlineCommitter(this.queueDir, opts.fault) : new WorkerCommitter(this.queueDir, this.log);
    this.group = new GroupCommit(this);
    this.dirsMade = this.makeDirs();
  }

  private makeDirs(): Promise<void> {
    const { tmpDir, queueDir } = this;
    const made = (async () => {
      await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
      await fsp.mkdir(queueDir, { recursive: true, mode: 0o700 });
    })();
    // A failure here surfaces at the first commit or at start(); keep it from being an unhandled rejection.
    made.catch(() => {});
    return made;
  }

  /** false after a write failure (ENOSPC, EIO...) until a probe write succeeds again: answer 452 4.3.1 meanwhile */
  get acceptingMail(): boolean {
    return this.accepting;
  }

  /** messages in the queue (committed and not yet delivered, bounced or deleted) */
  get size(): number {
    return this.messages.size;
  }

  /** SMTP sessions to downstream servers under way */
  get activeDeliveries(): number {
    return this.active;
  }

  /** Starts receiving one message; the file is opened lazily. */
  begin(): SpoolWriter {
    return new Writer(this);
  }

  /** @internal */
  inject(op: Parameters<FaultInjector>[0], file: string, messages = 1): void {
    this.fault?.(op, file, messages);
  }

  /** @internal whether a message of this size may keep its bytes in memory for its first delivery */
  mayRetain(size: number): boolean {
    return this.retainedBytes + size <= this.retainBytes;
  }

  /** @internal */
  retain(data: Buffer): Buffer | null {
    if (!this.mayRetain(data.length)) return null;
    this.retainedBytes += data.length;
    return data;
  }

  private dropData(msg: QueuedMessage): void {
    if (!msg.data) return;
    this.retainedBytes -= msg.data.length;
    msg.data = null;
  }

  /** @internal a Writer's commit has begun: stop() lets it finish (acknowledged or refused as usual) */
  commitUnderWay<T>(commit: Promise<T>): Promise<T> {
    const settled: Promise<void> = commit.then(
      () => void this.commitsUnderWay.delete(settled),
      () => void this.commitsUnderWay.delete(settled),
    );
    this.commitsUnderWay.add(settled);
    return commit;
  }

  /**
   * @internal The end of every commit, a segment or a large message's own file (`append`: its temp file holds the
   * message so far), through the committer: write `bufs`, fdatasync, rename into queue/, fsync the directory. On
   * success `target` is in `committing` until the caller has taken it in (and removes it from there): start() must
   * not load it before (it could run between the rename and the directory fsync). On failure neither file is left.
   * Once stop() has shut the committer down (until start()), it is refused at once (ESTOPPED) and starts nothing.
   */
  async commitFile(tmp: string, target: string, bufs: Buffer[], messages: number, append = false): Promise<void> {
    this.committing.add(target);
    try {
      await this.committer.publish(tmp, target, bufs, messages, append);
    } catch (err) {
      this.committing.delete(target);
      throw err;
    }
    this.activeTemps.delete(tmp);
  }

  /** @internal a segment is durable in queue/ with these messages */
  segmentCommitted(file: string, ids: string[]): Segment {
    const seg: Segment = { file, ids, live: ids.length, stateFiles: [], dying: false, bornAt: Date.now(), gone: [] };
    this.segments.set(file, seg);
    return seg;
  }

  /**
   * One message of a segment is no longer queued (finished, or copied to its own .msg): unlink the segment after the
   * last (`now`: at once and durably, not in the next burst of unlinks). Resolves, never rejects, once that is done:
   * null when the segment stays (other messages live in it), or is gone durably (`now`), or goes in the next burst;
   * else why its unlink or the directory fsync after it failed.
   */
  private release(seg: Segment, now = false): Promise<string | null> {
    if (--seg.live > 0) return Promise.resolve(null);
    seg.dying = true;
    if (seg.stateFiles.length === 0 && !now) {
      this.dyingSegments.push(seg);
      this.unlinkSoon(seg.file);
      return Promise.resolve(null);
    }
    const gone = unlinkAsync(seg.file).then(
      () => this.segmentGone(seg, now),
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return this.segmentGone(seg, now);
        // still on disk: keep knowing it (removals keep tombstoning) and keep its tombstones; the next start() sees to it
        this.log(`queue: cannot remove ${seg.file}: ${err.message}`);
        return `cannot remove ${path.basename(seg.file)}: ${err.message}`;
      },
    );
    this.track(gone);
    return gone;
  }

  /**
   * A segment's unlink returned: forget it, then remove its messages' .state files (tombstones among them) once the
   * unlink is durable (directory fsynced): a crash in between leaves orphans that start() removes, never a record
   * without its tombstone. Until this runs, a removal of a message copied out of it still writes a tombstone.
   * `durable`: fsync the directory even with no state file (an administrator's removal). Never rejects: resolves with
   * why the directory could not be fsynced, or null.
   */
  private async segmentGone(seg: Segment, durable = false): Promise<string | null> {
    this.segments.delete(seg.file);
    const states = seg.stateFiles.splice(0);
    if (states.length === 0 && !durable) return null;
    try {
      await this.dirSync.sync();
    } catch (err) {
      // the tombstones stay (start() removes them once no record needs them)
      this.log(`queue: cannot fsync ${this.queueDir} after removing ${path.basename(seg.file)}: ${(err as Error).message}`);
      return `cannot fsync ${this.queueDir}: ${(err as Error).message}`;
    }
    await Promise.all(states.map(unlinkQuietly));
    return null;
  }

  /** @internal a commit finished: the message is durable. */
  committed(msg: QueuedMessage): void {
    this.messages.set(msg.id, msg);
    this.schedule(msg);
  }

  /** @internal a write to the spool failed: stop accepting until a probe write succeeds. */
  storageFailed(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && !FATAL_ERRNO.has(code)) return;
    if (this.accepting) this.log(`queue: cannot write to the spool ${this.dir} (${code ?? err.message}); refusing mail with 452 4.3.1 until a test write succeeds`);
    this.accepting = false;
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.probeTimer !== null || this.probing || this.stopped) return;
    this.probeTimer = this.timers.setTimeout(() => {
      this.probeTimer = null;
      void this.probe();
    }, this.opts.probeIntervalMs ?? 2000);
  }

  /** Writes and fsyncs a probe file of probeBytes; on success accepting mail resumes. Returns the new acceptingMail. */
  async probe(): Promise<boolean> {
    if (this.probing) return this.accepting;
    this.probing = true;
    const file = path.join(this.tmpDir, `probe-${process.pid}.tmp`);
    let fh: fsp.FileHandle | null = null;
    try {
      await this.ready;
      this.inject('open', file);
      fh = await fsp.open(file, 'w', 0o600);
      this.inject('write', file);
      const buf = Buffer.alloc(this.opts.probeBytes ?? 256 * 1024);
      // a nearly full disk takes part of a write; the next write then fails with ENOSPC
      for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off, null)).bytesWritten;
      this.inject('sync', file);
      await fh.datasync();
      this.inject('dirsync', this.queueDir);
      await fsyncDir(this.queueDir);
      if (!this.accepting) this.log(`queue: the spool ${this.dir} is writable again; accepting mail`);
      this.accepting = true;
    } catch {
      this.accepting = false;
    } finally {
      await fh?.close().catch(() => {});
      await fsp.unlink(file).catch(() => {});
      this.probing = false;
    }
    if (!this.accepting) this.scheduleProbe();
    return this.accepting;
  }

  /**
   * Scans the spool: removes temp files that never committed, loads every queued message, starts delivering. If it
   * fails (a spool directory cannot be made or read, a message cannot be moved aside...), what it started is stopped
   * again as stop() does (commits begun meanwhile finish, later ones are refused with ESTOPPED, no worker is left)
   * and the error that made it fail is thrown; what it loaded stays known, and a later start() loads the rest.
   */
  async start(): Promise<void> {
    // at once: a commit begun just before this call reaches the committer after it, and is taken
    this.committer.open();
    try {
      await this.scan();
    } catch (err) {
      try {
        await this.stop();
      } catch (stopErr) {
        this.log(`queue: stopping again after a failed start failed too: ${(stopErr as Error).stack ?? (stopErr as Error).message}`);
      }
      throw err;
    }
  }

  /** start() without its undo. */
  private async scan(): Promise<void> {
    // the directories again if making them failed before (the fault may be fixed by now)
    this.dirsMade = this.dirsMade.catch(() => this.makeDirs());
    await this.dirsMade;
    await this.flushUnlinks();
    this.stopped = false;
    // stop() ended the probes of a queue that refuses mail: resume them
    if (!this.accepting) this.scheduleProbe();
    for (const name of await fsp.readdir(this.tmpDir)) {
      const file = path.join(this.tmpDir, name);
      if (this.activeTemps.has(file)) continue;
      await fsp.rm(file, { force: true, recursive: true });
    }
    const names = (await fsp.readdir(this.queueDir)).filter((n) => !this.committing.has(path.join(this.queueDir, n)));
    // .msg files first: a readable one holds its message (a copy of it in a segment is then ignored); an unreadable
    // one is moved aside and its message is taken from a segment if one holds it
    const msgs = new Set<string>();
    const deletedMsgs: string[] = [];
    for (const id of names.filter((n) => n.endsWith('.msg')).map((n) => n.slice(0, -4)).sort()) {
      if (this.messages.has(id)) {
        msgs.add(id);
        continue;
      }
      try {
        const msg = await this.load(id);
        msgs.add(id);
        if (msg === 'deleted') deletedMsgs.push(id);
        else this.messages.set(id, msg);
      } catch (err) {
        await this.quarantine(id, err as Error);
      }
    }
    // a .msg the administrator deleted (its tombstone written, the unlink lost in a crash) goes now, durably, before
    // any segment loads: a segment that still records it keeps the tombstone and removes it only after itself
    if (deletedMsgs.length > 0) {
      for (const id of deletedMsgs) {
        await unlinkQuietly(path.join(this.queueDir, `${id}.msg`));
        msgs.delete(id);
      }
      await this.dirSync.sync();
    }
    // then segments; their records' .state files are not orphans
    const inSegments = new Set<string>();
    for (const name of names.filter((n) => n.endsWith('.seg')).sort()) {
      const file = path.join(this.queueDir, name);
      const known = this.segments.get(file);
      if (known) {
        // written or loaded by this queue before: its live messages are in memory already
        for (const id of known.ids) inSegments.add(id);
        continue;
      }
      try {
        for (const id of await this.loadSegment(file, msgs)) inSegments.add(id);
      } catch (err) {
        await this.quarantineFile(file, err as Error);
      }
    }
    for (const name of names) {
      const dot = name.lastIndexOf('.');
      const id = name.slice(0, dot);
      if (name.slice(dot + 1) === 'state' && !msgs.has(id) && !inSegments.has(id)) await fsp.unlink(path.join(this.queueDir, name)).catch(() => {});
    }
    // ids sort by arrival: list() shows, and delivery takes, the oldest first (segments and .msg files were loaded apart)
    const byArrival = [...this.messages.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    this.messages.clear();
    for (const msg of byArrival) this.messages.set(msg.id, msg);
    this.running = true;
    for (const msg of byArrival) this.schedule(msg);
    this.pump();
    const every = Math.max(250, (this.opts.segmentTombstoneAfterMs ?? 5000) / 2);
    if (this.tombstoneTimer !== null) clearInterval(this.tombstoneTimer);
    this.tombstoneTimer = setInterval(() => this.tombstoneOld(), every);
    this.tombstoneTimer.unref();
  }

  /**
   * Loads the messages of a segment found at start, except those with their own .msg (copied out before a crash) and
   * those deleted by the administrator (a "deleted" state). Returns the ids of every record (their .state files are
   * kept); a segment with nothing left is removed.
   */
  private async loadSegment(file: string, msgFiles: Set<string>): Promise<string[]> {
    const records = parseSegment(await fsp.readFile(file), file);
    // (its age is the file's: one found after a crash is as old as it is, not new)
    const bornAt = (await fsp.stat(file)).mtimeMs;
    const seg: Segment = { file, ids: records.map((r) => r.id), live: 0, stateFiles: [], dying: false, bornAt, gone: [] };
    const loaded: QueuedMessage[] = [];
    for (const r of records) {
      const stateFile = path.join(this.queueDir, `${r.id}.state`);
      if (msgFiles.has(r.id) || this.messages.has(r.id)) {
        // its own .msg holds it; a tombstone of it (written while this segment lived) goes after the segment
        if (msgFiles.has(r.id) && (await isTombstone(stateFile))) seg.stateFiles.push(stateFile);
        // copied out of this segment: a removal by the administrator must tombstone it while the segment lives
        const copied = this.messages.get(r.id);
        if (copied && !copied.seg) copied.origin ??= seg;
        continue;
      }
      const msg = await this.fromEnvelope(r.id, r.json, file, seg, r.dataOffset, r.dataSize);
      // only a tombstone is the segment's to remove; a live message's state goes with the message (remove(), or its
      // own .msg after a copy)
      if (msg === 'deleted') seg.stateFiles.push(stateFile);
      else loaded.push(msg);
    }
    seg.live = loaded.length + 1;
    this.segments.set(file, seg);
    for (const m of loaded) this.messages.set(m.id, m);
    void this.release(seg);
    return records.map((r) => r.id);
  }

  private async load(id: string): Promise<QueuedMessage | 'deleted'> {
    if (!ID_PATTERN.test(id)) throw new Error(`"${id}" is not a queue id`);
    const file = path.join(this.queueDir, `${id}.msg`);
    const { json, dataSize } = await readTrailer(file);
    return this.fromEnvelope(id, json, file, null, 0, dataSize);
  }

  /** A message read from disk: its envelope JSON, then its .state if it has one ('deleted' when the state says so). */
  private async fromEnvelope(id: string, json: string, file: string, seg: Segment | null, offset: number, dataSize: number): Promise<QueuedMessage | 'deleted'> {
    const t = JSON.parse(json) as TrailerJson;
    if (t.v !== 1 || t.id !== id || !t.envelope || !Array.isArray(t.envelope.to)) throw new Error(`${file}: record is not a version 1 envelope for ${id}`);
    const msg = queuedMessage({
      id,
      file,
      seg,
      offset,
      envelope: t.envelope,
      kind: t.kind === 'dsn' ? 'dsn' : 'message',
      size: dataSize,
      nextAttemptAt: this.clock(),
      data: null,
      hasState: true,
    });
    let state: StateFile | null = null;
    try {
      state = JSON.parse(await fsp.readFile(path.join(this.queueDir, `${id}.state`), 'utf8')) as StateFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') msg.hasState = false;
      else this.log(`queue: state of ${id} unreadable (${(err as Error).message}); retrying all its recipients`);
    }
    if (state && state.v === 1 && state.deleted && !state.returning) return 'deleted';
    if (state && state.v === 1) {
      // a return asked for before the stop or crash: it is carried out, the message is not delivered (a file of this
      // relay says deleted too, for older relays; one written before that by the relay that added `returning` not)
      if (state.returning) msg.removed = 'bounce';
      msg.attempts = state.attempts;
      if (typeof state.steps === 'number' && state.steps >= 0 && state.steps <= state.attempts) msg.steps = state.steps;
      msg.nextAttemptAt = state.nextAttemptAt;
      msg.lastError = state.lastError;
      for (const [to, r] of Object.entries(state.rcpts ?? {})) if (msg.rcpts.has(to)) msg.rcpts.set(to, r);
    }
    return msg;
  }

  /** A message file that cannot be read is moved aside (never deleted) and reported. */
  private async quarantine(id: string, err: Error): Promise<void> {
    const dir = path.join(this.dir, 'corrupt');
    await fsp.mkdir(dir, { recursive: true });
    for (const ext of ['msg', 'state']) {
      await fsp.rename(path.join(this.queueDir, `${id}.${ext}`), path.join(dir, `${id}.${ext}`)).catch(() => {});
    }
    this.log(`queue: ${id} cannot be read (${err.message}); moved to ${dir} for inspection`);
  }

  /** A segment that cannot be read is moved aside (never deleted) and reported. */
  private async quarantineFile(file: string, err: Error): Promise<void> {
    const dir = path.join(this.dir, 'corrupt');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.rename(file, path.join(dir, path.basename(file))).catch(() => {});
    this.log(`queue: ${path.basename(file)} cannot be read (${err.message}); moved to ${dir} for inspection`);
  }

  /** Persists a message's delivery state (attempts, recipients done, a removal the administrator asked for). */
  private async saveState(msg: QueuedMessage): Promise<void> {
    const state: StateFile = {
      v: 1,
      ...(msg.removed === 'delete' ? { deleted: true as const } : msg.removed === 'bounce' ? { deleted: true as const, returning: true as const } : {}),
      attempts: msg.attempts,
      ...(msg.steps !== undefined && msg.steps !== msg.attempts ? { steps: msg.steps } : {}),
      nextAttemptAt: msg.nextAttemptAt,
      lastError: msg.lastError,
      rcpts: Object.fromEntries(msg.rcpts),
    };
    msg.hasState = true;
    await writeFileAtomic(this.tmpDir, path.join(this.queueDir, `${msg.id}.state`), JSON.stringify(state), this.dirSync);
  }

  /**
   * A message of a segment that stays queued after its first attempt gets its own .msg (durable before the segment
   * may go), so segments live for seconds, not for the days a deferred message may wait. Returns the segment to
   * release once the message's state is saved; null when it has no segment or the copy failed (it then stays in the
   * segment, which stays too, and the next attempt tries again).
   */
  private async moveToOwnFile(msg: QueuedMessage, retained: Buffer | null): Promise<Segment | null> {
    const seg = msg.seg;
    if (!seg) return null;
    try {
      let data = retained;
      if (!data) {
        data = Buffer.alloc(msg.size);
        const fh = await fsp.open(seg.file, 'r');
        try {
          for (let off = 0; off < msg.size; ) {
            const { bytesRead } = await fh.read(data, off, msg.size - off, msg.offset + off);
            if (bytesRead === 0) throw new Error(`${seg.file} ends inside message ${msg.id}`);
            off += bytesRead;
          }
        } finally {
          await fh.close();
        }
      }
      const target = path.join(this.queueDir, `${msg.id}.msg`);
      const trailer: TrailerJson = { v: 1, id: msg.id, kind: msg.kind, envelope: msg.envelope };
      await writeFileAtomic(this.tmpDir, target, [data, encodeTrailer(JSON.stringify(trailer))], this.dirSync);
      msg.file = target;
      msg.seg = null;
      msg.origin = seg;
      msg.offset = 0;
      return seg;
    } catch (err) {
      this.log(`queue: cannot copy ${msg.id} out of ${path.basename(seg.file)} (${(err as Error).message}); it stays there`);
      return null;
    }
  }

  /**
   * Removes a message from disk and memory (delivered, bounced or deleted). A message of a segment leaves it to the
   * segment's last message to unlink the file. A removal by the administrator (delete, return to sender) must survive
   * a crash, and it has when this resolves (its answer waits for it): while a segment still records the message (it
   * lives there, or was copied out of it), a "deleted" state (tombstone) is written first and outlives the segment;
   * otherwise its file (its own .msg, or the segment it was alone in) is unlinked at once and the directory fsynced. A
   * delivered or bounced message may come back after a crash (at least once): its file goes in the next burst.
   * Resolves with null, or (a removal by the administrator) why it could not be made durable (a restart may queue the
   * message again); never rejects.
   */
  private async remove(msg: QueuedMessage): Promise<string | null> {
    this.messages.delete(msg.id);
    if (msg.removed === 'delete') {
      // it has left the queue by an administrator's delete: said once, here (a return says `bounced` instead)
      const to = [...msg.rcpts].filter(([, r]) => r.status === 'pending').map(([rcpt]) => rcpt);
      this.opts.bus.emit({ kind: 'deleted', sessionId: msg.envelope.sessionId || null, ip: msg.envelope.clientIp || null, queueId: msg.id, to, by: msg.removedBy ?? null });
    }
    for (const key of msg.connDests ?? []) this.dests.get(key)?.connWaiting.delete(msg);
    msg.connDests = undefined;
    this.dropData(msg);
    const stateFile = path.join(this.queueDir, `${msg.id}.state`);
    const seg = msg.seg;
    const origin = msg.origin && this.segments.has(msg.origin.file) ? msg.origin : null;
    msg.seg = null;
    msg.origin = null;
    const byAdmin = msg.removed !== null;
    let tombstoneKept = false;
    let unrecorded: string | null = null;
    // a segment that outlives the message because another of it is still in a long first attempt (a server that
    // never greets, a tarpit) would bring it back at a crash, once per crash: a chaos test saw four copies of some
    // messages in 90 s with three kills. Past segmentTombstoneAfterMs it gets the administrator's tombstone too
    const holder = seg && seg.live > 1 ? seg : origin;
    const old = holder !== null && Date.now() - holder.bornAt >= (this.opts.segmentTombstoneAfterMs ?? 5000);
    if ((byAdmin || old) && ((seg && seg.live > 1) || origin)) {
      // the origin must not go while the tombstone is written (it would leave the tombstone behind)
      const pinned = origin && !origin.dying ? origin : null;
      if (pinned) pinned.live++;
      const state: StateFile = { v: 1, deleted: true, attempts: msg.attempts, nextAttemptAt: msg.nextAttemptAt, lastError: msg.lastError, rcpts: Object.fromEntries(msg.rcpts) };
      try {
        await writeFileAtomic(this.tmpDir, stateFile, JSON.stringify(state), this.dirSync);
        msg.hasState = true;
        if (origin && this.segments.has(origin.file)) {
          // the origin's record of it outlives this call: the tombstone goes after the origin
          origin.stateFiles.push(stateFile);
          tombstoneKept = true;
        }
        // else the origin went meanwhile: the tombstone goes after the .msg, below
      } catch (err) {
        this.log(`queue: cannot record the removal of ${msg.id} (${(err as Error).message}); a crash before its segment goes would queue it again`);
        if (byAdmin) unrecorded = `cannot write its tombstone: ${(err as Error).message}`;
      }
      if (pinned) void this.release(pinned);
    }
    // young: its segment is likely to go soon; if it lives on, tombstoneOld() writes the "deleted" state then (after
    // this call is done with the message's own state file, which it would otherwise race)
    const young = holder !== null && !byAdmin && !old;
    if (seg) {
      if (young) seg.gone.push(msg.id);
      if (msg.hasState) seg.stateFiles.push(stateFile);
      // alone in it: the segment goes now, durably (else the tombstone above is what makes the removal durable)
      const gone = this.release(seg, byAdmin);
      return byAdmin ? (unrecorded ?? (await gone)) : null;
    }
    if (byAdmin) {
      // the message file goes first, durably (which also makes an origin's unlink durable); only then its state, so
      // that no crash finds the file without its tombstone
      try {
        await unlinkAsync(msg.file).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        await this.dirSync.sync();
      } catch (err) {
        this.log(`queue: cannot remove ${msg.file}: ${(err as Error).message}`);
        return unrecorded ?? `cannot remove ${path.basename(msg.file)}: ${(err as Error).message}`;
      }
      if (msg.hasState && !tombstoneKept) await unlinkQuietly(stateFile);
      return unrecorded;
    }
    // (a tombstone its origin segment keeps stays until that segment goes)
    if (msg.hasState && !tombstoneKept) await unlinkQuietly(stateFile);
    if (young && origin && this.segments.get(origin.file) === origin) origin.gone.push(msg.id);
    this.unlinkSoon(msg.file);
    return null;
  }

  /**
   * Writes the "deleted" state of the messages delivered out of a segment while it was young, once it has lived
   * segmentTombstoneAfterMs and still holds others (one in a long first attempt: a server that never greets, a
   * tarpit): a crash then does not deliver them again. Most segments go before: no write per message for them.
   * Run every half threshold (at least 250 ms) while the queue runs; real time (an age on disk, not a schedule).
   */
  private tombstoneOld(): void {
    const limit = this.opts.segmentTombstoneAfterMs ?? 5000;
    const now = Date.now();
    for (const seg of this.segments.values()) {
      if (seg.dying || seg.gone.length === 0 || seg.live === 0 || now - seg.bornAt < limit) continue;
      const ids = seg.gone.splice(0);
      // pinned while its tombstones are written (they must be in stateFiles before it goes, to go after it)
      seg.live++;
      this.track(
        (async () => {
          for (const id of ids) {
            const stateFile = path.join(this.queueDir, `${id}.state`);
            const state: StateFile = { v: 1, deleted: true, attempts: 0, nextAttemptAt: 0, lastError: null, rcpts: {} };
            try {
              await writeFileAtomic(this.tmpDir, stateFile, JSON.stringify(state), this.dirSync);
              seg.stateFiles.push(stateFile);
            } catch (err) {
              this.log(`queue: cannot record that ${id} was delivered (${(err as Error).message}); a crash before ${path.basename(seg.file)} goes would deliver it again`);
            }
          }
        })().finally(() => void this.release(seg)),
      );
    }
  }

  /**
   * The .msg of a finished message is unlinked within UNLINK_DELAY_MS, together with the others finished meanwhile
   * (real time on purpose, not the injected timers: this batches disk calls, it is not a delivery schedule):
   * unlinks sent to the thread pool in one burst cost a fraction of one sent alone (a pool thread woken per call,
   * measured at ~60 us each under load). A crash before the unlink delivers the message again (at least once, as a
   * crash between delivery and unlink always could); start() and stop() unlink what is pending first.
   */
  private unlinkSoon(file: string): void {
    this.unlinks.push(file);
    if (this.unlinks.length >= UNLINK_BURST) void this.flushUnlinks();
    else if (this.unlinkTimer === null) {
      this.unlinkTimer = setTimeout(() => void this.flushUnlinks(), UNLINK_DELAY_MS);
      this.unlinkTimer.unref();
    }
  }

  private flushUnlinks(): Promise<void> {
    if (this.unlinkTimer !== null) clearTimeout(this.unlinkTimer);
    this.unlinkTimer = null;
    const files = this.unlinks;
    this.unlinks = [];
    const segs = this.dyingSegments.splice(0);
    if (files.length > 0) {
      const failed = new Set<string>();
      const done = Promise.all(
        files.map((file) =>
          unlinkAsync(file).catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT') return;
            failed.add(file);
            this.log(`queue: cannot remove ${file}: ${err.message}`);
          }),
        ),
        // a segment whose unlink failed stays known, with its tombstones (the next start() sees to it)
      ).then(() => Promise.all(segs.filter((seg) => !failed.has(seg.file)).map((seg) => this.segmentGone(seg))));
      this.unlinking = Promise.all([this.unlinking, done]).then(() => {});
    }
    return this.unlinking;
  }

  /** The raw message bytes (the trailer excluded): from memory while retained, else their place in the spool. */
  private dataSource(msg: QueuedMessage): DataSource {
    if (msg.data) return { kind: 'buffer', bytes: msg.data };
    return { kind: 'file', file: msg.file, offset: msg.offset, size: msg.size };
  }

  /** The scheduler's destination key for a recipient under `config` (cached per config object and domain). */
  private destKey(rcpt: string, config: Config): string {
    if (this.keyCache?.config !== config || this.keyCache.byDomain.size > 100_000) this.keyCache = { config, byDomain: new Map() };
    const domain = domainOf(rcpt);
    let key = this.keyCache.byDomain.get(domain);
    if (key === undefined) {
      key = destinationFor(rcpt, config).key;
      this.keyCache.byDomain.set(domain, key);
    }
    return key;
  }

  /** The destinations of a message's recipients still waiting (each once, in recipient order). */
  private waitingDestinations(msg: QueuedMessage, config: Config): string[] {
    const keys: string[] = [];
    for (const [rcpt, r] of msg.rcpts) {
      if (r.status !== 'pending') continue;
      const key = this.destKey(rcpt, config);
      if (!keys.includes(key)) keys.push(key);
    }
    return keys;
  }

  private dest(key: string): DestState {
    let d = this.dests.get(key);
    if (!d) {
      if (this.dests.size >= this.destsPruneAt) this.pruneDests();
      this.dests.set(key, (d = { lastError: null, down: null, probing: false, connWaiting: new Set(), up: false }));
    }
    return d;
  }

  /**
   * Forgets destinations no queued message waits for and no job is running or queued for (a relay sending by MX
   * meets a new destination per domain: without this, one entry per domain ever delivered to, for ever). A down one
   * is forgotten too: the next message for it tries once and finds out again. One pass over the queue, run when the
   * table has doubled since the last one, so its cost is spread over the entries it made.
   */
  private pruneDests(): void {
    const config = this.opts.config();
    const waiting = new Set<string>();
    for (const m of this.messages.values()) for (const k of this.waitingDestinations(m, config)) waiting.add(k);
    for (const [k, d] of this.dests) {
      if (!waiting.has(k) && !d.probing && !this.destActive.has(k) && !this.destQueues.has(k)) this.dests.delete(k);
    }
    this.destsPruneAt = Math.max(16, 2 * this.dests.size);
  }

  list(): QueueItem[] {
    const config = this.opts.config();
    return [...this.messages.values()].map((m) => this.item(m, config));
  }

  /**
   * One page of the queue, oldest first (then by id), of every message or of those with a recipient waiting for
   * `destination`, and how many there are. Only the page's items are built: queue.list built and sorted all of them,
   * about 170 ms of the event loop per call with 100,000 queued messages (every SMTP session waited), every 5 s for
   * each console on the Queue view. The messages are kept nearly in arrival order, which the sort finds in one pass.
   */
  page(offset: number, limit: number, destination?: string): { items: QueueItem[]; total: number } {
    const config = this.opts.config();
    let refs = [...this.messages.values()];
    if (destination !== undefined) refs = refs.filter((m) => this.waitingDestinations(m, config).includes(destination));
    refs.sort((a, b) => a.envelope.receivedAt - b.envelope.receivedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { items: refs.slice(offset, offset + limit).map((m) => this.item(m, config)), total: refs.length };
  }

  private item(m: QueuedMessage, config: Config): QueueItem {
    const to: string[] = [];
    const done: QueueItem['done'] = [];
    for (const [addr, r] of m.rcpts) {
      if (r.status === 'pending') to.push(addr);
      else done.push({ to: addr, status: r.status });
    }
    return {
      id: m.id,
      from: m.envelope.from,
      to,
      done,
      size: m.size,
      receivedAt: m.envelope.receivedAt,
      kind: m.kind,
      // (delivering until the outcome of an attempt that connected is recorded: a removal pending until then, too)
      status: beingDelivered(m) ? 'delivering' : m.attempts > 0 || m.lastError !== null ? 'deferred' : 'queued',
      attempts: m.attempts,
      nextAttemptAt: m.nextAttemptAt,
      lastError: m.lastError,
      removal: m.removed,
      destinations: this.waitingDestinations(m, config),
    };
  }

  /**
   * Every queued message (or every one with a recipient waiting for `destination`) is tried now, as retry(id) does.
   * Messages being delivered are counted in `delivering` and left alone; removed ones and those whose removal is
   * pending are skipped.
   * A destination that is down still takes one connection (the probe: "is it back?"); its other messages are not tried
   * until that probe answers (then they are brought forward at once), as Postfix holds back mail for a dead destination.
   * `heldBack` counts the messages made due that will not be tried now for that reason (every destination they wait
   * for is down and another message is its probe, or a probe is under way already), `down` says which destinations
   * (the first 10 by messages): the administrator asked for "now" and must not be told every message goes now.
   * Both are absent when no destination held a message back (every message made due is tried now).
   */
  retryAll(filter?: { destination?: string }): RetryAllResult {
    const config = this.opts.config();
    const only = filter?.destination;
    let scheduled = 0;
    let delivering = 0;
    let heldBack = 0;
    // per destination that is down: the retried messages waiting for it, and how many of them wait for its probe
    const down = new Map<string, { messages: number; heldBack: number }>();
    for (const msg of [...this.messages.values()]) {
      if (msg.removed || msg.answer) continue;
      const keys = this.waitingDestinations(msg, config);
      if (only !== undefined && !keys.includes(only)) continue;
      if (beingDelivered(msg)) {
        delivering++;
        continue;
      }
      // held back: every destination it waits for is down and holds it back (read before retryNow moves the probe
      // forward, which may start it at once: the first message of a destination that is down is its probe)
      let held = keys.length > 0;
      for (const key of keys) {
        const d = this.dests.get(key);
        if (!d?.down) {
          held = false;
          continue;
        }
        let e = down.get(key);
        let probe = false;
        if (!e) {
          // the first message for it is its probe, unless one is under way already
          down.set(key, (e = { messages: 0, heldBack: 0 }));
          probe = !d.probing;
        }
        e.messages++;
        if (probe) held = false;
        else e.heldBack++;
      }
      if (held) heldBack++;
      // (one whose attempt waits for a free connection is due already; retryNow still probes a destination of it that is
      // down now, as for any other: a job of the same attempt may have been deferred until that probe)
      this.retryNow(msg);
      scheduled++;
    }
    const list = [...down]
      .sort((a, b) => b[1].messages - a[1].messages || (a[0] < b[0] ? -1 : 1))
      .slice(0, 10)
      .map(([destination, e]) => ({ destination, messages: e.messages, heldBack: e.heldBack }));
    // (absent when no destination held a message back: every message made due is tried now)
    return [...down.values()].some((e) => e.heldBack > 0) ? { scheduled, delivering, heldBack, down: list } : { scheduled, delivering };
  }

  /**
   * The queue at a glance, for the stats tick (once a second): computed afresh up to SUMMARY_FRESH_MAX messages,
   * past that at most every SUMMARY_CACHE_MS (one pass over the queue); `down` and `lastError` are always current.
   */
  summary(): QueueSummary {
    const now = this.clock();
    let c = this.summaryCache;
    if (!c || this.messages.size <= SUMMARY_FRESH_MAX || now - c.at >= SUMMARY_CACHE_MS || now < c.at) {
      const config = this.opts.config();
      let deferred = 0;
      let oldest: number | null = null;
      const per = new Map<string, { messages: number; nextAttemptAt: number | null; messageError: string | null; later: number }>();
      for (const m of this.messages.values()) {
        if (oldest === null || m.envelope.receivedAt < oldest) oldest = m.envelope.receivedAt;
        // (one not tried because its destination is down counts: it waits because of a failure)
        // (one whose attempt waits for a free connection is not being delivered: no session has started for it)
        const delivering = beingDelivered(m);
        if ((m.attempts > 0 || m.lastError !== null) && !delivering) deferred++;
        const keys = this.waitingDestinations(m, config);
        for (const key of keys) {
          let e = per.get(key);
          if (!e) per.set(key, (e = { messages: 0, nextAttemptAt: null, messageError: null, later: 0 }));
          e.messages++;
          // (a message waiting for several destinations has one lastError, another destination's perhaps: its
          // recipient's own error for this one; a tryout saw eq.test's row show sf.test's DNS failure after a restart)
          if (e.messageError === null) e.messageError = keys.length === 1 ? m.lastError : rcptErrorFor(m, key, config);
          if (!delivering && (e.nextAttemptAt === null || m.nextAttemptAt < e.nextAttemptAt)) e.nextAttemptAt = m.nextAttemptAt;
          // (what a retry of it would bring forward: not being delivered, not waiting for a connection, not due yet)
          if (!m.delivering && !m.removed && !m.answer && m.nextAttemptAt > now) e.later++;
        }
      }
      const top = [...per].sort((a, b) => b[1].messages - a[1].messages || (a[0] < b[0] ? -1 : 1)).slice(0, 10);
      c = this.summaryCache = {
        at: now,
        value: { messages: this.messages.size, deferred, oldestReceivedAt: oldest, destinations: top.map(([destination, e]) => ({ destination, ...e })) },
      };
    }
    return {
      messages: c.value.messages,
      deferred: c.value.deferred,
      oldestReceivedAt: c.value.oldestReceivedAt,
      destinations: c.value.destinations.map((e) => {
        const d = this.dests.get(e.destination);
        const down = d?.down ?? null;
        // (the destination's own record is in memory: after a restart, until a job for it ends, a waiting message's)
        return {
          destination: e.destination,
          messages: e.messages,
          down: down !== null,
          lastError: d?.lastError ?? e.messageError,
          nextAttemptAt: down ? down.probeAt : e.nextAttemptAt,
          // (live, not cached: they change every moment under load)
          connections: this.destActive.get(e.destination) ?? 0,
          waitingForConnection: this.destQueues.get(e.destination)?.length ?? 0,
          scheduledLater: e.later,
        };
      }),
    };
  }

  /** Try now. false when the id is not queued; true (and nothing more) when it is being delivered right now. */
  retry(id: string): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    if (msg.delivering) return true;
    this.retryNow(msg);
    return true;
  }

  /**
   * An administrator's retry: the message is due now, ahead of its schedule (if it fails, its backoff stays where it
   * was: finishAttempt). A destination of it that is down may be probed now (one connection answers "is it back?"
   * for all its messages: if it is, they are brought forward).
   */
  private retryNow(msg: QueuedMessage): void {
    const now = this.clock();
    for (const key of this.waitingDestinations(msg, this.opts.config())) {
      const d = this.dests.get(key);
      // (not while a probe runs: it answers the question already, and its jobs' "not tried" times must stay ahead;
      // set back to now under a running probe, they fell due at once, again and again, until the probe ended)
      if (d?.down && !d.probing && d.down.probeAt > now) {
        d.down.scheduledProbeAt ??= d.down.probeAt;
        d.down.probeAt = now;
      }
    }
    this.bringForward(msg, now);
  }

  /** Due now, ahead of its schedule: the time it had is kept for the case this attempt fails. */
  private bringForward(msg: QueuedMessage, now: number): void {
    // (a time that only waited for its destination's probe is no schedule to go back to: if this attempt fails, the
    // delay of its unchanged step from now; 0 says "ahead of the schedule, no time kept")
    if (msg.early == null) msg.early = msg.skipped ? 0 : msg.nextAttemptAt > now ? msg.nextAttemptAt : null;
    msg.nextAttemptAt = now;
    this.schedule(msg);
  }

  /**
   * Deletes a message without a bounce. One not being delivered goes at once: answered 'removed' once that is durable
   * (see remove()). During a delivery the attempt is not cut ('pending'): the "deleted" state is written before the
   * answer (a crash does not bring the message back; if it cannot be written nothing changes: 'failed'), then the
   * attempt's jobs that have not connected yet are dropped and no job of it makes a new connection, and the message
   * goes when the attempt ends, its delivered recipients reported as usual. A return pending during a delivery is not
   * replaced ('conflict'); one that waits for its DSN to be stored is.
   */
  delete(id: string, by: string | null = null): Promise<Removal> {
    return this.removal(id, 'delete', by);
  }

  /**
   * Returns a message to its sender (a DSN for every recipient not yet delivered) and removes it. One not being
   * delivered: answered once the DSN is stored and the message is gone, durably ('removed'), or 'failed' if the DSN
   * could not be stored (nothing changed then). During a delivery: 'pending', as delete() (its delivered recipients
   * stay delivered, the others are in the DSN); the "returning" state is on disk before the answer.
   */
  bounce(id: string): Promise<Removal> {
    return this.removal(id, 'bounce');
  }

  private async removal(id: string, kind: 'delete' | 'bounce', by: string | null = null): Promise<Removal> {
    const msg = this.messages.get(id);
    if (!msg) return { result: 'not-found' };
    // (the first to ask is named: a repeat while it is pending does not change who deleted it)
    if (kind === 'delete' && msg.removed !== 'delete') msg.removedBy = by;
    const other = kind === 'delete' ? 'bounce' : 'delete';
    // one being carried out now: a repeat gets its answer, the other kind changes nothing
    if (msg.answer) return msg.answer.kind === kind ? msg.answer.promise : { result: 'conflict', removal: other };
    if (msg.removed === kind) return this.pendingAnswer(msg, kind);
    // (a return that waits for its DSN to be stored, not being delivered, is replaced by a delete)
    if (msg.removed === other && (kind === 'bounce' || msg.delivering)) return { result: 'conflict', removal: other };

    if (!msg.delivering) {
      msg.removed = kind;
      if (kind === 'bounce') return this.carryOut(msg, kind, this.startBounce(msg, { direct: true }));
      return this.carryOut(
        msg,
        kind,
        this.remove(msg).then((unrecorded): AttemptEnd => ({ returnFailed: null, unrecorded, returned: false })),
      );
    }
    const a = msg.attempt;
    if (!a) {
      // its attempt is being recorded (no connection left): the end of it carries the removal out (finishAttempt)
      msg.removed = kind;
      return this.carryOut(msg, kind, msg.finishing ?? Promise.reject(new Error(`${id} is being delivered without an attempt`)));
    }
    const queued = this.queuedJobs(msg);
    if (a.jobsLeft > queued) {
      // connections under way: pending, recorded on disk before the answer and before it changes anything (meanwhile
      // no job of it makes a new connection, and the attempt's end waits: both wait for the write; if it fails, they
      // go on as if nothing had been asked)
      msg.removed = kind;
      const write = this.saveState(msg).then(
        () => null,
        (err: Error) => {
          this.log(`queue: cannot record the ${kind === 'bounce' ? 'return' : 'deletion'} of ${msg.id} (${err.message}); not done: its delivery goes on`);
          if (msg.removed === kind) msg.removed = null;
          return err.message;
        },
      );
      msg.persisting = write;
      void write.then(() => {
        if (msg.persisting === write) msg.persisting = null;
      });
      const failed = await write;
      if (failed !== null) return { result: 'failed', what: 'record', reason: failed };
      // its jobs still waiting for a connection slot never connect (the running ones check before a new connection)
      this.dropUnstarted(msg);
      return this.pendingAnswer(msg, kind);
    }
    // no connection under way, only jobs waiting for a slot: they leave their queues, the attempt ends now and carries
    // the removal out (a return whose DSN cannot be stored puts them back: nothing changed)
    msg.removed = kind;
    const dropped = this.takeQueued(msg);
    a.jobsLeft -= dropped.length;
    return this.carryOut(msg, kind, this.endAttempt(msg, { direct: true, dropped }));
  }

  /** The answer to a removal being carried out now, once `end` (which carries it out) is done; repeats get it too. */
  private carryOut(msg: QueuedMessage, kind: 'delete' | 'bounce', end: Promise<AttemptEnd>): Promise<Removal> {
    const promise = end.then(
      (e) => this.answerAfter(msg, kind, e),
      (err: Error): Removal => ({ result: 'failed', what: 'internal', reason: err.message }),
    );
    const answer = { kind, promise };
    msg.answer = answer;
    // (settled, with a failure too: a later request is a new one)
    void promise.then(() => {
      if (msg.answer === answer) msg.answer = null;
    });
    return promise;
  }

  /** What a removal came to, once the end of the attempt (or return) that carried it out is recorded. */
  private answerAfter(msg: QueuedMessage, kind: 'delete' | 'bounce', e: AttemptEnd): Removal {
    const returned = kind === 'bounce' ? { returned: e.returned } : {};
    if (this.messages.get(msg.id) !== msg) return e.unrecorded !== null ? { result: 'unrecorded', reason: e.unrecorded, ...returned } : { result: 'removed', ...returned };
    // (a pending return whose DSN could not be stored: tried again)
    if (msg.removed === kind) return { result: 'pending', removal: kind };
    if (e.returnFailed !== null) return { result: 'failed', what: 'bounce', reason: e.returnFailed };
    return { result: 'failed', what: 'internal', reason: 'the removal did not happen' };
  }

  /**
   * The answer to a removal of the kind already pending: the same, once its record on disk is written (or 'failed' if
   * that failed: nothing changed). During the end of its attempt (no connection left, it is being carried out, in
   * milliseconds), once that is done.
   */
  private async pendingAnswer(msg: QueuedMessage, kind: 'delete' | 'bounce'): Promise<Removal> {
    if (msg.persisting) {
      const failed = await msg.persisting;
      if (failed !== null) return { result: 'failed', what: 'record', reason: failed };
    }
    if (this.messages.get(msg.id) === msg && msg.delivering && !msg.attempt && msg.finishing) {
      try {
        return this.answerAfter(msg, kind, await msg.finishing);
      } catch (err) {
        return { result: 'failed', what: 'internal', reason: (err as Error).message };
      }
    }
    // (gone meanwhile: its attempt ended and carried it out)
    if (this.messages.get(msg.id) !== msg) return this.answerAfter(msg, kind, msg.lastEnd ?? { returnFailed: null, unrecorded: null, returned: false });
    return { result: 'pending', removal: kind };
  }

  /** How many jobs of the message's attempt wait in their destination queues for a connection slot. */
  private queuedJobs(msg: QueuedMessage): number {
    let n = 0;
    for (const key of msg.attempt?.keys ?? []) n += this.destQueues.get(key)?.count((job) => job.msg === msg) ?? 0;
    return n;
  }

  /** Takes the jobs of the message's attempt that wait for a connection slot out of their queues. */
  private takeQueued(msg: QueuedMessage): Job[] {
    const taken: Job[] = [];
    for (const key of msg.attempt?.keys ?? []) {
      const fifo = this.destQueues.get(key);
      if (!fifo) continue;
      fifo.removeWhere((job) => job.msg === msg && taken.push(job) > 0);
      if (fifo.length === 0) this.destQueues.delete(key);
    }
    return taken;
  }

  /**
   * A pending removal is recorded: the attempt's jobs that have not started leave their queues (no connection is made
   * for them). When no job of it is left running, the attempt ends now.
   */
  private dropUnstarted(msg: QueuedMessage): void {
    const a = msg.attempt;
    if (!a) return;
    const dropped = this.takeQueued(msg).length;
    if (dropped === 0) return;
    a.jobsLeft -= dropped;
    if (a.jobsLeft === 0) this.endAttempt(msg);
  }

  /**
   * Records the end of an attempt (finishAttempt), known as the message's `finishing` until it is done. If that fails
   * (a bug: logged), the message is not left stuck "delivering": it is tried again after the first retry delay (a
   * return asked for now is not done then: its answer says so).
   */
  private endAttempt(msg: QueuedMessage, opts: EndOptions = {}): Promise<AttemptEnd> {
    const end = this.finishAttempt(msg, opts).then(
      (e) => {
        msg.lastEnd = e;
        return e;
      },
      (err: Error) => {
        if (this.messages.get(msg.id) === msg && msg.delivering && !msg.attempt) {
          if (opts.direct && msg.removed === 'bounce') msg.removed = null;
          msg.delivering = false;
          msg.wrapUp = false;
          msg.nextAttemptAt = Math.max(msg.nextAttemptAt, this.clock() + retryDelay(1, this.opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS, this.opts.jitter ?? 0.1, this.opts.random ?? Math.random));
          this.schedule(msg);
        }
        throw err;
      },
    );
    msg.finishing = end;
    const done = () => {
      if (msg.finishing === end) msg.finishing = null;
    };
    end.then(done, done);
    this.track(end);
    return end;
  }

  /**
   * Returns a message that no attempt is delivering. `direct`: asked for now, and answered with its outcome (a DSN
   * that cannot be stored leaves everything as it was); otherwise a pending return, kept pending on failure.
   */
  private startBounce(msg: QueuedMessage, opts: EndOptions = {}): Promise<AttemptEnd> {
    msg.delivering = true;
    msg.attempt = { jobsLeft: 0, outcomes: [], started: false, keys: [] };
    return this.endAttempt(msg, opts);
  }

  /**
   * Stops delivering (waits up to stopTimeoutMs for sessions under way, then closes them); everything stays on disk.
   * Commits begun before finish; later ones are refused (ESTOPPED) until start().
   */
  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
    if (this.tombstoneTimer !== null) clearInterval(this.tombstoneTimer);
    this.tombstoneTimer = null;
    if (this.probeTimer !== null) this.timers.clearTimeout(this.probeTimer);
    this.probeTimer = null;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = null;
    // jobs that never started end as "not tried"
    for (const [key, fifo] of this.destQueues) {
      for (let job = fifo.shift(); job; job = fifo.shift()) {
        for (const rcpt of job.rcpts) job.msg.attempt?.outcomes.push(notTried(rcpt));
        this.jobDone(job.msg);
      }
      this.destQueues.delete(key);
    }
    for (let msg = this.readyList.shift(); msg; msg = this.readyList.shift()) msg.inReady = false;
    // work ending can start more (a job's end records its attempt): wait until none is left, or the time is up
    const settle = async (ms: number) => {
      const until = Date.now() + ms;
      while (this.work.size > 0 && Date.now() < until) {
        let t: NodeJS.Timeout | undefined;
        await Promise.race([Promise.allSettled([...this.work]), new Promise((r) => (t = setTimeout(r, until - Date.now())))]);
        clearTimeout(t);
      }
    };
    await settle(this.opts.stopTimeoutMs ?? 5000);
    if (this.work.size > 0) {
      for (const close of this.connections) close();
      await settle(2000);
    }
    await this.client.close();
    // commits begun before now finish (a DATA the SMTP front let finish, a bounce stored as an attempt ended, a
    // message still in a pending segment or streaming into its own file); one that begins from here on is refused
    // with ESTOPPED (a temporary error) and starts no commit worker: nothing would end it
    while (this.commitsUnderWay.size > 0) await Promise.allSettled([...this.commitsUnderWay]);
    await this.committer.shutDown();
    await this.flushUnlinks();
  }

  // ---- scheduling ----

  private track(p: Promise<unknown>): void {
    const tracked: Promise<void> = p.then(() => {}).catch((err: Error) => this.log(`queue: internal error: ${err.stack ?? err.message}`)).finally(() => this.work.delete(tracked));
    this.work.add(tracked);
  }

  private schedule(msg: QueuedMessage): void {
    // (a return that waits for its DSN to be stored is scheduled too: its next try is a return, never a delivery)
    if (!this.running || msg.delivering || msg.inReady || msg.removed === 'delete') return;
    if (msg.nextAttemptAt <= this.clock()) {
      msg.inReady = true;
      this.readyList.push(msg);
      this.pump();
    } else {
      if (msg.heapAt === msg.nextAttemptAt) {
        // its live entry is there already; the timer may not be (stop() clears it and keeps the entries: start() again)
        this.armTimer();
        return;
      }
      msg.heapAt = msg.nextAttemptAt;
      this.waiting.push(msg.nextAttemptAt, msg);
      // an entry goes stale when its message is retried by hand, deleted or rescheduled; drop them once they outnumber the queue
      if (this.waiting.length > 2 * this.messages.size + 16) {
        this.waiting.retain((at, m) => {
          if (this.messages.get(m.id) === m && m.nextAttemptAt === at && !m.delivering && !m.inReady) return true;
          if (m.heapAt === at) m.heapAt = null;
          return false;
        });
      }
      this.armTimer();
    }
  }

  /** @internal entries in the retry schedule, stale ones included (tests) */
  get scheduledEntries(): number {
    return this.waiting.length;
  }

  private armTimer(): void {
    const top = this.waiting.peekKey();
    if (top === undefined || !this.running) return;
    if (this.timerAt !== null && this.timerAt <= top) return;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timerAt = top;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.timerAt = null;
      this.onTimer();
    }, Math.min(Math.max(top - this.clock(), 0), 2_147_483_647));
  }

  private onTimer(): void {
    if (!this.running) return;
    const now = this.clock();
    for (let key = this.waiting.peekKey(); key !== undefined && key <= now; key = this.waiting.peekKey()) {
      const { value: msg } = this.waiting.pop()!;
      if (msg.heapAt === key) msg.heapAt = null;
      if (this.messages.get(msg.id) !== msg || msg.nextAttemptAt !== key || msg.delivering || msg.inReady) continue;
      msg.inReady = true;
      this.readyList.push(msg);
    }
    this.armTimer();
    this.pump();
  }

  /** Turns ready messages into per-destination jobs and starts jobs while the concurrency limits allow. */
  private pump(): void {
    if (!this.running) return;
    for (let msg = this.readyList.shift(); msg; msg = this.readyList.shift()) {
      msg.inReady = false;
      if (this.messages.get(msg.id) !== msg || msg.delivering || msg.removed === 'delete') continue;
      if (msg.removed === 'bounce') this.startBounce(msg);
      else this.beginAttempt(msg);
    }
    // Who gets a free connection slot: the waiting destination with the fewest connections open (ties in turn: one
    // that got a slot goes to the end of the line), and the last tenth of the slots only for a destination's first
    // connection. Handed out in the order destinations queued, slow servers that queued first took every slot that
    // came free (six tarpits held all 100 for minutes while mail for a healthy server waited without a connection);
    // taken in turn only, the healthy one got one slot per round of slow ones (its 20 messages took 4 minutes), and
    // twenty servers that never finish a reply, five connections each, could still take all 100 until the deadline.
    const reserve = Math.floor(this.concurrency / 10);
    while (this.active < this.concurrency) {
      const now = this.clock();
      let best: string | null = null;
      let bestActive = Infinity;
      for (const [key, fifo] of this.destQueues) {
        const d = this.dests.get(key);
        if (fifo.length > 0 && this.holdsBack(d, now)) {
          // down, its probe not due (or under way): its jobs are deferred without a connection, taking no slot
          for (let job = fifo.shift(); job; job = fifo.shift()) this.skip(key, job, d);
        }
        if (fifo.length === 0) {
          this.destQueues.delete(key);
          continue;
        }
        const open = this.destActive.get(key) ?? 0;
        const limit = d?.up ? this.perDestination : Math.min(this.perDestination, INITIAL_CONCURRENCY);
        if (open >= limit || open >= bestActive) continue;
        if (open > 0 && this.active >= this.concurrency - reserve) continue;
        best = key;
        bestActive = open;
        if (open === 0) break;
      }
      if (best === null) break;
      const fifo = this.destQueues.get(best);
      const job = fifo?.shift();
      // (a skip above ends attempts, which may have run pump() again meanwhile: look again)
      if (!fifo || !job) continue;
      const d = this.dests.get(best);
      if (d?.down) {
        // down, and its probe is due: this job is the one connection
        d.probing = true;
        job.probe = true;
        // (when the next probe would be if this one fails: the time jobs not tried meanwhile are given; for a probe
        // an administrator's retry asked for, the automatic schedule it had)
        if (d.down.scheduledProbeAt !== undefined) {
          job.manualProbe = true;
          d.down.probeAt = d.down.scheduledProbeAt;
          delete d.down.scheduledProbeAt;
        } else d.down.probeAt = now + this.probeInterval(d.down.failures + 1);
      }
      this.startJob(best, job);
      // (to the end of the line)
      this.destQueues.delete(best);
      if (fifo.length > 0) this.destQueues.set(best, fifo);
    }
  }

  private beginAttempt(msg: QueuedMessage): void {
    const config = this.opts.config();
    const groups = new Map<string, Job>();
    for (const [rcpt, r] of msg.rcpts) {
      if (r.status !== 'pending') continue;
      const dest = destinationFor(rcpt, config);
      const job = groups.get(dest.key);
      if (job) job.rcpts.push(rcpt);
      else groups.set(dest.key, { msg, dest, rcpts: [rcpt] });
    }
    msg.delivering = true;
    msg.attempt = { jobsLeft: groups.size, outcomes: [], started: false, keys: [...groups.keys()] };
    if (groups.size === 0) {
      this.endAttempt(msg);
      return;
    }
    const now = this.clock();
    for (const [key, job] of groups) {
      const d = this.dests.get(key);
      if (this.holdsBack(d, now)) {
        this.skip(key, job, d);
        continue;
      }
      let fifo = this.destQueues.get(key);
      if (!fifo) this.destQueues.set(key, (fifo = new Fifo<Job>()));
      fifo.push(job);
    }
  }

  private startJob(key: string, job: Job): void {
    this.active++;
    this.destActive.set(key, (this.destActive.get(key) ?? 0) + 1);
    job.msg.attempt!.started = true;
    const run = this.runJob(job)
      .catch((err: Error): Outcome[] => {
        this.log(`queue: delivery of ${job.msg.id} failed unexpectedly: ${err.stack ?? err.message}`);
        return job.rcpts.map((rcpt) => ({ rcpt, result: 'deferred', status: '4.3.0', diagnostic: `internal error: ${err.message}`, smtp: false, remoteMta: null }));
      })
      .then((outcomes) => {
        // what the stop's close ended: no reply from the server for these recipients. A reply that came before the
        // close, and a failure that was no doing of the stop (refused, dropped by the server, DNS), stay real.
        if (job.closedByStop) outcomes = outcomes.map((o) => (o.result === 'deferred' && !o.smtp ? { ...o, cut: true } : o));
        const failed = outcomes.find((o) => o.result !== 'delivered' && !o.cut);
        if (failed) this.dest(key).lastError = oneLineReason(failed.diagnostic);
        // what the server decided for these recipients is the message's truth from now on (list(), the removals),
        // before the attempt's other jobs end and before it is recorded on disk (finishAttempt)
        for (const o of outcomes) {
          if (o.result === 'delivered') job.msg.rcpts.set(o.rcpt, { status: 'delivered', error: null });
          else if (o.result === 'bounced') job.msg.rcpts.set(o.rcpt, { status: 'bounced', error: reasonOf({ ...o, diagnostic: oneLineReason(o.diagnostic) }) });
        }
        job.msg.attempt!.outcomes.push(...outcomes);
        this.learn(key, job, outcomes);
      })
      .finally(() => {
        this.active--;
        const n = (this.destActive.get(key) ?? 1) - 1;
        if (n <= 0) this.destActive.delete(key);
        else this.destActive.set(key, n);
        this.jobDone(job.msg);
        this.pump();
      });
    this.track(run);
  }

  /**
   * A destination that is down takes one connection at a time (the probe), once its time has come: while the probe
   * runs or before it is due, its jobs are not tried (skip()).
   */
  private holdsBack(d: DestState | undefined, now: number): d is DestState & { down: NonNullable<DestState['down']> } {
    return d?.down != null && (d.probing || now < d.down.probeAt);
  }

  /** Between probes of a destination that is down, after `failures` connection-level failures in a row. */
  private probeInterval(failures: number): number {
    return retryDelay(failures, this.opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS, 0, () => 0.5);
  }

  /**
   * A job for a destination that is down, not tried (no connection): its recipients are deferred with a reason that
   * says so, until the destination's next probe (plus jitter). Not an attempt (finishAttempt).
   */
  private skip(key: string, job: Job, d: DestState): void {
    const down = d.down!;
    const interval = this.probeInterval(down.failures);
    const jitter = Math.round((this.opts.random ?? Math.random)() * (this.opts.jitter ?? 0.1) * interval);
    // never a time already past (a probe that runs past the next planned one): that would make it due again at once
    const now = this.clock();
    const until = down.probeAt > now ? down.probeAt : now + interval;
    const diagnostic = oneLineReason(`not tried: ${destinationLabel(key)} did not answer the last attempt (${down.reason} at ${clockTime(down.at)}); next try ${clockTime(until + jitter)}`);
    for (const rcpt of job.rcpts) job.msg.attempt!.outcomes.push({ rcpt, result: 'deferred', status: '4.4.1', diagnostic, smtp: false, remoteMta: null, skippedUntil: until + jitter });
    this.noteConn(key, job.msg, true);
    this.jobDone(job.msg);
  }

  /** Records whether the message's last try for the destination failed at the connection level (or was not tried). */
  private noteConn(key: string, msg: QueuedMessage, conn: boolean): void {
    if (conn) {
      this.dest(key).connWaiting.add(msg);
      (msg.connDests ??= new Set()).add(key);
    } else if (msg.connDests?.delete(key)) {
      this.dests.get(key)?.connWaiting.delete(msg);
    }
  }

  /**
   * What a job that ended tells about its destination (as Postfix's queue manager does with a dead destination):
   * a connection-level failure marks it down (one probe at a time from now on, the jobs waiting for a slot to it are
   * not tried); any answer of the server ends that; a delivery brings forward every message waiting for it whose
   * last failure for it was at the connection level.
   */
  private learn(key: string, job: Job, outcomes: Outcome[]): void {
    const d = this.dest(key);
    if (job.probe) d.probing = false;
    const v = job.verdict;
    const now = this.clock();
    if (v !== undefined && v !== 'up') {
      const was = d.down;
      // (the sessions that were open when it went down fail too: one failure, not one per session)
      // (a probe an administrator's retry asked for that fails is no step: the automatic probe stays when it was)
      const failures = !was ? 1 : job.probe && !job.manualProbe ? was.failures + 1 : was.failures;
      const probeAt = !was || (job.probe && (!job.manualProbe || was.probeAt <= now)) ? now + this.probeInterval(failures) : was.probeAt;
      d.up = false;
      d.down = { since: was?.since ?? now, reason: oneLineReason(v.down), at: now, probeAt, failures };
      if (!was) this.log(`queue: ${destinationLabel(key)} did not answer (${d.down.reason}); one connection at a time to it until it does, the next at ${clockTime(probeAt)}`);
      this.noteConn(key, job.msg, true);
      const fifo = this.destQueues.get(key);
      if (fifo && !d.probing) {
        for (let j = fifo.shift(); j; j = fifo.shift()) this.skip(key, j, d);
        this.destQueues.delete(key);
      }
      return;
    }
    let back = false;
    if (v === 'up') {
      if (d.down) this.log(`queue: ${destinationLabel(key)} answers again (it did not from ${clockTime(d.down.since)})`);
      back = d.down !== null;
      d.down = null;
      d.up = true;
      this.noteConn(key, job.msg, false);
    } else if (outcomes.some((o) => !o.cut)) {
      // failed otherwise (DNS...), or not tried because of a removal: not a connection-level failure
      this.noteConn(key, job.msg, false);
    }
    // a delivery, or any answer after it was down (the probe's own message refused or greylisted: the server is up
    // all the same), brings forward the messages that waited for it at the connection level, or were not tried
    if ((job.delivered || back) && d.connWaiting.size > 0) {
      let n = 0;
      for (const m of [...d.connWaiting]) {
        if (this.messages.get(m.id) !== m) {
          d.connWaiting.delete(m);
          continue;
        }
        // (one being delivered or removed now stays listed: a later delivery brings it forward if it still waits)
        if (m.delivering || m.removed || m.answer) continue;
        d.connWaiting.delete(m);
        m.connDests?.delete(key);
        this.bringForward(m, now);
        n++;
      }
      // (said for the recovery only: later deliveries bring forward the few that were being delivered at that moment)
      if (n > 0 && back) this.log(`queue: ${destinationLabel(key)} takes mail again: ${n} message${n === 1 ? '' : 's'} waiting for it ${n === 1 ? 'is' : 'are'} due now`);
    }
  }

  private jobDone(msg: QueuedMessage): void {
    const a = msg.attempt;
    if (!a) return;
    a.jobsLeft--;
    if (a.jobsLeft === 0) this.endAttempt(msg);
  }

  /**
   * A bounce (null sender) that could not be delivered is said on stdout, but at most one a minute, then how many more
   * there were: a burst of them (bounces to made-up sender domains, an outage) wrote one line each, 9,000 lines in
   * three minutes of the soak test. Each one is in the history (its bounced event) all the same.
   */
  private undeliverableBounce(line: string): void {
    const n = this.bounceNote;
    if (this.clock() - n.at >= 60_000) {
      this.log(line);
      this.bounceNote = { at: this.clock(), held: 0, timer: null };
      return;
    }
    n.held++;
    n.timer ??= this.timers.setTimeout(() => {
      const held = this.bounceNote.held;
      if (held > 0) {
        this.log(`queue: ${held} more bounce${held === 1 ? '' : 's'} (null sender) could not be delivered since ${clockTime(this.bounceNote.at)}; not said one by one (each is a bounced event in the history)`);
      }
      this.bounceNote = { at: this.clock(), held: 0, timer: null };
    }, Math.max(0, n.at + 60_000 - this.clock()));
  }

  /**
   * A smarthost login that fails is the admin's to fix (delivery.smarthost), and all relayed mail waits meanwhile: it
   * is said on stdout, not only in each message's deferral. Once per smarthost (and again after an hour of it), and
   * once when a login works again. `problem` null: a login worked.
   */
  private smarthostLogin(host: string, problem: string | null): void {
    const now = this.clock();
    const last = this.loginProblem;
    if (problem === null) {
      if (last) this.log(`queue: the smarthost ${host} takes the login again; waiting mail goes out`);
      this.loginProblem = null;
      return;
    }
    // one line per smarthost an hour while it lasts: the reply text may differ at every attempt (another of its
    // addresses, an id or a time in a 535), so it is not what tells one problem from another
    if (last && last.host === host && now - last.at < 3_600_000) return;
    this.loginProblem = { host, at: now };
    this.log(`queue: cannot log in to the smarthost (${oneLineReason(problem)}); relayed mail waits in the queue until delivery.smarthost is fixed`);
  }

  private heloName(config: Config): string {
    return relayHostname(config);
  }

  /** One destination, one recipient group: resolve, then try each address until one session gets to the envelope. */
  private async runJob(job: Job): Promise<Outcome[]> {
    const { msg, dest, rcpts } = job;
    const config = this.opts.config();
    const all = (result: Outcome['result'], status: string, diagnostic: string, smtp = false, remoteMta: string | null = null): Outcome[] =>
      rcpts.map((rcpt) => ({ rcpt, result, status, diagnostic, smtp, remoteMta }));

    // a removal the administrator asked for (once it is recorded: its write is waited for) stops the job before any new
    // connection: only a session already under way may still deliver the message
    const stopped = (asked: 'delete' | 'bounce', failures: string[]): Outcome[] =>
      failures.length === 0
        ? rcpts.map((rcpt) => notTriedRemoved(rcpt, asked))
        : all('deferred', '4.4.1', `${failures.join('; ')}; the other addresses were not tried: ${removalWords(asked)}`);
    if (msg.persisting) await msg.persisting;
    if (msg.removed) return stopped(msg.removed, []);

    const targets = await resolveTargets(dest, this.opts.resolver, this.opts.mxPort ?? 25, this.opts.random ?? Math.random);
    if (!targets.ok) return all(targets.permanent ? 'bounced' : 'deferred', targets.status, targets.reason);

    const auth = dest.kind === 'smarthost' && dest.user && dest.password ? { user: dest.user, pass: dest.password } : null;
    const failures: string[] = [];
    let answered = false;
    for (const target of targets.targets) {
      // (no await unless a removal is being recorded: nothing else may run between the checks and the connection)
      if (msg.persisting) await msg.persisting;
      if (!this.running) {
        // no new connection once the queue is stopping. Nothing tried yet: the stop cut it short (as a job that never
        // started). Addresses that failed already (refused, dropped...) are a real attempt, the rest untried.
        if (failures.length === 0) return rcpts.map(notTried);
        return all('deferred', '4.4.1', `${failures.join('; ')}; the relay stopped before trying the other addresses`);
      }
      if (msg.removed) return stopped(msg.removed, failures);
      const r = await this.client.deliver({
        target,
        from: msg.envelope.from,
        rcpts,
        size: msg.size,
        source: this.dataSource(msg),
        tls: config.delivery.tls,
        auth,
        heloName: this.heloName(config),
        body8bit: msg.envelope.body8bit === true,
        smtpUtf8: msg.envelope.smtpUtf8 === true,
        connectTimeoutMs: this.opts.connectTimeoutMs ?? 30_000,
        commandTimeoutMs: this.opts.commandTimeoutMs ?? 300_000,
        track: (close) => {
          // stop() calls it only to cut deliveries still under way: that is what marks the job as cut by the stop
          const closer = () => {
            job.closedByStop = true;
            close();
          };
          this.connections.add(closer);
          return () => this.connections.delete(closer);
        },
      });
      if (r.kind === 'session-failed') {
        failures.push(r.reason);
        // a refused login is an answer: the server is up (the problem is the config)
        if (r.login) answered = true;
        if (r.login && dest.kind === 'smarthost') this.smarthostLogin(dest.host, r.reason);
        continue;
      }
      job.verdict = 'up';
      if (auth && dest.kind === 'smarthost') this.smarthostLogin(dest.host, null);
      // (one form everywhere: the delivery client's reasons, the events, a DSN's text: NAME[IP]:PORT)
      const host = targetName(target);
      const delivered: string[] = [];
      const out: Outcome[] = [];
      for (const res of r.results) {
        if (res.localStatus) {
          // the relay's own decision about this server (SMTPUTF8 needed, not offered): no reply of the server, and the
          // reason names the host already
          const result = res.code >= 500 ? 'bounced' : 'deferred';
          out.push({ rcpt: res.rcpt, result, status: res.localStatus, diagnostic: res.response, smtp: false, remoteMta: null });
        } else if (res.code >= 200 && res.code < 300) {
          delivered.push(res.rcpt);
          out.push({ rcpt: res.rcpt, result: 'delivered', status: '2.0.0', diagnostic: res.response, smtp: true, remoteMta: target.host });
        } else if (res.code >= 500) {
          out.push({ rcpt: res.rcpt, result: 'bounced', status: enhancedStatus(res.response, 5), diagnostic: res.response, smtp: true, remoteMta: target.host, remoteHost: host });
        } else {
          const said = res.code ? `${host} said: ${res.response}` : res.response;
          out.push({ rcpt: res.rcpt, result: 'deferred', status: enhancedStatus(res.response, 4), diagnostic: said, smtp: res.code > 0, remoteMta: target.host, remoteHost: host });
        }
      }
      if (delivered.length > 0) {
        job.delivered = true;
        this.opts.bus.emit({
          kind: 'delivered',
          sessionId: msg.envelope.sessionId || null,
          ip: msg.envelope.clientIp || null,
          queueId: msg.id,
          to: delivered,
          host,
          tls: r.tls,
          tlsProtocol: r.tlsProtocol,
          tlsCipher: r.tlsCipher,
          response: r.response,
        });
      }
      return out;
    }
    const tlsNote = config.delivery.tls === 'required' ? ' (delivery.tls is "required": never sent in plain text)' : '';
    // every address failed before the envelope (could not connect, no greeting, a 421 greeting, no TLS where it is
    // required): the destination is down. Not when the stop closed the connection.
    if (failures.length > 0 && !job.closedByStop) job.verdict = answered ? 'up' : { down: failures[failures.length - 1]! + tlsNote };
    return all('deferred', '4.4.1', (failures.join('; ') || 'no address to connect to') + tlsNote);
  }

  /**
   * The attempt is over: record outcomes, send a DSN for bounced recipients, then remove or reschedule. A delete
   * asked for during the attempt removes the message now (its delivered recipients were reported as they were
   * delivered); a return sends one DSN for every recipient not delivered, then removes it. Resolves with how that
   * went (AttemptEnd): why the DSN of a return could not be stored (`direct`: the return was asked for now and is given
   * up then, and nothing changes: jobs `dropped` to end the attempt now are put back; otherwise it stays pending and is
   * tried again), why a removal could not be made durable, whether a DSN was stored.
   */
  private async finishAttempt(msg: QueuedMessage, opts: EndOptions = {}): Promise<AttemptEnd> {
    const { direct = false, dropped = [] } = opts;
    const attempt = msg.attempt;
    const outcomes = attempt?.outcomes ?? [];
    const tried = attempt?.started ?? false;
    msg.attempt = null;
    msg.wrapUp = tried;
    const attemptsBefore = msg.attempts;
    // later attempts (rare) read the message from the spool
    const retained = msg.data;
    this.dropData(msg);
    const now = this.clock();
    const config = this.opts.config();
    const stopping = !this.running;
    // What a stop does to an attempt (as Postfix does with what its queue manager had in its active queue), decided
    // from what the stop did, not from what an outcome looks like: a delivery the stop never started, or whose
    // connection stop() closed before the server answered, is cut (Outcome.cut). It is no step of the retry schedule,
    // its recipients are tried again as soon as the queue starts again, and the last real answer stays the message's
    // lastError. Everything else that ends while the stop waits is a real attempt, exactly as without the stop: a
    // reply, a refused connection, a server that dropped the connection by itself, no address that worked, a DNS
    // failure. It counts, gets a deferred event and the usual delay, and an expired message is bounced.
    // One message, one nextAttemptAt: when some recipients got a real answer and others were cut, the attempt counts
    // but the whole message is due again right after the restart (the cut recipients need it), the ones that got a
    // real 4xx included; only the expiry bounce below applies to those at once.
    const cut = (o: Outcome) => o.cut === true;
    const cutShort = (stopping && !tried) || outcomes.some(cut);
    // A job not tried because its destination is down (skip()) is no attempt: it neither counts nor moves the
    // backoff; the message is due again at the destination's next probe (plus jitter). Its recipients still expire.
    const skipped = (o: Outcome) => o.skippedUntil !== undefined;
    const counted = tried && (outcomes.length === 0 || outcomes.some((o) => !cut(o) && !skipped(o)));
    if (counted) msg.attempts++;
    // An attempt made ahead of the schedule (the administrator's retry, retryAll, a destination's recovery) that fails
    // is shown in `attempts` but is no step of the retry schedule: the next automatic attempt stays where it was.
    const early = msg.early ?? null;
    msg.early = null;
    const stepsBefore = msg.steps ?? attemptsBefore;
    msg.steps = counted && early === null ? stepsBefore + 1 : stepsBefore;
    // a pending removal being recorded on disk is written before anything below writes or unlinks the state (and if
    // that failed, it was undone: read it after)
    if (msg.persisting) await msg.persisting;
    // a delete or return the administrator asks for from now on (the awaits below) is done at the end
    const requested = msg.removed;

    if (requested === 'delete') {
      const unrecorded = await this.remove(msg);
      msg.delivering = false;
      return { returnFailed: null, unrecorded, returned: false };
    }

    for (const o of outcomes) {
      if (o.result === 'delivered') msg.rcpts.set(o.rcpt, { status: 'delivered', error: null });
    }
    let bounced = outcomes.filter((o) => o.result === 'bounced');
    let deferred = outcomes.filter((o) => o.result === 'deferred' && !cut(o));
    // the recipients the administrator's return gives back (every one still pending that this attempt did not decide)
    const returned: Outcome[] = [];

    const lifetimeMs = config.delivery.maxQueueHours * 3_600_000;
    const expiresAt = msg.envelope.receivedAt + lifetimeMs;
    if (requested === 'bounce') {
      const decided = new Set(outcomes.filter((o) => o.result !== 'deferred').map((o) => o.rcpt));
      for (const [rcpt, r] of msg.rcpts) {
        if (r.status === 'pending' && !decided.has(rcpt)) {
          const last = deferred.find((d) => d.rcpt === rcpt)?.diagnostic ?? r.error;
          returned.push({ rcpt, result: 'bounced', status: '5.0.0', diagnostic: `returned to the sender by the administrator${last ? `; last error: ${last}` : ''}`, smtp: false, remoteMta: null });
        }
      }
    } else if (deferred.length > 0 && now >= expiresAt) {
      // (real answers only: a cut recipient stays queued and gets its last try after the restart)
      const hours = config.delivery.maxQueueHours;
      bounced = bounced.concat(
        deferred.map((d) => ({ ...d, result: 'bounced' as const, status: '4.4.7', diagnostic: `could not be delivered for ${hours} hours (delivery.maxQueueHours); last error: ${d.diagnostic}`, smtp: false, remoteMta: d.remoteMta })),
      );
      deferred = [];
    }
    // every reason this attempt records or reports goes through here (reason.ts): one line, bounded
    const told = (o: Outcome): Outcome => ({ ...o, diagnostic: oneLineReason(o.diagnostic) });
    bounced = bounced.map(told);
    deferred = deferred.map(told);

    let returnFailed: string | null = null;
    let dsnStored = false;
    const toSender = bounced.concat(returned.map(told));
    if (toSender.length > 0) {
      const { failure, stored } = await this.returnToSender(msg, toSender, config);
      if (failure !== null && requested === 'bounce' && direct && dropped.length > 0 && attempt) {
        // a return asked for now, whose DSN could not be stored, ended the attempt early (its jobs waiting for a slot
        // were taken out): undone, the attempt goes on as if it had not been asked (its jobs queued again)
        msg.removed = null;
        msg.attempts = attemptsBefore;
        msg.steps = stepsBefore;
        msg.early = early;
        if (retained) msg.data = this.retain(retained);
        msg.attempt = attempt;
        msg.wrapUp = false;
        attempt.jobsLeft += dropped.length;
        for (const job of dropped) {
          if (!this.running) {
            // stopped meanwhile: not tried, as stop() does with jobs that never started
            for (const rcpt of job.rcpts) attempt.outcomes.push(notTried(rcpt));
            this.jobDone(msg);
            continue;
          }
          let fifo = this.destQueues.get(job.dest.key);
          if (!fifo) this.destQueues.set(job.dest.key, (fifo = new Fifo<Job>()));
          fifo.push(job);
        }
        this.pump();
        return { returnFailed: failure, unrecorded: null, returned: false };
      }
      if (failure === null) {
        dsnStored = stored;
        for (const b of toSender) msg.rcpts.set(b.rcpt, { status: 'bounced', error: reasonOf(b) });
        for (const [reason, to] of groupBy(toSender)) {
          this.opts.bus.emit({ kind: 'bounced', sessionId: msg.envelope.sessionId || null, ip: msg.envelope.clientIp || null, queueId: msg.id, to, reason });
        }
        // (the 4xx answers of this attempt were returned with the rest)
        if (requested === 'bounce') deferred = [];
      } else {
        // the bounce could not be stored (disk full): the recipients a server refused wait, and are tried again later;
        // the administrator's return is not done (the others keep their state)
        deferred = deferred.concat(bounced.map((b) => ({ ...b, result: 'deferred' as const })));
        if (requested === 'bounce') returnFailed = failure;
      }
    }
    for (const d of deferred) msg.rcpts.set(d.rcpt, { status: 'pending', error: d.diagnostic });

    const pending = [...msg.rcpts.values()].some((r) => r.status === 'pending');
    if (!pending) {
      // (durably when the administrator asked for its removal, now or during the awaits above)
      const unrecorded = await this.remove(msg);
      msg.delivering = false;
      return { returnFailed: null, unrecorded, returned: dsnStored };
    }
    // a return asked for now whose DSN could not be stored is given up: the message stays as it was (its schedule
    // too, when no delivery was tried); a pending one stays pending and is tried again after the first retry delay
    if (returnFailed !== null && direct) msg.removed = null;
    const returnWaits = returnFailed !== null && !direct;
    msg.skipped = false;
    if (returnWaits) {
      msg.nextAttemptAt = now + retryDelay(1, this.opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS, this.opts.jitter ?? 0.1, this.opts.random ?? Math.random);
    } else if (cutShort) {
      // retried as soon as the queue starts again (the stored nextAttemptAt is due): every pending recipient, those
      // with a real 4xx in this attempt too (the delay is the message's, not a recipient's)
      msg.nextAttemptAt = Math.min(msg.nextAttemptAt, now);
    } else if (counted || deferred.some(skipped)) {
      let next = Infinity;
      if (counted) {
        const delay = retryDelay(msg.steps, this.opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS, this.opts.jitter ?? 0.1, this.opts.random ?? Math.random);
        // ahead of the schedule: the time it had, or (passed meanwhile) the delay of its unchanged count from now
        next = early !== null && early > now ? early : now + delay;
      }
      let fromSkip = false;
      for (const d of deferred) {
        if (d.skippedUntil !== undefined && d.skippedUntil < next) {
          next = d.skippedUntil;
          fromSkip = true;
        }
      }
      msg.skipped = fromSkip;
      // the last try happens at the end of the lifetime, and its failure bounces
      msg.nextAttemptAt = now < expiresAt ? Math.min(next, expiresAt) : next;
    }
    if (deferred.length > 0) msg.lastError = (deferred.find((d) => !skipped(d)) ?? deferred[0]!).diagnostic;
    if (returnWaits) msg.lastError = oneLineReason(`the return to the sender the administrator asked for is not done yet: its bounce could not be stored (${returnFailed}); it is tried again`);
    // on the way down it stays in its segment (which stays too): a stop should not copy every message in flight
    const leftSegment = stopping ? null : await this.moveToOwnFile(msg, retained);
    try {
      await this.saveState(msg);
    } catch (err) {
      this.log(`queue: cannot save the delivery state of ${msg.id} (${(err as Error).message}); after a restart its delivered recipients may get it again`);
    }
    if (leftSegment) void this.release(leftSegment);
    // (cut deliveries are not among them: no server said anything; nor are recipients a pending return is for: they
    // are not delivered again, their answers go into the bounce)
    for (const [reason, to] of groupBy(returnWaits ? [] : deferred)) {
      this.opts.bus.emit({ kind: 'deferred', sessionId: msg.envelope.sessionId || null, ip: msg.envelope.clientIp || null, queueId: msg.id, to, reason, nextAttemptAt: msg.nextAttemptAt });
    }
    msg.delivering = false;
    // (read again: delete() or bounce() may have set it during the awaits above; their answer is this one's end)
    const late = msg.removed as QueuedMessage['removed'];
    if (late === 'delete') {
      const unrecorded = await this.remove(msg);
      return { returnFailed, unrecorded, returned: false };
    }
    if (late === 'bounce' && requested !== 'bounce') return this.startBounce(msg, { direct: true });
    // (a return still pending is tried again at nextAttemptAt: schedule() and pump() know)
    this.schedule(msg);
    return { returnFailed, unrecorded: null, returned: false };
  }

  /**
   * Queues a DSN to the sender for the bounced recipients. Never for a null sender (that is a bounce already) and never
   * for a DSN. Returns why when the DSN could not be stored (else null), and whether one was stored.
   */
  private async returnToSender(msg: QueuedMessage, bounced: Outcome[], config: Config): Promise<{ failure: string | null; stored: boolean }> {
    if (msg.envelope.from === '' || msg.kind === 'dsn') {
      this.undeliverableBounce(`queue: ${msg.id} (null sender) could not be delivered to ${bounced.map((b) => b.rcpt).join(', ')}; no bounce is sent for a bounce`);
      return { failure: null, stored: false };
    }
    try {
      const limit = msg.size <= DSN_FULL_MESSAGE_LIMIT ? msg.size : 64 * 1024;
      const original = Buffer.alloc(limit);
      const fh = await fsp.open(msg.file, 'r');
      try {
        await fh.read(original, 0, limit, msg.offset);
      } finally {
        await fh.close();
      }
      const reportingMta = this.heloName(config);
      const input: DsnInput = {
        reportingMta,
        queueId: msg.id,
        sender: msg.envelope.from,
        arrivalDate: msg.envelope.receivedAt,
        now: this.clock(),
        recipients: bounced,
        original,
        complete: limit === msg.size,
        smtpUtf8: msg.envelope.smtpUtf8 === true,
      };
      const dsn = buildDsn(input);
      const w = new Writer(this, 'dsn');
      w.write(dsn);
      await w.commit({
        from: '',
        to: [msg.envelope.from],
        sessionId: '',
        clientIp: '',
        clientHostname: null,
        helo: reportingMta,
        authUser: null,
        receivedAt: this.clock(),
        // an RFC 6533 DSN (UTF-8 addresses or header fields) declares SMTPUTF8, and a DSN with 8-bit parts (a UTF-8
        // reason, an 8-bit original) BODY=8BITMIME, for its delivery to declare them again
        ...(globalDsn(input) ? { smtpUtf8: true as const } : {}),
        ...(/[\x80-\xff]/.test(dsn.toString('latin1')) ? { body8bit: true as const } : {}),
      });
      return { failure: null, stored: true };
    } catch (err) {
      this.log(`queue: cannot store the bounce for ${msg.id} (${(err as Error).message}); the recipients it was for stay queued`);
      return { failure: (err as Error).message, stored: false };
    }
  }
}

/** A job's recipients a removal the administrator asked for stopped before the job connected. */
function notTriedRemoved(rcpt: string, asked: 'delete' | 'bounce'): Outcome {
  return { rcpt, result: 'deferred', status: '4.3.0', diagnostic: `not tried: ${removalWords(asked)}`, smtp: false, remoteMta: null, cut: true };
}

function removalWords(asked: 'delete' | 'bounce'): string {
  return asked === 'bounce' ? 'the administrator asked to return the message to its sender' : 'the administrator deleted the message';
}

function notTried(rcpt: string): Outcome {
  return { rcpt, result: 'deferred', status: '4.3.0', diagnostic: 'the relay stopped before this delivery was tried', smtp: false, remoteMta: null, cut: true };
}

/** HH:MM:SS UTC */
function clockTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`;
}

/** Recipients grouped by identical reason, for one event per reason. */
function groupBy(outcomes: Outcome[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const o of outcomes) {
    const reason = reasonOf(o);
    const list = m.get(reason);
    if (list) list.push(o.rcpt);
    else m.set(reason, [o.rcpt]);
  }
  return m;
}

/** The error of a recipient of this message still waiting for destination `key` (null: none has one). */
function rcptErrorFor(m: QueuedMessage, key: string, config: Config): string | null {
  for (const [rcpt, r] of m.rcpts) if (r.status === 'pending' && r.error !== null && destinationFor(rcpt, config).key === key) return r.error;
  return null;
}

/**
 * An outcome's reason as the events and the queue say it: a server's own refusal names the server ("NAME[IP]:PORT
 * said: 550 ..."), as a deferral's does; the DSN's text part puts "host NAME said:" before the bare reply itself.
 * (A tryout: the bounced event said only "550 5.1.1 ...", and Live traffic could not tell which server refused.)
 */
function reasonOf(o: Outcome): string {
  // (bounded again: the host's words in front of a reason already bounded to its length)
  return o.result === 'bounced' && o.smtp && o.remoteHost ? oneLineReason(`${o.remoteHost} said: ${o.diagnostic}`) : o.diagnostic;
}
