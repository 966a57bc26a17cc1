/**
 * Fourth review: the commit worker (relay/queue/committer.ts, commit-steps.mjs, then segment-commit.mjs) and the shared on-demand worker
 * lifecycle (on-demand-worker.ts), with real files, a real Queue, real worker threads and a real relay over SMTP.
 * Regressions (each failed before its fix):
 *  - C1: a commit that fails because the commit worker died rejects with nothing left behind, as the interface says:
 *    its temp file and its target are gone when the rejection is seen (they were unlinked in the background, so a
 *    start() in between could load a segment whose senders were refused, and whose file then vanished);
 *  - C2: a test's fault hook that returns a promise is waited for between the steps of a segment commit on the calling
 *    thread, so start() can really run while a segment is between its rename and its directory fsync (the commit was
 *    all synchronous: such a start() only ever ran after the commit, and the tests of that interleaving proved nothing).
 * Pinned: when the commit worker dies with a DATA commit under way, the sender gets 452 4.3.1 (EWORKER), the relay
 * keeps accepting, and the next message is queued and delivered through a new worker.
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { WorkerCommitter } from '../relay/queue/committer.ts';
import type { Queue } from '../relay/queue/spool.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import { message } from './helpers/queue-harness.ts';
import { startTestRelay } from './helpers/relay-harness.ts';
import type { Sink } from './helpers/sink.ts';
import { RawSmtp } from './helpers/smtp-client.ts';
import { segmentsOf, tick } from './helpers/spool-images.ts';

const { sink, harness } = deliveryFixtures();
const local = (domains: Record<string, Sink>) => localDomains(domains, { tls: 'off' });

async function spoolDir(): Promise<{ root: string; tmp: string; queue: string }> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'rw-review4-'));
  const tmp = path.join(root, 'tmp');
  const queue = path.join(root, 'queue');
  await fsp.mkdir(tmp);
  await fsp.mkdir(queue);
  return { root, tmp, queue };
}

describe('commit worker (review 4)', () => {
  it('C1: a commit failed by the worker dying has left neither its temp file nor its target when it rejects', async () => {
    const { root, tmp, queue } = await spoolDir();
    const c = new WorkerCommitter(queue, () => {});
    try {
      const t = path.join(tmp, 'big.seg');
      const target = path.join(queue, 'big.seg');
      const leftAtRejection: string[] = [];
      // 64 MiB to write and fdatasync: the worker is inside this commit (its temp file exists) when it is killed
      const commit = c.publish(t, target, [Buffer.alloc(64 * 1024 * 1024, 1)], 1).then(
        () => 'ok' as const,
        (e: NodeJS.ErrnoException) => {
          // what a start() scanning right now would find of a commit whose senders are being refused
          for (const f of [t, target]) if (fs.existsSync(f)) leftAtRejection.push(path.relative(root, f));
          return e.code;
        },
      );
      while (!fs.existsSync(t)) await new Promise((r) => setImmediate(r));
      // the thread pool is busy (as under load): an unlink sent there in the background finishes late
      const busy = Array.from({ length: 2 * Number(process.env.UV_THREADPOOL_SIZE ?? 4) }, () => promisify(crypto.pbkdf2)('x', 'y', 300_000, 64, 'sha512'));
      await c.killWorker();
      expect(await commit).toBe('EWORKER');
      expect(leftAtRejection).toEqual([]);
      await Promise.all(busy);
      expect(fs.readdirSync(tmp)).toEqual([]);
      expect(fs.readdirSync(queue)).toEqual([]);
    } finally {
      await c.close();
      await fsp.rm(root, { recursive: true, force: true });
    }
  });

  for (const op of ['rename', 'dirsync'] as const) {
    it(`C2: a fault hook's promise holds a segment commit at its ${op}: start() scans the spool meanwhile and loads nothing twice`, async () => {
      const s = await sink();
      let q: Queue | null = null;
      let armed = false;
      let during: { committing: number; segments: number } | null = null;
      const h = await harness(local({ 'example.test': s }), {
        fault: (at) => {
          if (at !== op || !armed) return;
          armed = false;
          // the whole start() runs while the segment is at this step (before its rename, or renamed but not yet durable)
          return q!.start().then(() => {
            during = { committing: q!.committing.size, segments: segmentsOf(h.dir).length };
          });
        },
      });
      q = h.queue;
      await q.start();
      await q.stop();
      armed = true;
      const ids = await Promise.all([1, 2, 3].map(() => h.submit('alice@sender.test', ['bob@example.test'])));
      expect(during).toEqual({ committing: 1, segments: op === 'rename' ? 0 : 1 });
      await s.waitFor(3);
      await tick(300);
      expect(s.messages).toHaveLength(3);
      expect(new Set(ids).size).toBe(3);
      expect(q.size).toBe(0);
    });
  }

  it('pinned: the commit worker dying under a DATA commit gives the sender 452 4.3.1 (EWORKER); the relay keeps accepting, the next message is queued and delivered', async () => {
    const s = await sink();
    const r = await startTestRelay({ domains: { 'example.com': { deliverTo: s.address, recipients: '*' } }, delivery: { tls: 'off' } });
    try {
      const q = r.relay.queue;
      const committer = q.committer as WorkerCommitter;
      const publish = committer.publish.bind(committer);
      let killNext = true;
      // the first commit goes to a worker that is killed as soon as it is asked (still starting: it never answers)
      committer.publish = (...args) => {
        const p = publish(...args);
        if (killNext) {
          killNext = false;
          void committer.killWorker();
        }
        return p;
      };
      const c = await RawSmtp.connect(r.port, { localAddress: '127.0.0.5' });
      try {
        await c.hello('client.test');
        const send = async (subject: string) => {
          expect((await c.cmd('MAIL FROM:<alice@example.org>')).code).toBe(250);
          expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
          return c.data(`Subject: ${subject}\r\n\r\nhello\r\n`);
        };
        const first = await send('first');
        expect(first.code).toBe(452);
        expect(first.text).toMatch(/4\.3\.1 .*EWORKER/);
        expect(q.acceptingMail).toBe(true);
        const second = await send('second');
        expect(second.code).toBe(250);
        await s.waitFor(1);
        expect(s.messages.map((m) => m.data.toString())).toEqual([expect.stringContaining('Subject: second')]);
      } finally {
        await c.quit();
      }
      // nothing of the refused commit is left in the spool
      await expect.poll(() => fs.readdirSync(path.join(r.dir, 'spool', 'queue'))).toEqual([]);
      expect(fs.readdirSync(path.join(r.dir, 'spool', 'tmp'))).toEqual([]);
    } finally {
      await r.stop();
    }
  });
});
