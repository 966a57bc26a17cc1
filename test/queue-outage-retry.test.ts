/**
 * The outage re-tryout (a tester pressing Retry while the internal server was down):
 * - each Retry of one message probed the destination, and each failed probe pushed the destination's next automatic
 *   probe one step further (14:51 -> 14:55 -> 15:05 -> 15:20 after three clicks): the server came back at 14:50 and
 *   its mail waited until 15:21. A probe an administrator asked for that fails leaves the schedule as it was.
 * - Retry all on a down destination gave the messages not tried the time of the probe after a failed one (an hour
 *   later), not the automatic probe's.
 * - a message whose only time was its destination's probe kept that time as "its schedule" after a real 4xx.
 * - the first wave to a destination not yet known to answer opened 20 connections to a server that never greets:
 *   now five (Postfix's initial_destination_concurrency) until it has answered once.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import { deadPort, silentServer } from './helpers/outage.ts';
import type { RelayEvent } from '../shared/events.ts';

const { sink, harness } = deliveryFixtures();
const MIN = 60_000;
type Deferred = Extract<RelayEvent, { kind: 'deferred' }>;

async function downDestination() {
  const clock = new FakeClock();
  const port = await deadPort();
  const address = `127.0.0.1:${port}`;
  const h = await harness(
    { smtp: { hostname: 'relay.test' }, domains: { 'corp.test': { deliverTo: address, recipients: '*' } }, delivery: { tls: 'off' } },
    { now: clock.now, timers: clock, random: () => 0.5 },
  );
  await h.queue.start();
  const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
  const first = await h.submit('alice@sender.test', ['a0@corp.test']);
  await expect.poll(() => deferred().length, { interval: 5 }).toBe(1);
  const probeAt = clock.now() + 1 * MIN;
  const others: string[] = [];
  for (let i = 1; i <= 3; i++) others.push(await h.submit('alice@sender.test', [`a${i}@corp.test`]));
  await expect.poll(() => deferred().length, { interval: 5 }).toBe(4);
  const dest = () => h.queue.summary().destinations[0]!;
  expect(dest()).toMatchObject({ destination: `local:${address}`, down: true, nextAttemptAt: probeAt });
  return { clock, port, h, deferred, first, others, probeAt, dest };
}

describe('retries while a destination is down', () => {
  it("an administrator's retries probe it, and when they fail the automatic probe stays when it was; it then delivers everything", async () => {
    const { clock, port, h, deferred, first, others, probeAt, dest } = await downDestination();
    for (let n = 1; n <= 3; n++) {
      clock.advance(2000);
      const before = deferred().length;
      expect(h.queue.retry(others[0]!)).toBe(true);
      // the retried message is the probe (refused again); nothing else connects
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(before + 1);
      expect(dest()).toMatchObject({ down: true, nextAttemptAt: probeAt });
    }
    // back, and the automatic probe comes at its time: every message goes
    const up = await sink({ port });
    try {
      clock.advance(probeAt - clock.now());
      await up.waitFor(4);
      expect(up.messages.flatMap((m) => m.to).sort()).toEqual(['a0@corp.test', 'a1@corp.test', 'a2@corp.test', 'a3@corp.test']);
      await expect.poll(() => h.queue.size).toBe(0);
      expect(first).toBeTruthy();
    } finally {
      await up.close();
    }
  });

  it('Retry all on a down destination: one probe; the others wait for the automatic probe, not the one after a failure', async () => {
    const { clock, h, deferred, probeAt } = await downDestination();
    clock.advance(5000);
    const before = deferred().length;
    const dest = h.queue.summary().destinations[0]!.destination;
    // (and the answer says so: 3 of the 4 wait for the probe)
    expect(h.queue.retryAll({ destination: dest })).toEqual({ scheduled: 4, delivering: 0, heldBack: 3, down: [{ destination: dest, messages: 4, heldBack: 3 }] });
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(before + 4);
    // (jitter: up to a tenth of the interval, 0.5 of it here)
    for (const item of h.queue.list()) expect(item.nextAttemptAt).toBeLessThanOrEqual(probeAt + 0.1 * MIN);
    expect(h.queue.summary().destinations[0]).toMatchObject({ down: true, nextAttemptAt: probeAt });
  });
});

describe('a destination not yet known to answer', () => {
  it('gets at most five connections at once: a server that never greets holds five, not twenty', async () => {
    const hung = await silentServer();
    try {
      const h = await harness(
        { smtp: { hostname: 'relay.test' }, domains: { 'corp.test': { deliverTo: hung.address, recipients: '*' } }, delivery: { tls: 'off' } },
        { connectTimeoutMs: 1500, random: () => 0.5 },
      );
      for (let i = 0; i < 12; i++) await h.submit('alice@sender.test', [`a${i}@corp.test`]);
      await h.queue.start();
      await expect.poll(() => h.events.filter((e) => e.kind === 'deferred').length, { timeout: 10_000 }).toBe(12);
      expect(hung.stats.maxOpen).toBe(5);
    } finally {
      await hung.close();
    }
  });

  it('once it has answered, the full per-destination concurrency', async () => {
    const s = await sink({ dataDelayMs: 150 });
    const h = await harness(localDomains({ 'corp.test': s }, { tls: 'off' }), { perDestination: 8 });
    await h.queue.start();
    await h.submit('alice@sender.test', ['first@corp.test']);
    await s.waitFor(1);
    for (let i = 0; i < 12; i++) await h.submit('alice@sender.test', [`a${i}@corp.test`]);
    await s.waitFor(13);
    expect(s.maxTransactions).toBe(8);
  });
});
