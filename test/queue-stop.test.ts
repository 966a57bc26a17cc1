/**
 * A commit after Queue.stop(): the commit worker (relay/queue/committer.ts) was shut down by stop(); a commit that
 * starts afterwards must not start a new worker thread (nothing would ever end it). It is refused at once with a
 * temporary error (ESTOPPED: the SMTP front answers `452 4.3.1 ... (ESTOPPED)`), its temp file goes, and what was
 * acknowledged before stays as it was. A commit begun before stop() still finishes and is acknowledged.
 * Regressions (each failed before the fix):
 *  - a small message (group commit in a segment) committed after stop() was stored through a new, never-ended worker;
 *  - a large message (streamed into its own temp file) committed after stop() likewise;
 *  - a large message whose commit began just before stop() reached the committer after it was closed: it started a
 *    worker that outlived stop().
 *  - a start() that failed partway (the spool could not be loaded) left the committer open: a commit afterwards was
 *    stored on a queue that never started, and the worker a commit started during it was never ended;
 *  - a start() that failed because a spool directory could not be made failed again, the same way, once it could.
 * Pinned: start() after stop() takes commits again (through a new worker, which the next stop() ends).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { WorkerOptions } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { deliveryFixtures } from './helpers/delivery-fixtures.ts';
import { testEnvelope } from './helpers/queue-harness.ts';
import { queueFiles, tick } from './helpers/spool-images.ts';

/** commit worker threads started, and those not yet exited (the delivery worker is not counted) */
const commitWorkers = vi.hoisted(() => ({ started: 0, alive: 0 }));

vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>();
  class CountingWorker extends real.Worker {
    constructor(entry: string | URL, options?: WorkerOptions) {
      super(entry, options);
      if (String(entry).endsWith('/commit-worker.mjs')) {
        commitWorkers.started++;
        commitWorkers.alive++;
        this.once('exit', () => commitWorkers.alive--);
      }
    }
  }
  return { ...real, Worker: CountingWorker, default: { ...real, Worker: CountingWorker } };
});

const { harness } = deliveryFixtures();
/** no local domain and no DNS: a queued message is deferred (temporary DNS failure) and stays in the spool */
const config = { smtp: { hostname: 'relay.test' }, delivery: { tls: 'off' as const } };
const tmpFiles = (dir: string) => fs.readdirSync(path.join(dir, 'tmp'));

/** Every commit worker started so far has exited (terminated threads report their exit a moment later). */
async function noCommitWorkerAlive(): Promise<void> {
  await expect.poll(() => commitWorkers.alive).toBe(0);
}

describe('commits after Queue.stop()', () => {
  it('a small message (group commit) committed after stop() is refused with ESTOPPED: no worker starts, nothing is left, the acknowledged message stays', async () => {
    const h = await harness(config);
    await h.queue.start();
    const acked = await h.submit('alice@sender.test', ['bob@example.test']);
    expect(commitWorkers.alive).toBe(1);
    await h.queue.stop();
    await noCommitWorkerAlive();
    const started = commitWorkers.started;
    const before = queueFiles(h.dir);
    expect(before.length).toBeGreaterThan(0);

    const w = h.queue.begin();
    w.write(Buffer.from('Subject: late\r\n\r\ntoo late\r\n'));
    const err = await w.commit(testEnvelope()).catch((e: NodeJS.ErrnoException) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: 'ESTOPPED', message: expect.stringMatching(/queue is stopping/) });
    // what the SMTP front would answer
    expect(`452 4.3.1 Insufficient system storage: the message could not be stored (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Try again later.`).toContain('(ESTOPPED)');
    await tick(50);
    expect(commitWorkers.started).toBe(started);
    expect(commitWorkers.alive).toBe(0);
    expect(tmpFiles(h.dir)).toEqual([]);
    expect(queueFiles(h.dir)).toEqual(before);
    // a refusal because of the stop is not a storage failure: the relay is not marked as unable to write
    expect(h.queue.acceptingMail).toBe(true);
    expect(h.queue.list().map((i) => i.id)).toEqual([acked]);

    // a restart finds the acknowledged message, and only it
    const q2 = h.reopen();
    await q2.start();
    expect(q2.list().map((i) => i.id)).toEqual([acked]);
  });

  it("a large message (its own file) committed after stop() is refused with ESTOPPED: no worker starts, its temp file is removed", async () => {
    const h = await harness(config, { flushBytes: 4096 });
    await h.queue.start();
    const acked = await h.submit('alice@sender.test', ['bob@example.test'], Buffer.alloc(64 * 1024, 'a'));
    await h.queue.stop();
    await noCommitWorkerAlive();
    const started = commitWorkers.started;
    const before = queueFiles(h.dir);
    expect(before).toContain(`${acked}.msg`);

    const w = h.queue.begin();
    // past flushBytes: streamed into tmp/ while it arrives
    for (let i = 0; i < 16; i++) w.write(Buffer.alloc(8192, 'b'));
    await expect.poll(() => tmpFiles(h.dir).length).toBe(1);
    await expect(w.commit(testEnvelope())).rejects.toMatchObject({ code: 'ESTOPPED', message: expect.stringMatching(/queue is stopping/) });
    expect(tmpFiles(h.dir)).toEqual([]);
    await tick(50);
    expect(commitWorkers.started).toBe(started);
    expect(commitWorkers.alive).toBe(0);
    expect(tmpFiles(h.dir)).toEqual([]);
    expect(queueFiles(h.dir)).toEqual(before);
    expect(h.queue.acceptingMail).toBe(true);
  });

  it('Queue.commitFile() called directly after stop() is refused the same way and removes the temp file it was given', async () => {
    const h = await harness(config);
    await h.queue.start();
    await h.queue.stop();
    const started = commitWorkers.started;
    const tmp = path.join(h.queue.tmpDir, 'direct.tmp');
    fs.writeFileSync(tmp, 'streamed so far');
    await expect(h.queue.commitFile(tmp, path.join(h.queue.queueDir, 'direct.msg'), [Buffer.from('rest')], 1, true)).rejects.toMatchObject({ code: 'ESTOPPED' });
    expect(tmpFiles(h.dir)).toEqual([]);
    expect(queueFiles(h.dir)).toEqual([]);
    expect(h.queue.committing.size).toBe(0);
    await tick(50);
    expect(commitWorkers.started).toBe(started);
    expect(commitWorkers.alive).toBe(0);
  });

  it('a large message whose commit began just before stop() is acknowledged, and stop() ends the worker it used', async () => {
    const h = await harness(config, { flushBytes: 64 * 1024 });
    await h.queue.start();
    const w = h.queue.begin();
    // 16 MiB streamed in the background: its writes are still under way when stop() closes the committer
    for (let i = 0; i < 256; i++) w.write(Buffer.alloc(64 * 1024, 'c'));
    const commit = w.commit(testEnvelope());
    await h.queue.stop();
    const { id } = await commit;
    expect(queueFiles(h.dir)).toContain(`${id}.msg`);
    await noCommitWorkerAlive();
    expect(tmpFiles(h.dir)).toEqual([]);
  });

  it('start() after stop() takes commits again, through a new worker that the next stop() ends', async () => {
    const h = await harness(config);
    await h.queue.start();
    await h.queue.stop();
    await h.queue.start();
    const started = commitWorkers.started;
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    expect(commitWorkers.started).toBe(started + 1);
    expect(h.queue.list().map((i) => i.id)).toContain(id);
    await h.queue.stop();
    await noCommitWorkerAlive();
  });
});

/**
 * A start() that fails partway must undo what it started (the committer's open(), and anything after it) and throw
 * the error that made it fail: the queue is then as stopped (commits refused with ESTOPPED, no worker left), and a
 * later start(), once the fault is fixed, works. The fault is structural (the spool's corrupt/ is a file, so a message
 * that cannot be read cannot be moved aside): chmod would not stop a test running as root.
 */
describe('a Queue.start() that fails partway', () => {
  /** A large message has its own .msg (loaded before the corrupt one, which sorts last); corrupt/ is a file. */
  async function brokenSpool() {
    const h = await harness(config, { flushBytes: 4096 });
    await h.queue.start();
    const acked = await h.submit('alice@sender.test', ['bob@example.test'], Buffer.alloc(64 * 1024, 'a'));
    await h.queue.stop();
    await noCommitWorkerAlive();
    expect(queueFiles(h.dir)).toContain(`${acked}.msg`);
    fs.writeFileSync(path.join(h.dir, 'queue', 'ZZZZZZZZZZZZZZZZZ.msg'), 'not a spool file');
    fs.writeFileSync(path.join(h.dir, 'corrupt'), 'in the way');
    return { h, acked };
  }

  it('throws the error that made it fail and leaves no commit worker: a commit under way during it is acknowledged, the worker it started is ended', async () => {
    const { h, acked } = await brokenSpool();
    // the first queue's own stop may end a delivery attempt (its MX lookup fails here): only what follows counts
    const seen = h.events.length;
    // a restart: a fresh Queue on the spool
    const q = h.reopen();
    const w = q.begin();
    w.write(Buffer.from('Subject: during start\r\n\r\nbody\r\n'));
    // reaches the committer while start() runs (the group commit waits a turn): it starts a commit worker
    const during = w.commit(testEnvelope());
    await expect(q.start()).rejects.toMatchObject({ code: 'EEXIST', path: path.join(h.dir, 'corrupt') });
    const { id } = await during;
    expect(commitWorkers.started).toBeGreaterThan(0);
    // nothing left running: the worker the commit started is ended
    await noCommitWorkerAlive();
    // nothing half-started: the message loaded before the fault is not being delivered
    expect(q.activeDeliveries).toBe(0);
    expect(h.events.slice(seen).filter((e) => e.kind === 'deferred')).toEqual([]);

    // the fault is fixed: a start() loads everything and takes commits again
    fs.rmSync(path.join(h.dir, 'corrupt'));
    await q.start();
    expect(q.list().map((i) => i.id).sort()).toEqual([acked, id].sort());
    expect(fs.readdirSync(path.join(h.dir, 'corrupt'))).toEqual(['ZZZZZZZZZZZZZZZZZ.msg']);
    const later = await h.submit('alice@sender.test', ['bob@example.test']);
    expect(q.list().map((i) => i.id)).toContain(later);
    await q.stop();
    await noCommitWorkerAlive();
  });

  it('after it failed, a commit is refused with ESTOPPED and starts no worker, as after stop()', async () => {
    const { h } = await brokenSpool();
    // start() after stop(): the committer is opened again, then the load fails
    await expect(h.queue.start()).rejects.toMatchObject({ code: 'EEXIST', path: path.join(h.dir, 'corrupt') });
    await noCommitWorkerAlive();
    const started = commitWorkers.started;
    const before = queueFiles(h.dir);
    const w = h.queue.begin();
    w.write(Buffer.from('Subject: after a failed start\r\n\r\nbody\r\n'));
    await expect(w.commit(testEnvelope())).rejects.toMatchObject({ code: 'ESTOPPED' });
    expect(commitWorkers.started).toBe(started);
    expect(commitWorkers.alive).toBe(0);
    expect(queueFiles(h.dir)).toEqual(before);
    expect(tmpFiles(h.dir)).toEqual([]);
    expect(h.queue.acceptingMail).toBe(true);
  });

  it('a spool subdirectory that is a file: start() throws its error and takes no commit; once the fault is fixed, start() creates the directory and works', async () => {
    const h = await harness(config);
    await h.queue.ready;
    // a restart on a spool whose tmp/ is a file
    fs.rmSync(path.join(h.dir, 'tmp'), { recursive: true });
    fs.writeFileSync(path.join(h.dir, 'tmp'), 'in the way');
    const q = h.reopen();
    await expect(q.start()).rejects.toMatchObject({ code: 'EEXIST', path: path.join(h.dir, 'tmp') });
    const started = commitWorkers.started;
    const w = q.begin();
    w.write(Buffer.from('Subject: not started\r\n\r\nbody\r\n'));
    await expect(w.commit(testEnvelope())).rejects.toBeInstanceOf(Error);
    expect(commitWorkers.started).toBe(started);
    expect(commitWorkers.alive).toBe(0);

    fs.rmSync(path.join(h.dir, 'tmp'));
    await q.start();
    expect(fs.statSync(path.join(h.dir, 'tmp')).isDirectory()).toBe(true);
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    expect(q.list().map((i) => i.id)).toEqual([id]);
    await q.stop();
    await noCommitWorkerAlive();
  });
});
