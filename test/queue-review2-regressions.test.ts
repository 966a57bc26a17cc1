/**
 * Regressions from the second review of the segment spool and the delivery worker (each failed before its fix), with
 * a real Queue on a temp spool, real loopback sinks and a real worker thread:
 *  - D1: an administrator's delete landing while the message's origin segment is being unlinked stays deleted;
 *  - D2: after a restart, a message copied out of a segment that still lives is tombstoned when deleted;
 *  - D3: a tombstone written while its origin segment goes is removed with it, not left behind;
 *  - W1: a delivery asked for while close() runs goes to a new worker that stays the current one (no orphan), and
 *    its result is what happened.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from '../relay/queue/spool.ts';
import { WorkerDeliverer, type DeliveryRequest } from '../relay/queue/deliverer.ts';
import type { AttemptResult } from '../relay/queue/smtp-client.ts';
import { EventBus } from '../relay/events/bus.ts';
import { ConfigSchema } from '../shared/config.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import { message, noDns } from './helpers/queue-harness.ts';
import type { Sink } from './helpers/sink.ts';

const { sink, harness } = deliveryFixtures();
const local = (domains: Record<string, Sink>) => localDomains(domains, { tls: 'off' });
const queueFiles = (dir: string) => fs.readdirSync(path.join(dir, 'queue')).sort();
const segments = (dir: string) => queueFiles(dir).filter((n) => n.endsWith('.seg'));
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
const turn = () => new Promise((r) => setImmediate(r));

/** What a restart would find if the relay were killed now: the spool copied at once, then loaded by a fresh Queue. */
async function crashImage(dir: string): Promise<{ ids: string[]; segments: string[] }> {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-crash-image-'));
  try {
    fs.cpSync(dir, copy, { recursive: true });
    const segs = segments(copy);
    const config = ConfigSchema.parse({ delivery: { tls: 'off' } });
    const q = new Queue({ dir: copy, config: () => config, resolver: noDns, bus: new EventBus(), log: () => {}, deliveryWorker: false });
    await q.start();
    const ids = q.list().map((i) => i.id);
    await q.stop();
    return { ids, segments: segs };
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
}

function request(s: Sink, source: DeliveryRequest['source'], over: Partial<DeliveryRequest> = {}): DeliveryRequest {
  return {
    target: { host: s.host, ip: s.host, port: s.port },
    from: 'alice@sender.test',
    rcpts: ['bob@example.test'],
    size: source.kind === 'buffer' ? source.bytes.length : source.size,
    source,
    tls: 'off',
    auth: null,
    heloName: 'relay.test',
    connectTimeoutMs: 5000,
    commandTimeoutMs: 10_000,
    ...over,
  };
}

/** Waits (event-loop turn by turn, so nothing durable is missed) until cond holds. */
async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await turn();
  }
}

describe('deletes and the segment spool (review 2)', () => {
  it('D1a: a delete that lands as the first attempt ends, of the only member of its segment, stays deleted after a crash', async () => {
    const refuse = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not now' }) });
    const h = await harness(local({ 'refuse.test': refuse }));
    await h.queue.start();
    let id = '';
    let said: boolean | null = null;
    // a console that deletes the moment the deferral is shown
    h.bus.subscribe((e) => {
      if (e.kind === 'deferred' && e.queueId === id && said === null) said = h.queue.delete(id);
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
    const refuse = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not now' }) });
    const h = await harness(local({ 'ok.test': ok, 'refuse.test': refuse }));
    await h.queue.start();
    let a = '';
    let m = '';
    let said: boolean | null = null;
    h.bus.subscribe((e) => {
      // the last other member is delivered: its segment is released within this turn; the admin deletes just after
      if (e.kind === 'delivered' && e.queueId === a) setImmediate(() => (said = h.queue.delete(m)));
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
    const refuse = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not now' }) });
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
    expect(again.delete(m!)).toBe(true);
    const msgFile = path.join(h.dir, 'queue', `${m}.msg`);
    await until(() => !fs.existsSync(msgFile));
    await tick(50); // the directory fsync after the unlink
    expect(segments(h.dir)).toHaveLength(1); // a is in its (second) attempt: the segment still records m
    const image = await crashImage(h.dir);
    expect(image.ids).toEqual([a]);
  });

  it('D3: a tombstone written while the origin segment goes is removed with it', async () => {
    const ok = await sink({ dataDelayMs: 300 });
    const refuse = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not now' }) });
    const h = await harness(local({ 'ok.test': ok, 'refuse.test': refuse }));
    await h.queue.start();
    let a = '';
    let m = '';
    h.bus.subscribe((e) => {
      // delete m in the same turn as the last other member's delivery: its tombstone is being written while a's end
      // releases the segment
      if (e.kind === 'delivered' && e.queueId === a) h.queue.delete(m);
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
