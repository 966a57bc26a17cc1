/**
 * Deleting or returning a message (queue.delete, with or without bounce) while the queue is delivering it, against
 * real sinks whose answer to the end of DATA a test holds for as long as it needs (no timing in the test).
 *
 * A delivery under way is never cut: the delete or return is pending until the attempt ends, and the reply says so
 * (Queue: { result: 'pending' }, queue.delete: { ok: true, pending: true }). Until then queue.list shows the message
 * with its pending removal, a repeated request gets the same answer, and a different one is refused (4009); the
 * pending removal is on disk before the reply, so a crash does not bring the message back to delivery. When the attempt
 * ends, the recipients it delivered are reported delivered, and the message leaves the queue (the other recipients
 * deleted, or returned in one DSN). A message whose attempt has not started any connection yet is removed at once,
 * and a return of an idle message answers once its DSN is stored and the message is gone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode } from '../shared/protocol.ts';
import type { FaultInjector } from '../relay/queue/spool.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import type { SinkOptions } from './helpers/sink.ts';
import { copySpool, crashImage, freshQueue } from './helpers/spool-images.ts';
import { sendMail } from './helpers/smtp-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

const { sink, refusingSink, harness } = deliveryFixtures();
const local = plainLocalDomains;
const startRelay = manageRelayPerTest();

/** A sink that holds its answer to the end of DATA until release(); `arrived` resolves when the first message is there. */
async function heldSink(opts: SinkOptions = {}) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let arrive!: () => void;
  const arrived = new Promise<void>((r) => (arrive = r));
  const s = await sink({
    ...opts,
    holdData: () => {
      arrive();
      return released;
    },
  });
  return { sink: s, arrived, release };
}

const copies: string[] = [];
afterEach(() => {
  for (const d of copies.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** What a relay killed now would hold after its restart (the spool copied, then loaded without delivering). */
async function afterCrash(dir: string) {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-removal-'));
  copies.push(copy);
  copySpool(dir, copy);
  const q = freshQueue(copy);
  await q.start();
  // read at once: a return found pending is carried out next, which needs the disk first
  const items = q.list();
  await q.stop();
  return items;
}

describe('delete and return during a delivery (the queue)', () => {
  it('a delete while the message is being delivered is pending until the attempt ends, listed so, on disk, and answered the same when repeated', async () => {
    const held = await heldSink();
    const h = await harness(local({ 'slow.test': held.sink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@slow.test']);
    await held.arrived;
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: null })]);

    expect(await h.queue.delete(id)).toEqual({ result: 'pending', removal: 'delete' });
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: 'delete' })]);
    expect(await h.queue.delete(id)).toEqual({ result: 'pending', removal: 'delete' });
    expect(await h.queue.bounce(id)).toEqual({ result: 'conflict', removal: 'delete' });
    // killed now, the relay would not deliver it again
    expect(await afterCrash(h.dir)).toEqual([]);

    held.release();
    const delivered = await h.waitEvent('delivered', (e) => e.queueId === id);
    expect(delivered.to).toEqual(['bob@slow.test']);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.queue.list()).toEqual([]);
    expect(await h.queue.delete(id)).toEqual({ result: 'not-found' });
    expect(h.events.filter((e) => e.kind === 'deferred' || e.kind === 'bounced')).toEqual([]);
    expect(held.sink.messages).toHaveLength(1);
  });

  it('a delete of a message whose attempt waits for a connection slot removes it at once: it is never delivered', async () => {
    const held = await heldSink();
    const h = await harness(local({ 'slow.test': held.sink }), { perDestination: 1, connectionCacheMs: 0 });
    await h.queue.start();
    const a = await h.submit('alice@sender.test', ['first@slow.test']);
    await held.arrived;
    const b = await h.submit('alice@sender.test', ['second@slow.test']);
    // b's attempt is queued behind a's delivery (one connection to slow.test at a time)
    expect(h.queue.list().find((i) => i.id === b)).toMatchObject({ status: 'queued', removal: null });

    expect(await h.queue.delete(b)).toEqual({ result: 'removed' });
    expect(h.queue.list().map((i) => i.id)).toEqual([a]);
    expect(await h.queue.delete(b)).toEqual({ result: 'not-found' });

    held.release();
    await h.waitEvent('delivered', (e) => e.queueId === a);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.queue.activeDeliveries).toBe(0);
    expect(held.sink.messages.map((m) => m.to)).toEqual([['first@slow.test']]);
  });

  it('a return while the message is being delivered: the recipients the attempt delivered stay delivered, the others are returned in one DSN', async () => {
    const held = await heldSink({ onRcpt: (rcpt) => (rcpt === 'later@slow.test' ? { code: 451, message: '4.2.0 mailbox busy' } : undefined) });
    const senderSink = await sink();
    const h = await harness(local({ 'slow.test': held.sink, 'sender.test': senderSink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['now@slow.test', 'later@slow.test']);
    await held.arrived;

    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: 'bounce' })]);
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    expect(await h.queue.delete(id)).toEqual({ result: 'conflict', removal: 'bounce' });
    // killed now, the relay would return it after its restart, not deliver it
    expect(await afterCrash(h.dir)).toEqual([expect.objectContaining({ id, removal: 'bounce' })]);

    held.release();
    expect((await h.waitEvent('delivered', (e) => e.queueId === id)).to).toEqual(['now@slow.test']);
    const bounced = await h.waitEvent('bounced', (e) => e.queueId === id);
    expect(bounced.to).toEqual(['later@slow.test']);
    expect(bounced.reason).toMatch(/administrator.*451 4\.2\.0 mailbox busy/);
    const [dsn] = await senderSink.waitFor(1);
    const text = dsn!.data.toString();
    expect(text).toMatch(/Final-Recipient: rfc822; later@slow\.test/);
    expect(text).not.toMatch(/Final-Recipient: rfc822; now@slow\.test/);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([]);
  });

  it('a return of a message not being delivered answers once its DSN is stored and the message has left the queue', async () => {
    const refuse = await refusingSink();
    const senderSink = await sink();
    const h = await harness(local({ 'refuse.test': refuse, 'sender.test': senderSink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);

    expect(await h.queue.bounce(id)).toEqual({ result: 'removed' });
    expect(h.queue.list().some((i) => i.id === id)).toBe(false);
    expect(await h.queue.bounce(id)).toEqual({ result: 'not-found' });
    expect((await h.waitEvent('bounced', (e) => e.queueId === id)).to).toEqual(['bob@refuse.test']);
    await senderSink.waitFor(1);
  });
});

describe('a return whose DSN cannot be stored', () => {
  /** a spool whose segment commits (a DSN's) fail with ENOSPC while `full` is true */
  const diskFull = () => {
    const state = { full: false };
    const fault: FaultInjector = (op) => {
      if (state.full && op === 'open') throw Object.assign(new Error('ENOSPC: no space left on device, open'), { code: 'ENOSPC' });
    };
    return { state, fault };
  };

  it('asked of a message not being delivered: answered failed, and nothing changed (its error, schedule and recipients)', async () => {
    const refuse = await refusingSink();
    const disk = diskFull();
    const h = await harness(local({ 'refuse.test': refuse }), { fault: disk.fault, probeIntervalMs: 60_000 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    const before = h.queue.list();
    disk.state.full = true;
    const r = await h.queue.bounce(id);
    expect(r).toMatchObject({ result: 'failed', reason: expect.stringMatching(/ENOSPC/) });
    expect(h.queue.list()).toEqual(before);
    expect(h.events.filter((e) => e.kind === 'bounced')).toEqual([]);
    expect(h.events.filter((e) => e.kind === 'deferred')).toHaveLength(1);
  });

  it('pending during a delivery: it stays pending (listed, not delivered again) and is done at its next try', async () => {
    const clock = new FakeClock();
    const disk = diskFull();
    const held = await heldSink({ onRcpt: (rcpt) => (rcpt === 'later@slow.test' ? { code: 451, message: '4.2.0 mailbox busy' } : undefined) });
    const senderSink = await sink();
    const h = await harness(local({ 'slow.test': held.sink, 'sender.test': senderSink }), { now: clock.now, timers: clock, retryDelaysMs: [60_000], jitter: 0, fault: disk.fault, probeIntervalMs: 3_600_000 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['now@slow.test', 'later@slow.test']);
    await held.arrived;
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    disk.state.full = true;
    held.release();
    expect((await h.waitEvent('delivered', (e) => e.queueId === id)).to).toEqual(['now@slow.test']);
    await expect.poll(() => h.queue.list()[0]?.status).toBe('deferred');
    const [item] = h.queue.list();
    expect(item).toMatchObject({ id, removal: 'bounce', to: ['later@slow.test'], done: [{ to: 'now@slow.test', status: 'delivered' }], nextAttemptAt: clock.now() + 60_000 });
    expect(item!.lastError).toMatch(/return to the sender .* not done yet: its bounce could not be stored \(ENOSPC/);
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    // killed now, the relay would still return it after its restart
    expect(await afterCrash(h.dir)).toEqual([expect.objectContaining({ id, removal: 'bounce', to: ['later@slow.test'] })]);

    disk.state.full = false;
    clock.advance(60_000);
    expect((await h.waitEvent('bounced', (e) => e.queueId === id)).to).toEqual(['later@slow.test']);
    await expect.poll(() => senderSink.messages.length).toBe(1);
    await expect.poll(() => h.queue.size).toBe(0);
    // the recipient that got it once never got it again, the refused one was never tried again
    expect(held.sink.messages.map((m) => m.to)).toEqual([['now@slow.test']]);
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([]);
  });
});

describe('queue.delete during a delivery (the management channel)', () => {
  it('answers pending: true, queue.list shows removal "delete", a repeat agrees, a return is refused; the attempt delivers, then 4004', async () => {
    const held = await heldSink();
    const t = await startRelay({ domains: { 'example.com': { deliverTo: held.sink.address, recipients: '*' } }, delivery: { tls: 'off' } });
    const admin = await t.admin();
    const sent = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'] });
    expect(sent.data?.code).toBe(250);
    await held.arrived;
    const [item] = (await admin.call('queue.list', {})).items;
    expect(item).toMatchObject({ status: 'delivering', removal: null });
    const id = item!.id;

    expect(await admin.call('queue.delete', { id })).toEqual({ ok: true, pending: true });
    expect((await admin.call('queue.list', {})).items).toEqual([expect.objectContaining({ id, status: 'delivering', removal: 'delete' })]);
    expect(await admin.call('queue.delete', { id })).toEqual({ ok: true, pending: true });
    const refused = await admin.callError('queue.delete', { id, bounce: true });
    expect(refused.code).toBe(ErrorCode.Conflict);
    expect(refused.message).toMatch(/being deleted/);

    held.release();
    await held.sink.waitFor(1);
    await expect.poll(async () => (await admin.call('queue.list', {})).total).toBe(0);
    expect((await admin.callError('queue.delete', { id })).code).toBe(ErrorCode.NotFound);
  });

  it('answers pending: false for a message not being delivered: it is gone from queue.list at once', async () => {
    const t = await startRelay({ delivery: { tls: 'off' } });
    const admin = await t.admin();
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'] });
    // the first attempt (to 127.0.0.1:9, refused) is over
    await expect.poll(async () => (await admin.call('queue.list', {})).items[0]?.status).toBe('deferred');
    const [item] = (await admin.call('queue.list', {})).items;
    expect(await admin.call('queue.delete', { id: item!.id, bounce: true })).toEqual({ ok: true, pending: false });
    expect((await admin.call('queue.list', {})).items.some((i) => i.id === item!.id)).toBe(false);
  });
});
