/**
 * The commit worker (relay/queue/committer.ts): segments are written in a worker thread. What it must keep when the
 * worker fails: every commit ends (resolved with the file durable, or rejected with nothing left), the failure is
 * temporary (the next commit starts a new worker), and close() lets commits under way finish.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerCommitter } from '../relay/queue/committer.ts';
import { OnDemandWorker } from '../relay/queue/on-demand-worker.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await fsp.rm(d, { recursive: true, force: true });
});

async function spoolDir(): Promise<{ tmp: string; queue: string }> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'rw-committer-'));
  dirs.push(d);
  const tmp = path.join(d, 'tmp');
  const queue = path.join(d, 'queue');
  await fsp.mkdir(tmp);
  await fsp.mkdir(queue);
  return { tmp, queue };
}

describe('WorkerCommitter', () => {
  it('writes the parts in order, durably named in queue/, and leaves no temp file', async () => {
    const { tmp, queue } = await spoolDir();
    const logs: string[] = [];
    const c = new WorkerCommitter(queue, (l) => logs.push(l));
    try {
      const parts = [Buffer.from('RWS1 header\n'), Buffer.alloc(100_000, 7), Buffer.from('{"v":1}')];
      await c.publish(path.join(tmp, 'a.seg'), path.join(queue, 'a.seg'), parts, 1);
      expect((await fsp.readFile(path.join(queue, 'a.seg'))).equals(Buffer.concat(parts))).toBe(true);
      expect(await fsp.readdir(tmp)).toEqual([]);
      // the caller's buffers are not detached by the move to the worker
      expect(parts[1]!.length).toBe(100_000);
      expect(logs).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("a large message's own file: the rest goes at the end of the temp file it was streamed into, then the same durable rename", async () => {
    const { tmp, queue } = await spoolDir();
    const c = new WorkerCommitter(queue, () => {});
    try {
      const streamed = Buffer.alloc(300_000, 3);
      await fsp.writeFile(path.join(tmp, 'big.tmp'), streamed);
      const tail = [Buffer.from('last chunk'), Buffer.from('{"v":1}')];
      await c.publish(path.join(tmp, 'big.tmp'), path.join(queue, 'big.msg'), tail, 1, true);
      expect((await fsp.readFile(path.join(queue, 'big.msg'))).equals(Buffer.concat([streamed, ...tail]))).toBe(true);
      expect(await fsp.readdir(tmp)).toEqual([]);
      // a temp file that is not there (the stream failed and cleaned up) is an error, and nothing appears in queue/
      await expect(c.publish(path.join(tmp, 'gone.tmp'), path.join(queue, 'gone.msg'), tail, 1, true)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await fsp.readdir(queue)).toEqual(['big.msg']);
    } finally {
      await c.close();
    }
  });

  it('a failing step rejects with the errno and leaves neither file', async () => {
    const { tmp, queue } = await spoolDir();
    const c = new WorkerCommitter(queue, () => {});
    try {
      await fsp.writeFile(path.join(tmp, 'taken.seg'), 'not ours');
      // the temp file is created exclusively: an existing one is EEXIST, and it is not ours to remove
      await expect(c.publish(path.join(tmp, 'taken.seg'), path.join(queue, 'x.seg'), [Buffer.from('x')], 1)).rejects.toMatchObject({ code: 'EEXIST' });
      expect(await fsp.readdir(queue)).toEqual([]);
      // the rename fails (its target directory is gone): the temp file is removed
      await expect(c.publish(path.join(tmp, 'b.seg'), path.join(queue, 'missing', 'b.seg'), [Buffer.from('b')], 1)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await fsp.readdir(tmp)).toEqual(['taken.seg']);
      // and the worker goes on
      await c.publish(path.join(tmp, 'c.seg'), path.join(queue, 'c.seg'), [Buffer.from('c')], 1);
      expect(await fsp.readdir(queue)).toEqual(['c.seg']);
    } finally {
      await c.close();
    }
  });

  it('a worker that cannot start fails its commits as temporary (EWORKER), and the next commit starts a new one', async () => {
    const { tmp, queue } = await spoolDir();
    const gone = path.join(queue, 'not-yet');
    const logs: string[] = [];
    const c = new WorkerCommitter(gone, (l) => logs.push(l));
    try {
      const err = await c.publish(path.join(tmp, 'a.seg'), path.join(gone, 'a.seg'), [Buffer.from('a')], 1).catch((e: NodeJS.ErrnoException) => e);
      expect(err).toMatchObject({ code: 'EWORKER' });
      expect(logs.join('\n')).toMatch(/commit worker failed: .*ENOENT.*1 commits under way failed/s);
      await fsp.mkdir(gone);
      await c.publish(path.join(tmp, 'b.seg'), path.join(gone, 'b.seg'), [Buffer.from('b')], 1);
      expect(await fsp.readdir(gone)).toEqual(['b.seg']);
    } finally {
      await c.close();
    }
  });

  it('killed with commits under way: each ends either durable and whole, or rejected with nothing left', async () => {
    const { tmp, queue } = await spoolDir();
    const c = new WorkerCommitter(queue, () => {});
    try {
      const body = (i: number) => [Buffer.alloc(1024 * 1024, i)];
      const commits = Array.from({ length: 40 }, (_, i) =>
        c.publish(path.join(tmp, `${i}.seg`), path.join(queue, `${i}.seg`), body(i), 1).then(
          () => 'ok' as const,
          (e: NodeJS.ErrnoException) => e.code,
        ),
      );
      // 40 MiB to write and fsync one after the other: most are still to come when the first is done
      await commits[0];
      await c.killWorker();
      const results = await Promise.all(commits);
      expect(results.every((r) => r === 'ok' || r === 'EWORKER')).toBe(true);
      expect(results).toContain('EWORKER');
      // the unlinks of the failed ones are asynchronous
      await expect
        .poll(async () => (await fsp.readdir(queue)).sort())
        .toEqual(results.flatMap((r, i) => (r === 'ok' ? [`${i}.seg`] : [])).sort());
      for (const [i, r] of results.entries()) {
        if (r === 'ok') expect((await fsp.readFile(path.join(queue, `${i}.seg`))).equals(Buffer.concat(body(i)))).toBe(true);
      }
      await expect.poll(() => fsp.readdir(tmp)).toEqual([]);
      // a new worker takes the next commit
      await c.publish(path.join(tmp, 'next.seg'), path.join(queue, 'next.seg'), [Buffer.from('n')], 1);
    } finally {
      await c.close();
    }
  });

  it('close() lets the commits already sent finish, and a later commit works', async () => {
    const { tmp, queue } = await spoolDir();
    const c = new WorkerCommitter(queue, () => {});
    const commits = Array.from({ length: 10 }, (_, i) => c.publish(path.join(tmp, `${i}.seg`), path.join(queue, `${i}.seg`), [Buffer.alloc(8192, i)], 1));
    await c.close();
    await expect(Promise.all(commits)).resolves.toHaveLength(10);
    expect((await fsp.readdir(queue)).length).toBe(10);
    await c.publish(path.join(tmp, 'later.seg'), path.join(queue, 'later.seg'), [Buffer.from('l')], 1);
    await c.close();
    expect((await fsp.readdir(queue)).length).toBe(11);
  });
});

describe('OnDemandWorker', () => {
  it('a request that cannot be sent (not cloneable) is settled at once through lost, and the worker is not held for it', async () => {
    const { queue } = await spoolDir();
    const lost: string[] = [];
    const t = new OnDemandWorker<string, string>({
      name: 'the commit worker',
      entry: new URL('../relay/queue/commit-worker.mjs', import.meta.url),
      workerData: { queueDir: queue },
      answerOf: () => null,
      lost: (calls, reason, crashed) => {
        for (const c of calls) {
          lost.push(`${c.ctx}: ${reason} (crashed ${crashed})`);
          c.resolve('settled');
        }
      },
    });
    const { worker, answer } = t.call({ notCloneable: () => {} }, 'call 1');
    await expect(answer).resolves.toBe('settled');
    expect(lost).toEqual([expect.stringMatching(/^call 1: the commit worker was not sent the request \(.*could not be cloned.*\) \(crashed false\)$/)]);
    expect(t.pendingOn(worker)).toBe(0);
    t.detach();
    await worker.terminate();
  });
});
