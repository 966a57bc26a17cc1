/**
 * Review 5 (outage scheduling, 2d81fd4): a Retry (retry(id), retryAll) of a message for a destination that is down,
 * made while its probe connection is under way, sets the destination's probeAt back to "now" (retryNow). The probe
 * is still running, so the message is not tried (skip()), and is given skippedUntil = probeAt + jitter: a time that
 * is already past a few seconds later. Every following skip of it (and of every other message of the destination
 * that comes due meanwhile) gets that same past time, so finishAttempt makes it due at once: it is skipped again,
 * its state written again, a 'deferred' event emitted again, in a loop, as long as the probe runs (a server that
 * never greets: connectTimeoutMs, 30 s by default).
 *
 * Failed before the fix in spool.ts.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures } from './helpers/delivery-fixtures.ts';
import { silentServer } from './helpers/outage.ts';
import type { RelayEvent } from '../shared/events.ts';

const { harness } = deliveryFixtures();
const MIN = 60_000;

type Deferred = Extract<RelayEvent, { kind: 'deferred' }>;

describe('retry of a message for a down destination while its probe runs', () => {
  it('defers it once (until the probe has ended), not in a loop of "not tried" deferrals', async () => {
    const clock = new FakeClock();
    const hung = await silentServer();
    try {
      const h = await harness(
        { smtp: { hostname: 'relay.test' }, domains: { 'corp.test': { deliverTo: hung.address, recipients: '*' } }, delivery: { tls: 'off' } },
        // the greeting timeout is real time (the probe lasts that long); the schedule is the fake clock's
        { now: clock.now, timers: clock, random: () => 0.5, connectTimeoutMs: 2500 },
      );
      await h.queue.start();
      const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
      const a = await h.submit('alice@sender.test', ['a@corp.test']);
      await expect.poll(() => deferred().length, { interval: 5, timeout: 8000 }).toBe(1); // A: no greeting: down
      const b = await h.submit('alice@sender.test', ['b@corp.test']);
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(2); // B: not tried
      expect(deferred()[1]!.reason).toMatch(/^not tried/);

      // the probe time: A is the probe (a connection that hangs for 2.5 s of real time), B is not tried
      clock.advance(1 * MIN + 3000);
      await expect.poll(() => hung.stats.connections, { interval: 5 }).toBe(2);
      await expect.poll(() => deferred().filter((e) => e.queueId === b).length, { interval: 5 }).toBe(2);

      // while the probe runs, the administrator presses Retry on B: not tried (a probe is under way), deferred once
      h.queue.retry(b);
      await expect.poll(() => deferred().filter((e) => e.queueId === b).length, { interval: 5 }).toBe(3);
      // a few seconds of the schedule pass (the jitter of the time B was given)
      clock.advance(3000);
      // wait 1 s of real time: the probe is still hanging
      await new Promise((r) => setTimeout(r, 1000));
      const bDeferrals = deferred().filter((e) => e.queueId === b);
      const probeOpen = deferred().filter((e) => e.queueId === a).length === 1;
      // (diagnostics when it fails: how many times B was deferred while the probe still ran, and its last due time)
      expect(probeOpen).toBe(true);
      // one more deferral at most (the one due now); with the defect, hundreds: it is due again at once, each time
      expect(bDeferrals.length).toBeLessThanOrEqual(4);
      expect(bDeferrals.at(-1)!.nextAttemptAt).toBeGreaterThan(clock.now());
      expect(hung.stats.connections).toBe(2);
    } finally {
      await hung.close();
    }
  }, 20_000);

  it('retryAll of a down destination: one probe, the other messages deferred once each, not in a loop', async () => {
    const clock = new FakeClock();
    const hung = await silentServer();
    try {
      const h = await harness(
        { smtp: { hostname: 'relay.test' }, domains: { 'corp.test': { deliverTo: hung.address, recipients: '*' } }, delivery: { tls: 'off' } },
        { now: clock.now, timers: clock, random: () => 0.5, connectTimeoutMs: 2500 },
      );
      await h.queue.start();
      const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
      await h.submit('alice@sender.test', ['a@corp.test']);
      await expect.poll(() => deferred().length, { interval: 5, timeout: 8000 }).toBe(1);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await h.submit('alice@sender.test', [`m${i}@corp.test`]));
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(6);

      clock.advance(10_000);
      // Retry all: one message becomes the probe (it hangs), the others are not tried
      const dest = `local:${hung.address}`;
      expect(h.queue.retryAll({ destination: dest })).toEqual({ scheduled: 6, delivering: 0, heldBack: 5, down: [{ destination: dest, messages: 6, heldBack: 5 }] });
      await expect.poll(() => hung.stats.connections, { interval: 5 }).toBe(2);
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(11);
      clock.advance(4000);
      await new Promise((r) => setTimeout(r, 1000));
      const after = deferred().slice(6);
      // each of the 5 not tried: once (maybe twice); with the defect, each loops (hundreds of deferrals and state writes)
      expect(after.length).toBeLessThanOrEqual(10);
      expect(hung.stats.connections).toBe(2);
    } finally {
      await hung.close();
    }
  }, 20_000);
});
