/**
 * Third review of the segment spool (2ab5938): dying segments, pinned origins, tombstones, restarts. A real Queue on a
 * temp spool and real loopback sinks; crash images are copies of the spool taken at an instant and loaded by a fresh
 * Queue. Where an instant inside the queue's own disk calls matters, node:fs calls are observed (never changed in
 * what they do) to take the copy at that instant.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from '../relay/queue/spool.ts';
import { EventBus } from '../relay/events/bus.ts';
import { ConfigSchema } from '../shared/config.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import { noDns } from './helpers/queue-harness.ts';
import type { Sink } from './helpers/sink.ts';

const { sink, harness } = deliveryFixtures();
const local = (domains: Record<string, Sink>) => localDomains(domains, { tls: 'off' });
const queueFiles = (dir: string) => fs.readdirSync(path.join(dir, 'queue')).sort();
const segments = (dir: string) => queueFiles(dir).filter((n) => n.endsWith('.seg'));
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
const turn = () => new Promise((r) => setImmediate(r));
const copies: string[] = [];

afterEach(() => {
  vi.restoreAllMocks();
  for (const c of copies.splice(0)) fs.rmSync(c, { recursive: true, force: true });
});

/** The spool copied now (synchronously: nothing the queue does can land in between). */
function snapshot(dir: string): string {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-rev3-image-'));
  copies.push(copy);
  fs.cpSync(dir, copy, { recursive: true });
  return copy;
}

function freshQueue(dir: string): Queue {
  const config = ConfigSchema.parse({ delivery: { tls: 'off' } });
  return new Queue({ dir, config: () => config, resolver: noDns, bus: new EventBus(), log: () => {}, deliveryWorker: false, stopTimeoutMs: 500 });
}

/** What a restart finds in a copy: the ids a fresh Queue loads from it. */
async function load(copy: string): Promise<string[]> {
  const again = snapshot(copy);
  const q = freshQueue(again);
  await q.start();
  const ids = q.list().map((i) => i.id);
  await q.stop();
  return ids;
}

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await turn();
  }
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
    const refuse = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not now' }) });
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
      if (e.kind === 'deferred' && e.queueId === m && said === null) said = h.queue.delete(m);
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
    for (const img of images) expect({ at: img.file, ids: await load(img.copy) }).toEqual({ at: img.file, ids: [a] });
    // a stays (own .msg and state); m, its tombstone and the segment are gone
    expect(queueFiles(h.dir)).toEqual([`${a}.msg`, `${a}.state`]);
  });

  it('a restart finding a segment whose members were all copied out removes it once, keeps both messages, and a delete after it stays deleted with nothing left behind', async () => {
    const refuse = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not now' }) });
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
    expect(q.delete(ids[1]!)).toBe(true);
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
});
