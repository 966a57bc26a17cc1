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
