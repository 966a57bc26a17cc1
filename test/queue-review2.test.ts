/**
 * Second review of the segment spool mends (2f33395) and the delivery worker (807b4bf), with a real Queue on a temp
 * spool, real loopback sinks and a real worker thread:
 *  - a Buffer that is a view into a bigger or pooled ArrayBuffer goes to the worker as an exact copy of the view;
 *    nothing on the queue's side is detached or changed;
 *  - a delivery asked for while close() runs settles; one after close() starts a new worker;
 *  - a process whose only work is a worker delivery waits for the answer, then exits (an idle cached connection in
 *    the worker does not keep it alive);
 *  - the worker dying mid-session defers the message (copied out with its state), and the retry goes through a new
 *    worker;
 *  - a commit (segment or own file) failing at its rename or directory fsync leaves nothing in `committing`, nothing in
 *    queue/, and a later start() loads nothing;
 *  - a copied-out message deleted while its origin segment lives is absent from a crash image, and its tombstone goes
 *    once the segment goes;
 *  - stop() with finished messages' unlinks pending, then start() on the same Queue, delivers nothing twice.
 * And regressions (each failed before its fix): an administrator's delete landing while the message's origin segment
 * is being unlinked stays deleted (D1); after a restart, a message copied out of a segment that still lives is
 * tombstoned when deleted (D2); a tombstone written while its origin segment goes is removed with it (D3); a delivery
 * asked for while close() runs goes to a new worker that stays the current one, and its result is what happened (W1).
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkerDeliverer } from '../relay/queue/deliverer.ts';
import type { AttemptResult } from '../relay/queue/smtp-client.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import { message } from './helpers/queue-harness.ts';
import { crashImage, deliveryRequest as request, queueFiles, segmentsOf as segments, tick, turn, until } from './helpers/spool-images.ts';


const { sink, refusingSink, harness } = deliveryFixtures();
const local = plainLocalDomains;
describe('pinned behaviour (review 2)', () => {
  it('a Buffer that is a view into a larger or pooled ArrayBuffer reaches the server byte for byte; the queue keeps its bytes', async () => {
    const s = await sink();
    const d = new WorkerDeliverer({ idleMs: 0, maxIdlePerAddress: 0 }, () => {});
    try {
      // a view in the middle of a bigger ArrayBuffer, surrounded by bytes that must not be sent
      const backing = Buffer.alloc(4096, 'Z');
      const inner = Buffer.from('Subject: view\r\n\r\nonly these bytes\r\n');
      inner.copy(backing, 1000);
      const view = backing.subarray(1000, 1000 + inner.length);
      // a small Buffer.from() lives in Node's shared 8 KiB pool
      const pooled = Buffer.from('Subject: pooled\r\n\r\npooled bytes\r\n');
      expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.length);
      expect(await d.deliver(request(s, { kind: 'buffer', bytes: view }))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
      expect(await d.deliver(request(s, { kind: 'buffer', bytes: pooled }))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
      const got = await s.waitFor(2);
      expect(got[0]!.data.equals(inner)).toBe(true);
      expect(got[1]!.data.toString()).toBe('Subject: pooled\r\n\r\npooled bytes\r\n');
      // nothing was detached or changed on this side
      expect(backing.byteLength).toBe(4096);
      expect(view.equals(inner)).toBe(true);
      expect(backing.subarray(0, 1000).every((b) => b === 0x5a)).toBe(true);
      expect(pooled.toString()).toBe('Subject: pooled\r\n\r\npooled bytes\r\n');
    } finally {
      await d.close();
    }
  });

  it('a delivery asked for while close() is under way settles, and one after close() goes through a new worker', async () => {
    const s = await sink();
    const d = new WorkerDeliverer({ idleMs: 5000, maxIdlePerAddress: 5 }, () => {});
    const body = { kind: 'buffer' as const, bytes: Buffer.from('Subject: c\r\n\r\nc\r\n') };
    try {
      expect(await d.deliver(request(s, body))).toMatchObject({ kind: 'done' });
      const closing = d.close();
      const racing = d.deliver(request(s, body));
      await closing;
      const r = await Promise.race([racing, tick(5000).then(() => 'hung' as const)]);
      expect(r).not.toBe('hung');
      expect(await d.deliver(request(s, body))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
    } finally {
      await d.close();
    }
  });

  it('a process whose only work is a worker delivery waits for its answer, then exits though a connection is cached', async () => {
    const s = await sink();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-worker-ref-'));
    try {
      const script = path.join(dir, 'child.ts');
      const deliverer = path.resolve('relay/queue/deliverer.ts');
      fs.writeFileSync(
        script,
        `import { WorkerDeliverer } from ${JSON.stringify(deliverer)};
const d = new WorkerDeliverer({ idleMs: 60_000, maxIdlePerAddress: 5 }, () => {});
d.deliver({ target: { host: '127.0.0.1', ip: '127.0.0.1', port: ${s.port} }, from: 'a@sender.test', rcpts: ['b@example.test'], size: 22,
  source: { kind: 'buffer', bytes: Buffer.from('Subject: r\\r\\n\\r\\nref\\r\\n') }, tls: 'off', auth: null, heloName: 'relay.test',
  connectTimeoutMs: 5000, commandTimeoutMs: 5000 }).then((r) => console.log('RESULT ' + r.kind));
`,
      );
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const code = await Promise.race([
        new Promise<number | null>((r) => child.on('exit', (c) => r(c))),
        tick(20_000).then(() => {
          child.kill('SIGKILL');
          return 'hung' as const;
        }),
      ]);
      expect(out).toContain('RESULT done');
      expect(code).toBe(0);
      expect(s.messages).toHaveLength(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the delivery worker dying mid-session defers the message (copied out, not lost); the retry goes through a new worker', async () => {
    const clock = new FakeClock();
    let n = 0;
    const s = await sink({ dataDelayMs: () => (n++ === 0 ? 4000 : 0) });
    const h = await harness(local({ 'example.test': s }), { now: clock.now, timers: clock, retryDelaysMs: [60_000], jitter: 0 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test'], message('worker-death'));
    await expect.poll(() => s.activeTransactions).toBe(1);
    await (h.queue as unknown as { client: WorkerDeliverer }).client.killWorker();
    const deferred = await h.waitEvent('deferred', (e) => e.queueId === id);
    expect(deferred.reason).toMatch(/delivery worker exited/);
    await expect.poll(() => queueFiles(h.dir)).toEqual([`${id}.msg`, `${id}.state`]);
    expect(h.queue.list()).toMatchObject([{ id, attempts: 1, to: ['bob@example.test'] }]);
    clock.advance(60_000);
    await h.waitEvent('delivered', (e) => e.queueId === id);
    await expect.poll(() => queueFiles(h.dir)).toEqual([]);
    expect(h.queue.size).toBe(0);
  });

  for (const kind of ['segment', 'own-file'] as const) {
    for (const op of ['rename', 'dirsync'] as const) {
      it(`${kind === 'segment' ? 'a segment' : "a large message's own-file"} commit failing at its ${op} leaves nothing in committing, nothing queued, and a later start() loads nothing`, async () => {
        const s = await sink();
        let fail = true;
        const h = await harness(local({ 'example.test': s }), {
          flushBytes: 1024,
          fault: (at) => {
            if (at === op && fail) throw Object.assign(new Error(`injected ${op} failure`), { code: 'EIO' });
          },
        });
        const body = kind === 'segment' ? message('small') : message('large', 'x'.repeat(4000));
        await expect(h.submit('alice@sender.test', ['bob@example.test'], body)).rejects.toThrow(/injected/);
        expect(h.queue.committing.size).toBe(0);
        expect(queueFiles(h.dir)).toEqual([]);
        fail = false;
        await h.queue.start();
        expect(h.queue.size).toBe(0);
        const id = await h.submit('alice@sender.test', ['bob@example.test'], body);
        await h.waitEvent('delivered', (e) => e.queueId === id);
        await tick(100);
        expect(s.messages).toHaveLength(1);
      });
    }
  }

  it('a copied-out message deleted while its origin segment lives stays deleted at every step, and its tombstone goes with the segment', async () => {
    const slow = await sink({ dataDelayMs: 1500 });
    const refuse = await refusingSink();
    const h = await harness(local({ 'slow.test': slow, 'refuse.test': refuse }));
    await h.queue.start();
    const [a, m] = await Promise.all([h.submit('alice@sender.test', ['x@slow.test']), h.submit('alice@sender.test', ['y@refuse.test'])]);
    await h.waitEvent('deferred', (e) => e.queueId === m);
    expect(await h.queue.delete(m!)).toEqual({ result: 'removed' });
    const msgFile = path.join(h.dir, 'queue', `${m}.msg`);
    await until(() => !fs.existsSync(msgFile));
    await tick(20);
    const image = await crashImage(h.dir);
    expect(image.segments).toHaveLength(1);
    expect(image.ids).toEqual([a]);
    await h.waitEvent('delivered', (e) => e.queueId === a);
    await expect.poll(() => queueFiles(h.dir)).toEqual([]);
    expect((await crashImage(h.dir)).ids).toEqual([]);
  });

  it('stop() right after deliveries, with their unlinks pending, then start() on the same Queue delivers nothing twice', async () => {
    const s = await sink();
    const h = await harness(local({ 'example.test': s }));
    await h.queue.start();
    const ids = await Promise.all([1, 2, 3].map((i) => h.submit('alice@sender.test', ['bob@example.test'], message(`u${i}`))));
    await s.waitFor(3);
    await until(() => h.queue.size === 0);
    await h.queue.stop();
    expect(queueFiles(h.dir)).toEqual([]);
    await h.queue.start();
    expect(h.queue.size).toBe(0);
    await tick(200);
    expect(s.messages).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
  });
});

describe('deletes and the segment spool (review 2)', () => {
  it('D1a: a delete that lands as the first attempt ends, of the only member of its segment, stays deleted after a crash', async () => {
    const refuse = await refusingSink();
    const h = await harness(local({ 'refuse.test': refuse }));
    await h.queue.start();
    let id = '';
    let said: boolean | null = null;
    // a console that deletes the moment the deferral is shown
    h.bus.subscribe((e) => {
      if (e.kind === 'deferred' && e.queueId === id && said === null) void h.queue.delete(id).then((r) => (said = r.result === 'removed'));
    });
    id = await h.submit('alice@sender.test', ['y@refuse.test']);
    const msgFile = path.join(h.dir, 'queue', `${id}.msg`);
    await until(() => said !== null && h.queue.list().length === 0 && !fs.existsSync(msgFile));
    expect(said).toBe(true);
    // the delete is on disk now (the .msg unlinked; remove() fsyncs the directory next): a crash here
    const image = await crashImage(h.dir);
    expect(image.ids).toEqual([]);
  });

  it('D1b: a copied-out message deleted just after its origin segment is released (its unlink pending) stays deleted after a crash', async () => {
    const ok = await sink({ dataDelayMs: 300 });
    const refuse = await refusingSink();
    const h = await harness(local({ 'ok.test': ok, 'refuse.test': refuse }));
    await h.queue.start();
    let a = '';
    let m = '';
    let said: boolean | null = null;
    h.bus.subscribe((e) => {
      // the last other member is delivered: its segment is released within this turn; the admin deletes just after
      if (e.kind === 'delivered' && e.queueId === a) setImmediate(() => void h.queue.delete(m).then((r) => (said = r.result === 'removed' || r.result === 'pending')));
    });
    [a, m] = await Promise.all([h.submit('alice@sender.test', ['x@ok.test']), h.submit('alice@sender.test', ['y@refuse.test'])]);
    expect(segments(h.dir)).toHaveLength(1);
    await h.waitEvent('deferred', (e) => e.queueId === m);
    const msgFile = path.join(h.dir, 'queue', `${m}.msg`);
    await until(() => said !== null && !fs.existsSync(msgFile));
    expect(said).toBe(true);
    const image = await crashImage(h.dir);
    // a may come back (delivered from a segment: at least once); m was deleted by the administrator
    expect(image.ids).not.toContain(m);
  });

  it('D2: after a restart, a message copied out of a segment that still lives gets a tombstone when deleted and stays deleted', async () => {
    const slow = await sink({ dataDelayMs: 4000 });
    const refuse = await refusingSink();
    const h = await harness(local({ 'slow.test': slow, 'refuse.test': refuse }));
    await h.queue.start();
    const [a, m] = await Promise.all([h.submit('alice@sender.test', ['x@slow.test']), h.submit('alice@sender.test', ['y@refuse.test'])]);
    await h.waitEvent('deferred', (e) => e.queueId === m);
    // m has its own .msg; a is still in its first attempt, so the segment (with m's record) stays; the relay restarts
    await h.queue.stop();
    expect(segments(h.dir)).toHaveLength(1);
    const again = h.reopen();
    await again.start();
    expect(again.list().map((i) => i.id).sort()).toEqual([a, m].sort());
    expect(await again.delete(m!)).toEqual({ result: 'removed' });
    const msgFile = path.join(h.dir, 'queue', `${m}.msg`);
    await until(() => !fs.existsSync(msgFile));
    await tick(50); // the directory fsync after the unlink
    expect(segments(h.dir)).toHaveLength(1); // a is in its (second) attempt: the segment still records m
    const image = await crashImage(h.dir);
    expect(image.ids).toEqual([a]);
  });

  it('D3: a tombstone written while the origin segment goes is removed with it', async () => {
    const ok = await sink({ dataDelayMs: 300 });
    const refuse = await refusingSink();
    const h = await harness(local({ 'ok.test': ok, 'refuse.test': refuse }));
    await h.queue.start();
    let a = '';
    let m = '';
    h.bus.subscribe((e) => {
      // delete m in the same turn as the last other member's delivery: its tombstone is being written while a's end
      // releases the segment
      if (e.kind === 'delivered' && e.queueId === a) void h.queue.delete(m);
    });
    [a, m] = await Promise.all([h.submit('alice@sender.test', ['x@ok.test']), h.submit('alice@sender.test', ['y@refuse.test'])]);
    await h.waitEvent('deferred', (e) => e.queueId === m);
    await ok.waitFor(1);
    await until(() => h.queue.size === 0);
    await tick(300);
    await h.queue.stop();
    expect(queueFiles(h.dir)).toEqual([]);
  });
});

describe('worker close', () => {
  it('W1: a delivery started while close() runs goes to a new, current worker; its result is what happened', async () => {
    const slow = await sink({ dataDelayMs: 3000 });
    const next = await sink();
    const d = new WorkerDeliverer({ idleMs: 2000, maxIdlePerAddress: 5 }, () => {});
    const body = { kind: 'buffer' as const, bytes: Buffer.from('Subject: w1\r\n\r\nw1\r\n') };
    const first = d.deliver(request(slow, body));
    await expect.poll(() => slow.activeTransactions).toBe(1);
    // a caller that tries its next address when a session fails (as runJob does while the queue runs)
    let second: Promise<AttemptResult> | null = null;
    void first.then(() => (second = d.deliver(request(next, body))));
    await d.close();
    await expect.poll(() => second).not.toBeNull();
    const r = await second!;
    // it reports exactly what reached the server
    expect(r.kind === 'done' && r.results[0]!.code === 250).toBe(next.messages.length === 1);
    // the new worker is the current one: a second close() ends it, and nothing more is delivered afterwards
    await d.close();
    await tick(300);
    expect(next.messages.length).toBeLessThanOrEqual(1);
  });
});
