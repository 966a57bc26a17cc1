/**
 * A message an administrator deletes (queue.delete without bounce) leaves a `deleted` event when it leaves the queue:
 * the recipients that will not get it, and who deleted it. Before, a delete left no event: Live traffic showed the
 * message's last state ("deferred") as if it were still waiting. A return to the sender is `bounced`, not `deleted`.
 * Real sinks on loopback; a sink that holds its answer to the end of DATA for as long as a test needs.
 */
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { summarize } from '../renderer/src/state/summary.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import { sendMail } from './helpers/smtp-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

const { sink, heldSink, refusingSink, harness } = deliveryFixtures();
const startRelay = manageRelayPerTest();


type Deleted = Extract<RelayEvent, { kind: 'deleted' }>;

describe('the deleted event (the queue)', () => {
  it('a waiting message deleted: one event, its recipients not yet delivered, who asked; a recipient delivered before is not among them', async () => {
    const good = await sink();
    const busy = await refusingSink();
    const h = await harness(plainLocalDomains({ 'good.test': good, 'busy.test': busy }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['one@good.test', 'two@busy.test', 'three@busy.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    await expect.poll(() => h.queue.list()[0]?.status).toBe('deferred');
    expect(h.events.filter((e) => e.kind === 'deleted')).toEqual([]);

    expect(await h.queue.delete(id, 'night-shift')).toEqual({ result: 'removed' });
    const deleted = h.events.filter((e): e is Deleted => e.kind === 'deleted');
    expect(deleted).toEqual([expect.objectContaining({ kind: 'deleted', queueId: id, by: 'night-shift' })]);
    expect([...deleted[0]!.to].sort()).toEqual(['three@busy.test', 'two@busy.test']);
    expect(summarize(deleted[0]!)).toBe(`deleted ${id} by night-shift: not delivered to two@busy.test, three@busy.test`);
    // said once: a repeat finds nothing
    expect(await h.queue.delete(id, 'someone-else')).toEqual({ result: 'not-found' });
    expect(h.events.filter((e) => e.kind === 'deleted')).toHaveLength(1);
  });

  it('a delete pending during a delivery is said when the attempt ends, after the recipients it delivered, naming the first to ask', async () => {
    const held = await heldSink({ onRcpt: (rcpt) => (rcpt === 'later@slow.test' ? { code: 451, message: '4.2.0 mailbox busy' } : undefined) });
    const h = await harness(plainLocalDomains({ 'slow.test': held.sink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['now@slow.test', 'later@slow.test']);
    await held.arrived;

    expect(await h.queue.delete(id, 'first-admin')).toEqual({ result: 'pending', removal: 'delete' });
    expect(await h.queue.delete(id, 'second-admin')).toEqual({ result: 'pending', removal: 'delete' });
    // pending: not said yet
    expect(h.events.filter((e) => e.kind === 'deleted')).toEqual([]);

    held.release();
    const deleted = (await h.waitEvent('deleted', (e) => e.queueId === id)) as Deleted;
    expect(deleted).toMatchObject({ queueId: id, to: ['later@slow.test'], by: 'first-admin' });
    const kinds = h.events.filter((e) => 'queueId' in e && e.queueId === id).map((e) => e.kind);
    expect(kinds.indexOf('delivered')).toBeLessThan(kinds.indexOf('deleted'));
    expect(kinds.filter((k) => k === 'deleted')).toHaveLength(1);
    await expect.poll(() => h.queue.size).toBe(0);
  });

  it('a pending delete whose attempt delivered every recipient is said with none left', async () => {
    const held = await heldSink();
    const h = await harness(plainLocalDomains({ 'slow.test': held.sink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@slow.test']);
    await held.arrived;
    expect(await h.queue.delete(id)).toEqual({ result: 'pending', removal: 'delete' });
    held.release();
    const deleted = (await h.waitEvent('deleted', (e) => e.queueId === id)) as Deleted;
    expect(deleted).toMatchObject({ to: [], by: null });
    expect(summarize(deleted)).toBe(`deleted ${id}: every recipient had been delivered`);
  });

  it('a return to the sender is bounced, not deleted', async () => {
    const busy = await refusingSink();
    const senderSink = await sink();
    const h = await harness(plainLocalDomains({ 'busy.test': busy, 'sender.test': senderSink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@busy.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    await expect.poll(() => h.queue.list()[0]?.status).toBe('deferred');
    expect(await h.queue.bounce(id)).toMatchObject({ result: 'removed' });
    await h.waitEvent('bounced', (e) => e.queueId === id);
    expect(h.events.filter((e) => e.kind === 'deleted')).toEqual([]);
  });
});

describe('the deleted event (queue.delete over the management channel)', () => {
  it("names the admin token that deleted the message, in the stored history", async () => {
    const t = await startRelay({ delivery: { tls: 'off' } });
    const admin = await t.admin();
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'] });
    // the first attempt (to 127.0.0.1:9, refused) is over
    await expect.poll(async () => (await admin.call('queue.list', {})).items[0]?.status).toBe('deferred');
    const [item] = (await admin.call('queue.list', {})).items;
    const who = (await admin.call('tokens.list', {})).tokens.find((x) => x.role === 'admin')!.name;
    expect(await admin.call('queue.delete', { id: item!.id })).toEqual({ ok: true, pending: false });
    const q = await admin.call('events.query', { kinds: ['deleted'] });
    expect(q.events).toEqual([expect.objectContaining({ kind: 'deleted', queueId: item!.id, to: ['alice@example.com'], by: who })]);
  });
});
