/**
 * The console tryout of session 12, finding 1: "Retry all now (17)" with the next hop down answered "17 messages will be
 * tried now", while the relay (rightly, as Postfix does for a dead destination) tried one message, the probe, and held
 * the other 15 back until it answered. The relay's answer now says which destinations are down and how many messages
 * wait for their probe, and the toast says it in words. The "not tried" reason said "next try 19:00:10" while the
 * message's own next attempt was 19:00:15 (the probe time plus jitter): it now says the message's own time.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures } from './helpers/delivery-fixtures.ts';
import { deadPort, silentServer } from './helpers/outage.ts';
import { Methods } from '../shared/protocol.ts';
import { retryAllDoneText } from '../renderer/src/views/parts/queue-health.ts';
import type { RelayEvent } from '../shared/events.ts';

const { harness } = deliveryFixtures();
type Deferred = Extract<RelayEvent, { kind: 'deferred' }>;
const hhmmss = (t: number) => new Date(t).toISOString().slice(11, 19);

async function downDestination(address: string, extra: number, opts: { connectTimeoutMs?: number } = {}) {
  const clock = new FakeClock();
  const h = await harness(
    { smtp: { hostname: 'relay.test' }, domains: { 'corp.test': { deliverTo: address, recipients: '*' } }, delivery: { tls: 'off' } },
    { now: clock.now, timers: clock, random: () => 0.5, ...opts },
  );
  await h.queue.start();
  const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
  const ids = [await h.submit('alice@sender.test', ['a0@corp.test'])];
  await expect.poll(() => deferred().length, { interval: 5, timeout: 5000 }).toBe(1);
  for (let i = 1; i <= extra; i++) ids.push(await h.submit('alice@sender.test', [`a${i}@corp.test`]));
  await expect.poll(() => deferred().length, { interval: 5, timeout: 5000 }).toBe(1 + extra);
  return { clock, h, deferred, ids, dest: `local:${address}` };
}

describe('Retry all with a destination down (finding 1)', () => {
  it('the answer says one message is its probe and the others are held back; the reason gives the message its own next try', async () => {
    const address = `127.0.0.1:${await deadPort()}`;
    const { clock, h, deferred, dest } = await downDestination(address, 15);
    clock.advance(5000);
    const before = deferred().length;
    const attemptsBefore = h.queue.list().reduce((n, i) => n + i.attempts, 0);
    const r = h.queue.retryAll();
    expect(r).toEqual({ scheduled: 16, delivering: 0, heldBack: 15, down: [{ destination: dest, messages: 16, heldBack: 15 }] });
    // what it says is what happens: one attempt (the probe, refused), 15 not tried
    await expect.poll(() => deferred().length, { interval: 5, timeout: 5000 }).toBe(before + 16);
    expect(h.queue.list().reduce((n, i) => n + i.attempts, 0)).toBe(attemptsBefore + 1);
    const notTried = h.queue.list().filter((i) => i.lastError?.startsWith('not tried: '));
    expect(notTried.length).toBe(15);
    // "next try HH:MM:SS" is the time the Queue row counts down to (nextAttemptAt: the probe time plus jitter)
    for (const i of notTried) expect(i.lastError).toMatch(new RegExp(`; next try ${hhmmss(i.nextAttemptAt)} UTC$`));

    // the console's toast, from that answer
    expect(retryAllDoneText(r, null)).toBe(
      `${address} is down: one message is tried now to see if it answers; the other 15 follow as soon as it does.`,
    );
  });

  it('a probe under way already: every retried message waits for its answer, and the one probing is being delivered', async () => {
    const hung = await silentServer();
    try {
      // (the greeting timeout is real time, long enough to retry all while the probe waits for its greeting)
      const { clock, h, ids, dest } = await downDestination(hung.address, 3, { connectTimeoutMs: 3000 });
      clock.advance(2000);
      expect(h.queue.retry(ids[1]!)).toBe(true);
      await expect.poll(() => hung.stats.open, { interval: 5, timeout: 5000 }).toBe(1);
      const r = h.queue.retryAll();
      expect(r).toEqual({ scheduled: 3, delivering: 1, heldBack: 3, down: [{ destination: dest, messages: 3, heldBack: 3 }] });
      expect(retryAllDoneText(r, dest)).toBe(
        `${hung.address} is down: a connection to it is under way to see if it answers; its 3 messages follow as soon as it does. 1 is being delivered already.`,
      );
      expect(hung.stats.connections).toBe(2);
    } finally {
      await hung.close();
    }
  });

  it('the manage answer carries it, and an older relay’s answer (no heldBack) still reads', () => {
    const schema = Methods['queue.retry'].result;
    const now = { ok: true, scheduled: 17, delivering: 0, heldBack: 15, down: [{ destination: 'local:127.0.0.1:3626', messages: 16, heldBack: 15 }] };
    expect(schema.parse(now)).toEqual(now);
    const old = { ok: true, scheduled: 17, delivering: 0 };
    const parsed = schema.parse(old);
    expect(parsed).toEqual(old);
    expect(retryAllDoneText(parsed as typeof old, null)).toBe('17 messages will be tried now.');
    // the tryout's queue: 16 for the dead next hop, one DSN for a domain whose MX does not answer either
    expect(
      retryAllDoneText(
        { scheduled: 18, delivering: 1, heldBack: 15, down: [{ destination: 'local:127.0.0.1:3626', messages: 16, heldBack: 15 }, { destination: 'mx:remote.test', messages: 1, heldBack: 0 }] },
        null,
      ),
    ).toBe(
      '127.0.0.1:3626 is down: one message is tried now to see if it answers; the other 15 follow as soon as it does. ' +
        'remote.test is down: its one message is tried now to see if it answers. 1 message for other destinations is tried now. 1 is being delivered already.',
    );
  });
});
