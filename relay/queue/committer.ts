/**
 * Who writes the queue's group-commit segments to disk (GroupCommit in spool.ts). In the relay, a worker thread: the
 * six calls of a commit (create, write, fdatasync, close, rename, directory fsync) run there back to back, so the
 * event loop gives one turn per segment instead of a thread-pool round trip per call, and never waits for the disk.
 * Measured at 20 sessions (bench/RESULTS.md, session 3): commit latency p50 6.1-8.5 ms -> 3.2-4.1 ms, accepted msgs/s
 * +3-19% (mean +9%) in alternated runs.
 *
 * A test that injects faults with a closure (QueueOptions.fault) gets the same steps (segment-commit.mjs) on the
 * calling thread, since a closure cannot cross to a worker. The crash hook of the environment works in the worker.
 */
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { publishSegmentSync, type StepHook } from './segment-commit.mjs';

export interface SegmentCommitter {
  /**
   * Resolves once `target` in the queue directory holds `bufs` durably (written, fdatasynced, renamed from `tmp`, the
   * directory fsynced). Rejects with nothing left behind: neither `tmp` nor `target`.
   */
  publish(tmp: string, target: string, bufs: Buffer[], messages: number): Promise<void>;
  /** Waits for the commits under way, then releases what it holds; publish() may be called again afterwards. */
  close(): Promise<void>;
}

/** The bytes of a segment in one ArrayBuffer of their own, so it can be moved to the worker, not copied again. */
function ownBytes(bufs: Buffer[]): ArrayBuffer {
  let total = 0;
  for (const b of bufs) total += b.length;
  const out = new Uint8Array(new ArrayBuffer(total));
  let off = 0;
  for (const b of bufs) {
    out.set(b, off);
    off += b.length;
  }
  return out.buffer;
}

/** The steps on the calling thread, with a test's fault hook before each. Blocks the event loop: tests only. */
export class InlineCommitter implements SegmentCommitter {
  constructor(
    private readonly queueDir: string,
    private readonly inject: StepHook,
  ) {}

  async publish(tmp: string, target: string, bufs: Buffer[], messages: number): Promise<void> {
    const dirFd = fs.openSync(this.queueDir, 'r');
    try {
      publishSegmentSync(tmp, target, new Uint8Array(ownBytes(bufs)), dirFd, this.queueDir, messages, this.inject);
    } finally {
      fs.closeSync(dirFd);
    }
  }

  async close(): Promise<void> {}
}

type Reply = { id: number; ok: true } | { id: number; ok: false; code: string | null; message: string };

interface Pending {
  worker: Worker;
  tmp: string;
  target: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The steps in a worker thread, started at the first commit (and again after it died or was closed). */
export class WorkerCommitter implements SegmentCommitter {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    private readonly queueDir: string,
    private readonly log: (line: string) => void,
  ) {}

  publish(tmp: string, target: string, bufs: Buffer[], messages: number): Promise<void> {
    const w = this.start();
    const id = this.nextId++;
    const data = ownBytes(bufs);
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { worker: w, tmp, target, resolve, reject });
      // referenced while commits are under way, so a process with nothing else to do waits for them
      w.ref();
      w.postMessage({ id, tmp, target, data, messages }, [data]);
    });
  }

  private underWay(w: Worker): Pending[] {
    return [...this.pending.values()].filter((p) => p.worker === w);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    // plain JavaScript: starts in a few ms, without the TypeScript loader (segment-commit.mjs)
    const w = new Worker(new URL('./commit-worker.mjs', import.meta.url), { workerData: { queueDir: this.queueDir } });
    w.unref();
    w.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p || p.worker !== w) return;
      this.pending.delete(m.id);
      if (this.underWay(w).length === 0) w.unref();
      if (m.ok) p.resolve();
      else p.reject(Object.assign(new Error(m.message), m.code ? { code: m.code } : {}));
    });
    let gone = false;
    const died = (reason: string) => {
      if (gone) return;
      gone = true;
      if (this.worker === w) this.worker = null;
      const lost = this.underWay(w);
      if (lost.length > 0) this.log(`queue: the commit worker ${reason}; ${lost.length} segment commits under way failed (their senders get a temporary error)`);
      for (const p of lost) {
        for (const [id, q] of this.pending) if (q === p) this.pending.delete(id);
        // it may have got as far as the rename: leave neither file (the sender was told to try again)
        for (const f of [p.tmp, p.target]) fs.unlink(f, () => {});
        p.reject(Object.assign(new Error(`the commit worker ${reason}`), { code: 'EWORKER' }));
      }
    };
    w.on('error', (err) => died(`failed: ${err.message}`));
    w.on('exit', (code) => died(`exited (code ${code})`));
    this.worker = w;
    return w;
  }

  /** @internal tests: the worker dies as if it crashed */
  async killWorker(): Promise<void> {
    await this.worker?.terminate();
  }

  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.worker = null;
    // commits already sent finish (each is a few ms); a new publish() starts a new worker meanwhile
    while (this.underWay(w).length > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          w.off('message', done);
          w.off('exit', done);
          setImmediate(resolve);
        };
        w.on('message', done);
        w.on('exit', done);
      });
    }
    await w.terminate();
  }
}
