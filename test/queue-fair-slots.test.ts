/**
 * Delivery slots go round the destinations: each destination that waits gets a connection in turn. Found by a user
 * tryout: slots were handed out in the order destinations queued, so slow next hops (tarpits) that queued first took
 * every slot that came free, and mail for a healthy server waited 5.5 minutes without a connection while all 100 were
 * held by six tarpits.
 *
 * Real sinks on loopback; the slow one holds each message's reply until the test releases it (no timing in the test).
 */
import { describe, expect, it } from 'vitest';
import type { SinkMessage } from './helpers/sink.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import { deadPort } from './helpers/outage.ts';

const { sink, harness } = deliveryFixtures();

/**
 * A sink that holds its reply to each message until the test releases that one (in arrival order). `order`, when
 * given, records each arrival's recipients (several sinks can share one, to see which came first).
 */
async function slowSink(order?: string[]) {
  const holds: { msg: SinkMessage; release: () => void }[] = [];
  const s = await sink({
    holdData: (msg) =>
      new Promise<void>((release) => {
        order?.push(...msg.to);
        holds.push({ msg, release });
      }),
  });
  return { sink: s, holds };
}

describe('delivery slots are shared between destinations', () => {
  it('a slot that comes free goes to the destination with the fewest connections: a healthy one is not held up by a slow one that queued first', async () => {
    const order: string[] = [];
    const slow = await slowSink(order);
    const good = await sink({
      holdData: async (msg) => {
        order.push(...msg.to);
      },
    });
    // two slots in all, two per destination
    const h = await harness(plainLocalDomains({ 'slow.test': slow.sink, 'good.test': good }), { concurrency: 2, perDestination: 2 });
    await h.queue.start();
    for (let i = 1; i <= 4; i++) await h.submit('alice@sender.test', [`s${i}@slow.test`]);
    // both slots are the slow destination's; its other two messages wait, and then the healthy one's three
    await expect.poll(() => slow.holds.length).toBe(2);
    const g: string[] = [];
    for (let i = 1; i <= 3; i++) g.push(await h.submit('alice@sender.test', [`g${i}@good.test`]));
    expect(h.queue.activeDeliveries).toBe(2);

    // what the console is told meanwhile: the healthy destination's messages wait for a free connection, they are not
    // "being delivered" (a tryout saw nextAttemptAt null and retry's "20 being delivered already" for mail no session had)
    const goodKey = `local:${good.address}`;
    const slowKey = `local:${slow.sink.address}`;
    const byKey = new Map(h.queue.summary().destinations.map((d) => [d.destination, d]));
    // (and a retry of either brings nothing forward: every message of theirs is due or being delivered)
    expect(byKey.get(goodKey)).toMatchObject({ messages: 3, connections: 0, waitingForConnection: 3, down: false, scheduledLater: 0 });
    expect(byKey.get(goodKey)!.nextAttemptAt).not.toBeNull();
    expect(byKey.get(slowKey)).toMatchObject({ messages: 4, connections: 2, waitingForConnection: 2, scheduledLater: 0 });
    expect(h.queue.list().find((i) => i.id === g[0])).toMatchObject({ status: 'queued' });
    expect(h.queue.retryAll({ destination: goodKey })).toEqual({ scheduled: 3, delivering: 0 });
    expect(h.queue.retryAll({ destination: slowKey })).toEqual({ scheduled: 2, delivering: 2 });

    // one slot comes free: the healthy destination (no connection) gets it, and again each time its delivery ends,
    // before slow.test's third message (taken in turn, slow.test's messages went between; in queue order, all first)
    slow.holds[0]!.release();
    await expect.poll(() => slow.holds.length).toBe(3);
    expect(order).toEqual(['s1@slow.test', 's2@slow.test', 'g1@good.test', 'g2@good.test', 'g3@good.test', 's3@slow.test']);
    for (const x of slow.holds) x.release();
    await expect.poll(() => slow.holds.length).toBe(4);
    slow.holds[3]!.release();
    await expect.poll(() => h.queue.size).toBe(0);
    expect(slow.sink.messages).toHaveLength(4);
  });

  it('two destinations waiting for slots: each free one goes to the one with fewer connections open', async () => {
    const a = await slowSink();
    const b = await slowSink();
    const h = await harness(plainLocalDomains({ 'a.test': a.sink, 'b.test': b.sink }), { concurrency: 2, perDestination: 2 });
    await h.queue.start();
    await h.submit('alice@sender.test', ['a1@a.test']);
    await h.submit('alice@sender.test', ['a2@a.test']);
    await expect.poll(() => a.holds.length).toBe(2);
    // both slots held by a.test; a.test queues two more, then b.test two
    await h.submit('alice@sender.test', ['a3@a.test']);
    await h.submit('alice@sender.test', ['a4@a.test']);
    await h.submit('alice@sender.test', ['b1@b.test']);
    await h.submit('alice@sender.test', ['b2@b.test']);
    // a.test keeps one connection, b.test has none: b.test's turn (before, a.test took it, having queued first)
    a.holds[0]!.release();
    await expect.poll(() => b.holds.length).toBe(1);
    expect(a.holds).toHaveLength(2);
    // now a.test has none and b.test one: a.test's
    a.holds[1]!.release();
    await expect.poll(() => a.holds.length).toBe(3);
    expect(b.holds).toHaveLength(1);
    for (const x of [...a.holds, ...b.holds]) x.release();
    await expect.poll(() => a.holds.length + b.holds.length).toBe(6);
    for (const x of [...a.holds, ...b.holds]) x.release();
    await expect.poll(() => h.queue.size).toBe(0);
    expect(a.sink.messages).toHaveLength(4);
    expect(b.sink.messages).toHaveLength(2);
  });

  it("the last tenth of the slots is kept for a destination's first connection: slow servers that fill the rest do not stop a new one", async () => {
    const slow = [await slowSink(), await slowSink()];
    const good = await sink();
    // ten slots, one kept; five per destination (they have not answered yet: five at most anyway)
    const h = await harness(plainLocalDomains({ 'x.test': slow[0]!.sink, 'y.test': slow[1]!.sink, 'good.test': good }), { concurrency: 10, perDestination: 5 });
    await h.queue.start();
    for (let i = 1; i <= 5; i++) await h.submit('alice@sender.test', [`x${i}@x.test`]);
    await expect.poll(() => slow[0]!.holds.length).toBe(5);
    for (let i = 1; i <= 5; i++) await h.submit('alice@sender.test', [`y${i}@y.test`]);
    const held = () => slow.reduce((n, s) => n + s.holds.length, 0);
    // y.test's fifth would be the tenth connection: kept for a destination that has none
    await expect.poll(() => slow[1]!.holds.length).toBe(4);
    expect(h.queue.activeDeliveries).toBe(9);
    // a new destination's first connection takes it: delivered while the others hold theirs
    const g = await h.submit('alice@sender.test', ['carol@good.test']);
    await h.waitEvent('delivered', (e) => e.queueId === g);
    expect(held()).toBe(9);
    for (const s of slow) for (const x of s.holds) x.release();
    await expect.poll(held).toBe(10);
    for (const s of slow) for (const x of s.holds) x.release();
    await expect.poll(() => h.queue.size).toBe(0);
  });

  it('retry all: a message counted as made due while it waits for a free connection has its down destination probed now', async () => {
    // (found by a review: such a message was counted "scheduled" but left alone, its down destination's probe not moved)
    const slow = await slowSink();
    const downAddr = `127.0.0.1:${await deadPort()}`;
    const h = await harness(
      {
        smtp: { hostname: 'relay.test' },
        domains: { 'a.test': { deliverTo: downAddr, recipients: '*' }, 'b.test': { deliverTo: slow.sink.address, recipients: '*' } },
        delivery: { tls: 'off' },
      },
      { concurrency: 1, perDestination: 1 },
    );
    await h.queue.start();
    // a.test goes down (refused); the message that found out is deleted, so no other message waits for it
    const m0 = await h.submit('alice@sender.test', ['w@a.test']);
    await h.waitEvent('deferred', (e) => e.queueId === m0);
    expect((await h.queue.delete(m0)).result).toBe('removed');
    // the one slot is held by b.test; m (to both) waits for it
    await h.submit('alice@sender.test', ['s1@b.test']);
    await expect.poll(() => slow.holds.length).toBe(1);
    const m = await h.submit('alice@sender.test', ['x@a.test', 'y@b.test']);
    const aKey = `local:${downAddr}`;
    const a = () => h.queue.summary().destinations.find((d) => d.destination === aKey);
    await expect.poll(() => a()?.messages).toBe(1);
    expect(a()!.down).toBe(true);
    expect(a()!.nextAttemptAt!).toBeGreaterThan(Date.now());
    expect(h.queue.list().find((i) => i.id === m)).toMatchObject({ status: 'queued' });

    expect(h.queue.retryAll()).toEqual({ scheduled: 1, delivering: 1 });
    // made due: its down destination is probed now, as a retry of a message not waiting for a connection does
    expect(a()!.nextAttemptAt!).toBeLessThanOrEqual(Date.now());
    for (const x of slow.holds) x.release();
  });
});
