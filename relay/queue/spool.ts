/**
 * The durable queue: the spool written before `250` is the queue. See files.ts for the on-disk format.
 *
 * The SMTP front calls begin() for each DATA, write()s the bytes as they arrive and commit()s the envelope; only when
 * commit resolves is the message on disk (file and directory fsynced) and may the client get its `250`.
 * acceptingMail turns false after a write failure (disk full, I/O error) and back to true when a probe write succeeds.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Config } from '../../shared/config.ts';
import type { EventBus } from '../events/bus.ts';
import { DirSyncer, encodeTrailer, fsyncDir, ID_PATTERN, newQueueId, readTrailer, writeFileAtomic } from './files.ts';

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
  | { status: 'temperror'; reason: string };
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

/** Test hook at the storage edge: throw from it to simulate a failing disk operation. */
export type FaultInjector = (op: 'open' | 'write' | 'sync' | 'rename' | 'dirsync', file: string) => void;

export type MessageKind = 'message' | 'dsn';
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
}

/** One queued message, as the queue holds it in memory (the bytes stay on disk). */
export interface QueuedMessage {
  id: string;
  file: string;
  envelope: Envelope;
  kind: MessageKind;
  /** bytes of the raw message (the trailer excluded) */
  size: number;
  rcpts: Map<string, { status: RecipientStatus; error: string | null }>;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  delivering: boolean;
  /** set when delete() or bounce() was called during a delivery */
  removed: boolean;
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
  /** concurrent deliveries in total (default 20) and per destination (default 4) */
  concurrency?: number;
  perDestination?: number;
  /** while not accepting, how often to try a probe write (default 2000 ms) */
  probeIntervalMs?: number;
  /** bytes the probe must be able to write and fsync (default 256 KiB) */
  probeBytes?: number;
  /** flush buffered DATA to the temp file past this many bytes (default 256 KiB) */
  flushBytes?: number;
  fault?: FaultInjector;
  /** timeouts for a delivery connection (ms) */
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  log?: (line: string) => void;
}

interface StateFile {
  v: 1;
  attempts: number;
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

const FATAL_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EMFILE', 'ENFILE', 'EACCES', 'EPERM', 'ENOENT', 'EFBIG']);

class Writer implements SpoolWriter {
  private chunks: Buffer[] = [];
  private pending = 0;
  private bytes = 0;
  private fh: Promise<fsp.FileHandle> | null = null;
  private chain: Promise<void> = Promise.resolve();
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

  private open(): Promise<fsp.FileHandle> {
    this.fh ??= this.q.ready.then(() => {
      this.opened = true;
      this.q.inject('open', this.tmpFile);
      return fsp.open(this.tmpFile, 'wx', 0o600);
    });
    return this.fh;
  }

  private flush(extra?: Buffer): void {
    const bufs = this.chunks;
    if (extra) bufs.push(extra);
    this.chunks = [];
    this.pending = 0;
    this.chain = this.chain
      .then(async () => {
        if (this.error) return;
        const fh = await this.open();
        if (bufs.length === 0) return;
        const buf = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
        this.q.inject('write', this.tmpFile);
        let off = 0;
        while (off < buf.length) {
          const { bytesWritten } = await fh.write(buf, off, buf.length - off, null);
          off += bytesWritten;
        }
      })
      .catch((err: Error) => {
        this.error ??= err;
      });
  }

  async commit(envelope: Envelope): Promise<{ id: string; size: number }> {
    if (this.finished) throw new Error('this message was already committed or aborted');
    this.finished = true;
    const size = this.bytes;
    const target = path.join(this.q.queueDir, `${this.id}.msg`);
    let renamed = false;
    try {
      const trailer: TrailerJson = { v: 1, id: this.id, kind: this.kind, envelope };
      this.flush(encodeTrailer(JSON.stringify(trailer)));
      await this.chain;
      if (this.error) throw this.error;
      const fh = await this.open();
      this.q.inject('sync', this.tmpFile);
      await fh.datasync();
      this.fh = null;
      await fh.close();
      this.q.inject('rename', target);
      await fsp.rename(this.tmpFile, target);
      renamed = true;
      this.q.activeTemps.delete(this.tmpFile);
      this.q.inject('dirsync', this.q.queueDir);
      await this.q.dirSync.sync();
    } catch (err) {
      await this.cleanup();
      if (renamed) await fsp.unlink(target).catch(() => {});
      this.q.storageFailed(err as Error);
      throw err;
    }
    this.q.committed({
      id: this.id,
      file: target,
      envelope,
      kind: this.kind,
      size,
      rcpts: new Map(envelope.to.map((t) => [t, { status: 'pending' as const, error: null }])),
      attempts: 0,
      nextAttemptAt: this.q.clock(),
      lastError: null,
      delivering: false,
      removed: false,
    });
    return { id: this.id, size };
  }

  private async cleanup(): Promise<void> {
    this.chunks = [];
    await this.chain.catch(() => {});
    if (this.fh) {
      const fh = await this.fh.catch(() => null);
      this.fh = null;
      await fh?.close().catch(() => {});
    }
    if (this.opened) await fsp.unlink(this.tmpFile).catch(() => {});
    this.q.activeTemps.delete(this.tmpFile);
  }

  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.cleanup();
  }
}

export class Queue {
  readonly dir: string;
  readonly tmpDir: string;
  readonly queueDir: string;
  readonly ready: Promise<void>;
  readonly dirSync: DirSyncer;
  readonly activeTemps = new Set<string>();
  readonly flushBytes: number;
  readonly clock: () => number;
  protected readonly opts: QueueOptions;
  protected readonly timers: Timers;
  protected readonly messages = new Map<string, QueuedMessage>();
  protected readonly log: (line: string) => void;
  private accepting = true;
  private probeTimer: unknown = null;
  private probing = false;
  protected running = false;
  protected stopped = false;

  constructor(opts: QueueOptions) {
    this.opts = opts;
    this.dir = path.resolve(opts.dir);
    this.tmpDir = path.join(this.dir, 'tmp');
    this.queueDir = path.join(this.dir, 'queue');
    this.clock = opts.now ?? Date.now;
    this.timers = opts.timers ?? realTimers;
    this.flushBytes = opts.flushBytes ?? 256 * 1024;
    this.log = opts.log ?? ((line) => console.error(line));
    this.dirSync = new DirSyncer(this.queueDir);
    const { tmpDir, queueDir } = this;
    this.ready = (async () => {
      await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
      await fsp.mkdir(queueDir, { recursive: true, mode: 0o700 });
    })();
    // A failure here surfaces at the first commit or at start(); keep it from being an unhandled rejection.
    this.ready.catch(() => {});
  }

  /** false after a write failure (ENOSPC, EIO...) until a probe write succeeds again: answer 452 4.3.1 meanwhile */
  get acceptingMail(): boolean {
    return this.accepting;
  }

  get size(): number {
    return this.messages.size;
  }

  /** Starts receiving one message; the file is opened lazily. */
  begin(): SpoolWriter {
    return new Writer(this);
  }

  /** @internal spool a message the queue itself writes (a DSN). */
  protected beginInternal(kind: MessageKind): SpoolWriter {
    return new Writer(this, kind);
  }

  /** @internal */
  inject(op: Parameters<FaultInjector>[0], file: string): void {
    this.opts.fault?.(op, file);
  }

  /** @internal a commit finished: the message is durable. */
  committed(msg: QueuedMessage): void {
    this.messages.set(msg.id, msg);
    this.onQueued(msg);
  }

  /** Called for each message that enters the queue (commit or scan at start). Delivery hooks in here. */
  protected onQueued(_msg: QueuedMessage): void {}

  /** @internal a write to the spool failed: stop accepting until a probe write succeeds. */
  storageFailed(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && !FATAL_ERRNO.has(code)) return;
    if (this.accepting) this.log(`queue: cannot write to the spool ${this.dir} (${code ?? err.message}); refusing mail with 452 4.3.1 until a test write succeeds`);
    this.accepting = false;
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.probeTimer !== null || this.probing) return;
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
    if (!this.accepting && !this.stopped) this.scheduleProbe();
    return this.accepting;
  }

  /** Scans the spool: removes temp files that never committed, loads every queued message, starts delivering. */
  async start(): Promise<void> {
    await this.ready;
    for (const name of await fsp.readdir(this.tmpDir)) {
      const file = path.join(this.tmpDir, name);
      if (this.activeTemps.has(file)) continue;
      await fsp.rm(file, { force: true, recursive: true });
    }
    const names = await fsp.readdir(this.queueDir);
    const msgs = new Set(names.filter((n) => n.endsWith('.msg')).map((n) => n.slice(0, -4)));
    for (const name of names) {
      const dot = name.lastIndexOf('.');
      const id = name.slice(0, dot);
      const ext = name.slice(dot + 1);
      if (ext === 'state' && !msgs.has(id)) await fsp.unlink(path.join(this.queueDir, name)).catch(() => {});
    }
    const ids = [...msgs].sort();
    for (const id of ids) {
      if (this.messages.has(id)) continue;
      try {
        const msg = await this.load(id);
        this.messages.set(id, msg);
      } catch (err) {
        await this.quarantine(id, err as Error);
      }
    }
    this.running = true;
    for (const id of ids) {
      const msg = this.messages.get(id);
      if (msg) this.onQueued(msg);
    }
  }

  private async load(id: string): Promise<QueuedMessage> {
    if (!ID_PATTERN.test(id)) throw new Error(`"${id}" is not a queue id`);
    const file = path.join(this.queueDir, `${id}.msg`);
    const { json, dataSize } = await readTrailer(file);
    const t = JSON.parse(json) as TrailerJson;
    if (t.v !== 1 || t.id !== id || !t.envelope || !Array.isArray(t.envelope.to)) throw new Error(`${file}: trailer is not a version 1 envelope for ${id}`);
    const msg: QueuedMessage = {
      id,
      file,
      envelope: t.envelope,
      kind: t.kind === 'dsn' ? 'dsn' : 'message',
      size: dataSize,
      rcpts: new Map(t.envelope.to.map((to) => [to, { status: 'pending' as RecipientStatus, error: null as string | null }])),
      attempts: 0,
      nextAttemptAt: this.clock(),
      lastError: null,
      delivering: false,
      removed: false,
    };
    let state: StateFile | null = null;
    try {
      state = JSON.parse(await fsp.readFile(path.join(this.queueDir, `${id}.state`), 'utf8')) as StateFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log(`queue: state of ${id} unreadable (${(err as Error).message}); retrying all its recipients`);
    }
    if (state && state.v === 1) {
      msg.attempts = state.attempts;
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

  /** Persists a message's delivery state (attempts, recipients done). */
  protected async saveState(msg: QueuedMessage): Promise<void> {
    const state: StateFile = {
      v: 1,
      attempts: msg.attempts,
      nextAttemptAt: msg.nextAttemptAt,
      lastError: msg.lastError,
      rcpts: Object.fromEntries(msg.rcpts),
    };
    await writeFileAtomic(this.tmpDir, path.join(this.queueDir, `${msg.id}.state`), JSON.stringify(state));
  }

  /** Removes a message from disk and memory (delivered, bounced or deleted). The .msg goes last. */
  protected async remove(msg: QueuedMessage): Promise<void> {
    this.messages.delete(msg.id);
    await fsp.unlink(path.join(this.queueDir, `${msg.id}.state`)).catch(() => {});
    await fsp.unlink(msg.file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') this.log(`queue: cannot remove ${msg.file}: ${err.message}`);
    });
  }

  /** A read stream of the raw message bytes (the trailer excluded). */
  protected openData(msg: QueuedMessage): Readable {
    if (msg.size === 0) return Readable.from([]);
    return createReadStream(msg.file, { start: 0, end: msg.size - 1 });
  }

  list(): QueueItem[] {
    const out: QueueItem[] = [];
    for (const m of this.messages.values()) {
      const to: string[] = [];
      const done: QueueItem['done'] = [];
      for (const [addr, r] of m.rcpts) {
        if (r.status === 'pending') to.push(addr);
        else done.push({ to: addr, status: r.status });
      }
      out.push({
        id: m.id,
        from: m.envelope.from,
        to,
        done,
        size: m.size,
        receivedAt: m.envelope.receivedAt,
        kind: m.kind,
        status: m.delivering ? 'delivering' : m.attempts > 0 ? 'deferred' : 'queued',
        attempts: m.attempts,
        nextAttemptAt: m.nextAttemptAt,
        lastError: m.lastError,
      });
    }
    return out;
  }

  /** Retry now. false when the id is not queued. */
  retry(id: string): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    msg.nextAttemptAt = this.clock();
    this.onQueued(msg);
    return true;
  }

  /** Deletes a message without a bounce. false when the id is not queued. */
  delete(id: string): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    msg.removed = true;
    void this.remove(msg);
    return true;
  }

  /** Bounces a message now (a DSN to the sender for every pending recipient). false when the id is not queued. */
  bounce(id: string): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    msg.removed = true;
    void this.remove(msg);
    return true;
  }

  /** Stops delivering; everything stays on disk. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
    if (this.probeTimer !== null) this.timers.clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }
}
