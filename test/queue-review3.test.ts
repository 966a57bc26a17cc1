/**
 * Third review of the segment spool (2ab5938; the last four tests failed before their fixes): dying segments, pinned origins, tombstones, restarts. A real Queue on a
 * temp spool and real loopback sinks; crash images are copies of the spool taken at an instant and loaded by a fresh
 * Queue. Where an instant inside the queue's own disk calls matters, node:fs calls are observed (never changed in
 * what they do) to take the copy at that instant.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from '../relay/queue/spool.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import { copySpool, freshQueue, loadIds, queueFiles, segmentsOf as segments, tick, turn, until } from './helpers/spool-images.ts';

const { sink, refusingSink, harness } = deliveryFixtures();
const local = plainLocalDomains;
const copies: string[] = [];

afterEach(() => {
  vi.restoreAllMocks();
  for (const c of copies.splice(0)) fs.rmSync(c, { recursive: true, force: true });
});

/** The spool copied now (synchronously: nothing the queue does can land in between). */
function snapshot(dir: string): string {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-rev3-image-'));
  copies.push(copy);
  copySpool(dir, copy);
  return copy;
}

/** What a restart finds in a copy: the ids a fresh Queue loads from it. */
async function load(copy: string): Promise<string[]> {
  return loadIds(snapshot(copy));
}

/** Calls `on(file)` when the queue's fs.unlink of a file is called (before) / has returned (after), synchronously. */
function watchUnlinks(hooks: { before?: (file: string) => void | Promise<void>; after?: (file: string) => void }) {
  const real = fs.unlink.bind(fs);
  vi.spyOn(fs, 'unlink').mockImplementation(((file: fs.PathLike, cb: fs.NoParamCallback) => {
    const f = String(file);
    const go = () =>
      real(f, (err) => {
        if (!err) hooks.after?.(f);
        cb(err);
      });
    const wait = hooks.before?.(f);
    if (wait) void wait.then(go);
    else go();
  }) as typeof fs.unlink);
}

describe('dying origins and tombstones (review 3)', () => {
  it('a delete of a copied-out message whose origin is dying: a crash at any unlink keeps it deleted, and nothing is left behind', async () => {
    const refuse = await refusingSink();
    const slow = await sink({ dataDelayMs: 300, onData: () => ({ code: 451, message: '4.3.0 later' }) });
    const h = await harness(local({ 'refuse.test': refuse, 'slow.test': slow }));
    let m = '';
    const images: { file: string; copy: string }[] = [];
    watchUnlinks({
      before: (f) => {
        if (m && f.startsWith(path.join(h.dir, 'queue'))) images.push({ file: path.basename(f), copy: snapshot(h.dir) });
      },
      after: (f) => {
        if (m && f.startsWith(path.join(h.dir, 'queue'))) images.push({ file: `${path.basename(f)} (done)`, copy: snapshot(h.dir) });
      },
    });
    let said: boolean | null = null;
    h.bus.subscribe((e) => {
      if (e.kind === 'deferred' && e.queueId === m && said === null) void h.queue.delete(m).then((r) => (said = r.result === 'removed'));
    });
    await h.queue.start();
    const [a, mm] = await Promise.all([h.submit('alice@sender.test', ['x@refuse.test']), h.submit('alice@sender.test', ['y@slow.test'])]);
    m = mm;
    expect(segments(h.dir)).toHaveLength(1);
    await until(() => said !== null && h.queue.size === 1);
    await tick(200);
    await h.queue.stop();
    expect(said).toBe(true);
    expect(images.length).toBeGreaterThan(0);
    // from the removal of its .msg on (its tombstone is written first; before that the delete is not on disk and a
    // crash may keep m), no image has m
    const from = images.findIndex((i) => i.file.startsWith(`${m}.msg`));
    expect(from).toBeGreaterThanOrEqual(0);
    for (const img of images.slice(from)) expect({ at: img.file, ids: await load(img.copy) }).toEqual({ at: img.file, ids: [a] });
    // a stays (own .msg and state); m, its tombstone and the segment are gone
    expect(queueFiles(h.dir)).toEqual([`${a}.msg`, `${a}.state`]);
  });

  it('a restart finding a segment whose members were all copied out removes it once, keeps both messages, and a delete after it stays deleted with nothing left behind', async () => {
    const refuse = await refusingSink();
    const h = await harness(local({ 'refuse.test': refuse }));
    // copy-outs done, the segment's burst unlink still pending: the instant of the crash
    let image = '';
    watchUnlinks({
      before: (f) => {
        if (!image && f.endsWith('.seg')) image = snapshot(h.dir);
      },
    });
    await h.queue.start();
    const ids = (await Promise.all([h.submit('alice@sender.test', ['x@refuse.test']), h.submit('alice@sender.test', ['y@refuse.test'])])).sort();
    await until(() => image !== '');
    await h.queue.stop();
    vi.restoreAllMocks();
    const names = fs.readdirSync(path.join(image, 'queue')).sort();
    expect(names.filter((n) => n.endsWith('.seg'))).toHaveLength(1);
    expect(names.filter((n) => n.endsWith('.msg'))).toHaveLength(2);
    const dir = snapshot(image);
    const q = freshQueue(dir);
    let segUnlinks = 0;
    watchUnlinks({ after: (f) => f.endsWith('.seg') && f.startsWith(dir) && segUnlinks++ });
    await q.start();
    expect(q.list().map((i) => i.id).sort()).toEqual(ids);
    expect(await q.delete(ids[1]!)).toEqual({ result: 'removed' });
    await until(() => !fs.existsSync(path.join(dir, 'queue', `${ids[1]}.msg`)));
    await tick(100);
    // stop then start on the same Queue: nothing pending is lost or unlinked twice
    await q.stop();
    await q.start();
    expect(q.list().map((i) => i.id)).toEqual([ids[0]]);
    await q.stop();
    vi.restoreAllMocks();
    expect(segUnlinks).toBe(1);
    expect(fs.readdirSync(path.join(dir, 'queue')).sort()).toEqual([`${ids[0]}.msg`, `${ids[0]}.state`]);
    expect(await load(dir)).toEqual([ids[0]]);
  });

  it('the origin unlinked while the tombstone is written: the .msg goes durably before its tombstone; no crash image has the deleted message', async () => {
    const refuse = await refusingSink();
    const slow = await sink({ dataDelayMs: 300, onData: () => ({ code: 451, message: '4.3.0 later' }) });
    const h = await harness(local({ 'refuse.test': refuse, 'slow.test': slow }));
    let m = '';
    let seg = '';
    const images: { file: string; copy: string }[] = [];
    // the tombstone's rename waits until the dying origin's unlink has returned (a slow write: thread pool order)
    const realRename = fs.promises.rename.bind(fs.promises);
    vi.spyOn(fs.promises, 'rename').mockImplementation(async (from, to) => {
      if (m && String(to) === path.join(h.dir, 'queue', `${m}.state`) && fs.readFileSync(from, 'utf8').includes('"deleted":true')) {
        await until(() => !fs.existsSync(seg));
        for (let i = 0; i < 5; i++) await turn();
      }
      return realRename(from, to);
    });
    watchUnlinks({
      after: (f) => {
        if (m && f.startsWith(path.join(h.dir, 'queue'))) images.push({ file: path.basename(f), copy: snapshot(h.dir) });
      },
    });
    let said: boolean | null = null;
    h.bus.subscribe((e) => {
      if (e.kind === 'deferred' && e.queueId === m && said === null) void h.queue.delete(m).then((r) => (said = r.result === 'removed'));
    });
    await h.queue.start();
    const [a, mm] = await Promise.all([h.submit('alice@sender.test', ['x@refuse.test']), h.submit('alice@sender.test', ['y@slow.test'])]);
    m = mm;
    seg = path.join(h.dir, 'queue', segments(h.dir)[0]!);
    await until(() => said !== null && !fs.existsSync(path.join(h.dir, 'queue', `${m}.msg`)));
    await tick(100);
    await h.queue.stop();
    expect(said).toBe(true);
    const names = images.map((i) => i.file);
    // the .msg goes (durably) before its tombstone
    expect(names).toContain(`${m}.state`);
    expect(names.indexOf(`${m}.msg`)).toBeLessThan(names.indexOf(`${m}.state`));
    // from the removal of its .msg on (before it, the delete was not on disk yet: a crash then may keep m), no image
    // has m; the tombstone's unlink in particular must not open a window
    for (const img of images.slice(names.indexOf(`${m}.msg`))) expect({ after: img.file, ids: await load(img.copy) }).toEqual({ after: img.file, ids: [a] });
  });

  it('start() with a deleted .msg whose dying origin records it: the .msg goes durably first; no crash image has the deleted message', async () => {
    const refuse = await refusingSink();
    const slow = await sink({ dataDelayMs: 300, onData: () => ({ code: 451, message: '4.3.0 later' }) });
    const h = await harness(local({ 'refuse.test': refuse, 'slow.test': slow }));
    let m = '';
    let image1 = '';
    watchUnlinks({
      before: (f) => {
        // the instant the delete's .msg unlink is asked for: tombstone durable, origin still on disk
        if (m && f === path.join(h.dir, 'queue', `${m}.msg`) && !image1) image1 = snapshot(h.dir);
        // the dying origin's unlink waits for that instant (under load it could come first, and the image would not
        // hold the case this test is about)
        if (m && !image1 && f.startsWith(path.join(h.dir, 'queue')) && f.endsWith('.seg')) return until(() => image1 !== '');
      },
    });
    let said: boolean | null = null;
    h.bus.subscribe((e) => {
      if (e.kind === 'deferred' && e.queueId === m && said === null) void h.queue.delete(m).then((r) => (said = r.result === 'removed'));
    });
    await h.queue.start();
    const [a, mm] = await Promise.all([h.submit('alice@sender.test', ['x@refuse.test']), h.submit('alice@sender.test', ['y@slow.test'])]);
    m = mm;
    await until(() => said !== null && image1 !== '');
    await tick(100);
    await h.queue.stop();
    vi.restoreAllMocks();
    const inImage = fs.readdirSync(path.join(image1, 'queue')).sort();
    expect(inImage.filter((n) => n.endsWith('.seg'))).toHaveLength(1);
    expect(inImage).toContain(`${m}.msg`);
    expect(inImage).toContain(`${m}.state`);
    expect(await load(image1)).toEqual([a]);

    // restart on image1: start() loads the segment (all members copied out: released at once, with m's tombstone)
    // and unlinks m.msg later (here: the .msg unlink runs after the tombstone's, as when more segments load first)
    const dir2 = snapshot(image1);
    const mState = path.join(dir2, 'queue', `${m}.state`);
    const images: { file: string; copy: string }[] = [];
    let stateGone = false;
    watchUnlinks({
      before: async (f) => {
        if (f === path.join(dir2, 'queue', `${m}.msg`)) await until(() => stateGone, 3000).catch(() => {});
      },
      after: (f) => {
        if (f.startsWith(path.join(dir2, 'queue'))) images.push({ file: path.basename(f), copy: snapshot(dir2) });
        if (f === mState) stateGone = true;
      },
    });
    const q2 = freshQueue(dir2);
    await q2.start();
    await tick(100);
    await q2.stop();
    vi.restoreAllMocks();
    for (const img of images) expect({ after: img.file, ids: await load(img.copy) }).toEqual({ after: img.file, ids: [a] });
  });

  it('a directory fsync failing after a segment unlink is logged: no unhandled rejection, and stop() and start() still work', async () => {
    const refuse = await refusingSink();
    const slow = await sink({ dataDelayMs: 300, onData: () => ({ code: 451, message: '4.3.0 later' }) });
    const h = await harness(local({ 'refuse.test': refuse, 'slow.test': slow }));
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on('unhandledRejection', onUnhandled);
    let m = '';
    let armed = false;
    const realFsync = fs.fsync.bind(fs);
    vi.spyOn(fs, 'fsync').mockImplementation(((fd: number, cb: fs.NoParamCallback) => {
      if (armed) {
        armed = false;
        const err = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        setImmediate(() => cb(err));
        return;
      }
      realFsync(fd, cb);
    }) as typeof fs.fsync);
    watchUnlinks({
      after: (f) => {
        // the dying origin's burst unlink returned: the next directory fsync (segmentGone's) fails once
        if (m && f.endsWith('.seg')) armed = true;
      },
    });
    let said: boolean | null = null;
    h.bus.subscribe((e) => {
      if (e.kind === 'deferred' && e.queueId === m && said === null) void h.queue.delete(m).then((r) => (said = r.result === 'removed'));
    });
    try {
      await h.queue.start();
      const [, mm] = await Promise.all([h.submit('alice@sender.test', ['x@refuse.test']), h.submit('alice@sender.test', ['y@slow.test'])]);
      m = mm;
      await until(() => said !== null && segments(h.dir).length === 0);
      await tick(100);
      const stopped = await h.queue.stop().then(
        () => 'ok',
        (e: Error) => `rejected: ${e.message}`,
      );
      const restarted = await h.queue.start().then(
        () => 'ok',
        (e: Error) => `rejected: ${e.message}`,
      );
      expect({ stopped, restarted, unhandled: unhandled.length }).toEqual({ stopped: 'ok', restarted: 'ok', unhandled: 0 });
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('an administrator\'s delete of the last message of a segment fsyncs the directory after the unlink', async () => {
    const h = await harness(local({}));
    // not started: the message stays in its segment, nothing delivers it
    const id = await h.submit('alice@sender.test', ['x@nowhere.test']);
    const seg = path.join(h.dir, 'queue', segments(h.dir)[0]!);
    let unlinked = false;
    let syncsAfter = 0;
    const realFsync = fs.fsync.bind(fs);
    vi.spyOn(fs, 'fsync').mockImplementation(((fd: number, cb: fs.NoParamCallback) => {
      if (unlinked) syncsAfter++;
      realFsync(fd, cb);
    }) as typeof fs.fsync);
    watchUnlinks({ after: (f) => (unlinked ||= f === seg) });
    expect(await h.queue.delete(id)).toEqual({ result: 'removed' });
    await until(() => unlinked);
    await tick(200);
    expect(syncsAfter).toBeGreaterThan(0);
  });
});
