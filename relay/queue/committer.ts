/**
 * Who makes the queue's commits durable: the group-commit segments (GroupCommit in spool.ts) and a large message's
 * own file (streamed into its temp file meanwhile). In the relay, a worker thread: the six calls of a commit (create, write, fdatasync, close, rename, directory fsync) run there back to back, so the
 * event loop gives one turn per commit instead of a thread-pool round trip per call, and never waits for the disk.
 * Measured (bench/RESULTS.md, session 3, seven alternated pairs each): commit latency p50 6.1-8.5 ms -> 3.2-4.1 ms;
 * accepted msgs/s at 20 sessions +2% to +21% (mean +11%), at 100 sessions -21% to +11% (mean -5%, inside the noise).
 *
 * A test that injects faults with a closure (QueueOptions.fault) gets the same steps (commit-steps.mjs) on the
 * calling thread, since a closure cannot cross to a worker. The crash hook of the environment works in the worker.
 */
import fs from 'node:fs';
import { OnDemandWorker } from './on-demand-worker.ts';
import { commitFile, type StepHook } from './commit-steps.mjs';

export interface SpoolCommitter {
  /**
   * Resolves once `target` in the queue directory holds `bufs` durably (written, fdatasynced, renamed from `tmp`, the
   * directory fsynced). `append`: `tmp` exists (a large message streamed into it, its descriptor closed) and `bufs`
   * go at its end. Rejects with nothing left behind: neither `tmp` nor `target`.
   */
  publish(tmp: string, target: string, bufs: Buffer[], messages: number, append?: boolean): Promise<void>;
  /** Waits for the commits under way, then releases what it holds; publish() may be called again afterwards. */
  close(): Promise<void>;
  /**
   * The owner stops (Queue.stop()): from now on, until open(), publish() starts nothing and rejects at once with
   * ESTOPPED (a temporary error; the temp file of an `append` is removed); then as close(). A committer that holds no
   * thread (InlineCommitter, tests only) has nothing to start, and keeps taking commits.
   */
  shutDown(): Promise<void>;
  /** The owner starts (again, Queue.start()): publish() is taken again. */
  open(): void;
}

/** A commit refused because the queue stops (the relay is shutting down): the sender should try again later. */
export function stoppedError(): NodeJS.ErrnoException {
  return Object.assign(new Error('the queue is stopping (the relay is shutting down): the message was not stored'), { code: 'ESTOPPED' });
}

/** The bytes to commit in one ArrayBuffer of their own, so it can be moved to the worker, not copied again. */
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

/**
 * The steps on the calling thread, with a test's fault hook before each (a promise it returns is waited for, so other
 * work can run while a commit is at that step, as it can while the worker is there). Each step blocks the event
 * loop: tests only.
 */
export class InlineCommitter implements SpoolCommitter {
  constructor(
    private readonly queueDir: string,
    private readonly inject: StepHook,
  ) {}

  async publish(tmp: string, target: string, bufs: Buffer[], messages: number, append = false): Promise<void> {
    const dirFd = fs.openSync(this.queueDir, 'r');
    try {
      await commitFile(tmp, target, new Uint8Array(ownBytes(bufs)), dirFd, this.queueDir, messages, append, this.inject);
    } finally {
      fs.closeSync(dirFd);
    }
  }

  async close(): Promise<void> {}

  /**
   * Nothing to end: the steps run on the calling thread. Commits stay possible while the queue is stopped (the fault
   * tests commit on a stopped queue and run start() from the hook, in the middle of such a commit).
   */
  async shutDown(): Promise<void> {}

  open(): void {}
}

type Reply = { id: number; ok: true } | { id: number; ok: false; code: string | null; message: string };

/** The steps in a worker thread, started at the first commit (and again after it died or was closed). */
export class WorkerCommitter implements SpoolCommitter {
  private readonly thread: OnDemandWorker<{ tmp: string; target: string }, Reply>;
  /** shutDown() was called, open() not since: a publish() would start a worker that nothing ends */
  private shut = false;

  constructor(queueDir: string, log: (line: string) => void) {
    this.thread = new OnDemandWorker({
      name: 'the commit worker',
      // plain JavaScript: starts in a few ms, without the TypeScript loader (commit-steps.mjs)
      entry: new URL('./commit-worker.mjs', import.meta.url),
      workerData: { queueDir },
      answerOf: (m) => {
        const r = m as Reply | null;
        return typeof r?.id === 'number' ? { id: r.id, answer: r } : null;
      },
      lost: (calls, reason, crashed) => {
        if (crashed) log(`queue: ${reason}; ${calls.length} commits under way failed (their senders get a temporary error)`);
        for (const c of calls) {
          // it may have got as far as the rename: leave neither file (the sender is told to try again). The commit
          // settles only once both are gone, as publish() promises: the caller then takes the target out of
          // `committing`, and a start() scanning queue/ after that must not find (and load) a refused segment.
          const gone = [c.ctx.tmp, c.ctx.target].map((f) => fs.promises.unlink(f).catch(() => {}));
          void Promise.all(gone).then(() => c.resolve({ id: 0, ok: false, code: 'EWORKER', message: reason }));
        }
      },
      log: (line) => log(`queue: ${line}`),
    });
  }

  async publish(tmp: string, target: string, bufs: Buffer[], messages: number, append = false): Promise<void> {
    if (this.shut) {
      // nothing started for it; a large message's temp file goes (a segment's is created by the worker: none yet)
      if (append) await fs.promises.unlink(tmp).catch(() => {});
      throw stoppedError();
    }
    const data = ownBytes(bufs);
    const r = await this.thread.call({ tmp, target, data, messages, append }, { tmp, target }, [data]).answer;
    if (!r.ok) throw Object.assign(new Error(r.message), r.code ? { code: r.code } : {});
  }

  /** @internal tests: the worker dies as if it crashed */
  async killWorker(): Promise<void> {
    await this.thread.kill();
  }

  async shutDown(): Promise<void> {
    // at once, before any wait: a commit arriving while the worker finishes is refused, not sent to a new worker
    this.shut = true;
    await this.close();
  }

  open(): void {
    this.shut = false;
  }

  async close(): Promise<void> {
    const w = this.thread.detach();
    if (!w) return;
    // commits already sent finish (each is a few ms); a new publish() starts a new worker meanwhile
    while (this.thread.pendingOn(w) > 0) {
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
