/**
 * A destination that was down answers again, but the probe's own message is not delivered (its recipient greylisted):
 * the server is up all the same, so the messages that were not tried while it was down are brought forward at once,
 * instead of waiting for the next probe time (up to an hour). Found by the review of the dead-destination rule.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import type { RelayEvent } from '../shared/events.ts';

const { sink, harness } = deliveryFixtures();

type Deferred = Extract<RelayEvent, { kind: 'deferred' }>;

describe('a destination that answers again', () => {
  it('brings forward the messages not tried while it was down, even when the probe itself was deferred by the server', async () => {
    const clock = new FakeClock();
    let up = await sink();
    const port = up.port;
    await up.close();
    const h = await harness(localDomains({ 'corp.test': up }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
    const probe = await h.submit('alice@sender.test', ['grey@corp.test']);
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(1);
    const waiting: string[] = [];
    for (let i = 0; i < 3; i++) waiting.push(await h.submit('alice@sender.test', [`u${i}@corp.test`]));
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(4);
    for (const id of waiting) expect(h.queue.list().find((i) => i.id === id)!.nextAttemptAt).toBeGreaterThan(clock.now());

    // back, greylisting the probe's recipient only; the administrator retries the probe's message
    up = await sink({ port, onRcpt: (rcpt) => (rcpt.startsWith('grey') ? { code: 451, message: '4.7.1 greylisted, try later' } : undefined) });
    try {
      h.queue.retry(probe);
      // the clock does not move: the three go now, not at the next probe time
      await up.waitFor(3);
      expect(up.messages.flatMap((m) => m.to).sort()).toEqual(['u0@corp.test', 'u1@corp.test', 'u2@corp.test']);
      await expect.poll(() => h.queue.list().map((i) => i.id)).toEqual([probe]);
      expect(h.queue.summary().destinations[0]).toMatchObject({ down: false, lastError: expect.stringContaining('greylisted') });
    } finally {
      await up.close();
    }
  });
});
