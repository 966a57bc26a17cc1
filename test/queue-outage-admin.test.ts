/**
 * What the administrator does during an outage, on a fake clock with real loopback sinks: a manual retry that fails
 * leaves the backoff where it was, retryAll (all, or one destination's), list() showing a recipient delivered as soon
 * as its job ended, summary()'s figures.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import type { Sink } from './helpers/sink.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';

const { sink, harness } = deliveryFixtures();
const MIN = 60_000;
const key = (s: Sink) => `local:127.0.0.1:${s.port}`;

describe('a manual retry that fails', () => {
  it('does not advance the backoff: the next automatic attempt stays where it was, and the one after keeps its step', async () => {
    const clock = new FakeClock();
    const dest = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not yet' }) });
    // random 0.5: no jitter, the delays are exactly 1, 5, 15, 30, 60 min
    const h = await harness(localDomains({ 'example.test': dest }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    const deferrals = () => h.events.filter((e) => e.kind === 'deferred');
    await expect.poll(() => deferrals().length, { interval: 5 }).toBe(1);
    clock.advance(1 * MIN); // attempt 2, automatic
    await expect.poll(() => deferrals().length, { interval: 5 }).toBe(2);
    const second = clock.now();
    expect(h.queue.list()[0]).toMatchObject({ attempts: 2, nextAttemptAt: second + 5 * MIN });

    // the administrator presses Retry 30 s later: it fails, is shown, and the message stays on its schedule
    clock.advance(30_000);
    expect(h.queue.retry(id)).toBe(true);
    await expect.poll(() => deferrals().length, { interval: 5 }).toBe(3);
    expect(h.queue.list()[0]).toMatchObject({ attempts: 3, nextAttemptAt: second + 5 * MIN, lastError: expect.stringContaining('451 4.3.0 not yet') });
    expect(deferrals()[2]!.kind === 'deferred' && deferrals()[2]!.nextAttemptAt).toBe(second + 5 * MIN);

    // and again, many times: still the same time
    for (let i = 4; i <= 6; i++) {
      clock.advance(10_000);
      h.queue.retry(id);
      await expect.poll(() => deferrals().length, { interval: 5 }).toBe(i);
    }
    expect(h.queue.list()[0]).toMatchObject({ attempts: 6, nextAttemptAt: second + 5 * MIN });

    // the automatic attempt at its time is the third step of the schedule: 15 min (without the rule: 60 min)
    clock.advance(second + 5 * MIN - clock.now());
    await expect.poll(() => deferrals().length, { interval: 5 }).toBe(7);
    expect(h.queue.list()[0]).toMatchObject({ attempts: 7, nextAttemptAt: clock.now() + 15 * MIN });

    // the step survives a restart (the state file keeps it): the next automatic failure waits 30 min
    await h.queue.stop();
    const q = h.reopen();
    await q.start();
    expect(q.list()[0]).toMatchObject({ attempts: 7, nextAttemptAt: clock.now() + 15 * MIN });
    // the destination's last error is in memory only; after the restart, its waiting message's (the console's
    // destinations table said "—" for every destination after a restart)
    expect(q.summary().destinations[0]).toMatchObject({ messages: 1, lastError: expect.stringContaining('451 4.3.0 not yet') });
    clock.advance(15 * MIN);
    await expect.poll(() => deferrals().length, { interval: 5 }).toBe(8);
    expect(q.list()[0]).toMatchObject({ attempts: 8, nextAttemptAt: clock.now() + 30 * MIN });
  });

  it('one whose old time passed while it ran: the delay of its unchanged step, from its end', async () => {
    const clock = new FakeClock();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let n = 0;
    const dest = await sink({ holdData: () => (++n === 2 ? held : Promise.resolve()), onData: () => ({ code: 451, message: '4.3.0 not yet' }) });
    const h = await harness(localDomains({ 'example.test': dest }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    const deferrals = () => h.events.filter((e) => e.kind === 'deferred').length;
    await expect.poll(deferrals, { interval: 5 }).toBe(1);
    expect(h.queue.list()[0]).toMatchObject({ attempts: 1, nextAttemptAt: clock.now() + 1 * MIN });
    clock.advance(20_000);
    h.queue.retry(id); // its session is held at the end of DATA while its old time (1 min) passes
    await expect.poll(() => dest.activeTransactions).toBe(1);
    clock.advance(2 * MIN);
    release();
    await expect.poll(deferrals, { interval: 5 }).toBe(2);
    // step 1 still: 1 min from now (without the rule: step 2, 5 min)
    expect(h.queue.list()[0]).toMatchObject({ attempts: 2, nextAttemptAt: clock.now() + 1 * MIN });
  });
});

describe('list() while a message is delivered to two destinations', () => {
  it('shows a recipient delivered as soon as its job ended, while the other job still runs', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const fast = await sink();
    const hung = await sink({ holdData: () => held });
    const h = await harness(localDomains({ 'fast.test': fast, 'hung.test': hung }, { tls: 'off' }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['ann@fast.test', 'hal@hung.test']);
    await h.waitEvent('delivered', (e) => e.queueId === id && e.to.includes('ann@fast.test'));
    await expect.poll(() => hung.activeTransactions).toBe(1);
    const item = h.queue.list().find((i) => i.id === id)!;
    expect(item.status).toBe('delivering');
    expect(item.to).toEqual(['hal@hung.test']);
    expect(item.done).toEqual([{ to: 'ann@fast.test', status: 'delivered' }]);
    expect(item.destinations).toEqual([key(hung)]);
    // a delete now is pending (the hung session is not cut), and what stays undelivered is the one recipient
    expect(await h.queue.delete(id)).toEqual({ result: 'pending', removal: 'delete' });
    expect(h.queue.list().find((i) => i.id === id)!.to).toEqual(['hal@hung.test']);
    release();
    await expect.poll(() => h.queue.size).toBe(0);
    expect(fast.messages.flatMap((m) => m.to)).toEqual(['ann@fast.test']);
  });
});

describe('retryAll', () => {
  it('every message, or those waiting for one destination, is due now; those being delivered are counted and left alone', async () => {
    const clock = new FakeClock();
    const a = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 a is busy' }) });
    const b = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 b is busy' }) });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const c = await sink({ holdData: () => held });
    const h = await harness(localDomains({ 'a.test': a, 'b.test': b, 'c.test': c }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    const m1 = await h.submit('alice@sender.test', ['x@a.test']);
    const m2 = await h.submit('alice@sender.test', ['y@b.test']);
    const m3 = await h.submit('alice@sender.test', ['z@a.test', 'w@b.test']);
    const deferredFor = (id: string) => h.events.filter((e) => e.kind === 'deferred' && e.queueId === id).length;
    await expect.poll(() => [deferredFor(m1), deferredFor(m2), deferredFor(m3)], { interval: 5 }).toEqual([1, 1, 2]);
    const m4 = await h.submit('alice@sender.test', ['v@c.test', 'u@a.test']); // held at c: being delivered
    await expect.poll(() => c.activeTransactions).toBe(1);
    const m5 = await h.submit('alice@sender.test', ['t@a.test']);
    await expect.poll(() => deferredFor(m5), { interval: 5 }).toBe(1);
    expect(await h.queue.delete(m5)).toEqual({ result: 'removed' }); // removed: not counted
    expect(h.queue.list().find((i) => i.id === m3)!.destinations).toEqual([key(a), key(b)]);

    clock.advance(10_000);
    const before = new Map(h.queue.list().map((i) => [i.id, i.nextAttemptAt]));
    expect(h.queue.retryAll({ destination: key(b) })).toEqual({ scheduled: 2, delivering: 0 });
    await expect.poll(() => [deferredFor(m1), deferredFor(m2), deferredFor(m3)], { interval: 5 }).toEqual([1, 2, 4]);
    // manual retries: failed, shown, the schedule unchanged
    for (const id of [m2, m3]) expect(h.queue.list().find((i) => i.id === id)).toMatchObject({ attempts: 2, nextAttemptAt: before.get(id) });

    expect(h.queue.retryAll({ destination: key(a) })).toEqual({ scheduled: 2, delivering: 1 }); // m1, m3; m4 is being delivered
    await expect.poll(() => [deferredFor(m1), deferredFor(m3)], { interval: 5 }).toEqual([2, 6]);
    expect(h.queue.retryAll({ destination: 'mx:nowhere.test' })).toEqual({ scheduled: 0, delivering: 0 });

    expect(h.queue.retryAll()).toEqual({ scheduled: 3, delivering: 1 });
    await expect.poll(() => [deferredFor(m1), deferredFor(m2), deferredFor(m3)], { interval: 5 }).toEqual([3, 3, 8]);
    for (const id of [m1, m2, m3]) expect(h.queue.list().find((i) => i.id === id)!.nextAttemptAt).toBe(before.get(id));
    expect(deferredFor(m4)).toBe(0);
    release();
    await expect.poll(() => h.queue.list().find((i) => i.id === m4)?.status).toBe('deferred');
  });
});

describe('summary()', () => {
  it('messages, deferred messages, the oldest, and the destinations with the most waiting messages', async () => {
    const clock = new FakeClock();
    const a = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 a is busy' }) });
    const b = await sink({ onRcpt: (rcpt) => (rcpt.startsWith('no') ? { code: 450, message: '4.2.1 b mailbox busy' } : undefined) });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const c = await sink({ holdData: () => held });
    const h = await harness(localDomains({ 'a.test': a, 'b.test': b, 'c.test': c }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5 });
    expect(h.queue.summary()).toEqual({ messages: 0, deferred: 0, oldestReceivedAt: null, destinations: [] });
    await h.queue.start();
    const first = clock.now();
    const deferred = () => h.events.filter((e) => e.kind === 'deferred').length;
    await h.submit('alice@sender.test', ['x@a.test']);
    await expect.poll(deferred, { interval: 5 }).toBe(1);
    clock.advance(1000);
    await h.submit('alice@sender.test', ['y@a.test', 'no1@b.test', 'ok@b.test']);
    await expect.poll(deferred, { interval: 5 }).toBe(3); // y; no1
    clock.advance(1000);
    await h.submit('alice@sender.test', ['z@a.test', 'zz@a.test']);
    await expect.poll(deferred, { interval: 5 }).toBe(4); // z+zz
    await h.submit('alice@sender.test', ['v@c.test']); // held: being delivered, never failed
    await expect.poll(() => c.activeTransactions).toBe(1);

    const s = h.queue.summary();
    expect(s).toMatchObject({ messages: 4, deferred: 3, oldestReceivedAt: first });
    // most waiting messages first (b and c: one each, in key order)
    expect(s.destinations[0]).toEqual({ destination: key(a), messages: 3, down: false, lastError: expect.stringContaining('451 4.3.0 a is busy'), nextAttemptAt: first + 1 * MIN, connections: 0, waitingForConnection: 0, scheduledLater: 3 });
    expect(s.destinations.slice(1).sort((x, y) => (x.destination < y.destination ? -1 : 1))).toEqual(
      [
        { destination: key(b), messages: 1, down: false, lastError: expect.stringContaining('450 4.2.1 b mailbox busy'), nextAttemptAt: first + 1000 + 1 * MIN, connections: 0, waitingForConnection: 0, scheduledLater: 1 },
        // being delivered (its one connection): not due at any time yet
        // (nothing a retry of it would bring forward)
        { destination: key(c), messages: 1, down: false, lastError: null, nextAttemptAt: null, connections: 1, waitingForConnection: 0, scheduledLater: 0 },
      ].sort((x, y) => (x.destination < y.destination ? -1 : 1)),
    );
    release();
    await expect.poll(() => h.queue.summary().messages).toBe(3);
    expect(h.queue.summary().destinations.map((d) => [d.destination, d.messages])).toEqual([
      [key(a), 3],
      [key(b), 1],
    ]);
  });
});
