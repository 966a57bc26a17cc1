/**
 * Review 5 (2d81fd4, schedule()'s heapAt): "its live entry is there already" returns before armTimer(). stop() clears
 * the retry timer but keeps the heap and every message's heapAt; start() on the same Queue schedules each message
 * again, finds heapAt === nextAttemptAt, returns early, and no timer is armed: every deferred message waits forever
 * (until something else arms the timer: a new message with a later retry, a manual retry). Before 2d81fd4 schedule()
 * always pushed and armed. start() after stop() is a supported use of the Queue (queue-stop.test.ts pins it).
 *
 * Failed before the fix in spool.ts.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';

const { sink, harness } = deliveryFixtures();
const MIN = 60_000;

describe('stop() then start() on the same Queue', () => {
  it('a deferred message is still retried at its time', async () => {
    const clock = new FakeClock();
    const dest = await sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not yet' }) });
    const h = await harness(localDomains({ 'example.test': dest }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@example.test']);
    const deferrals = () => h.events.filter((e) => e.kind === 'deferred').length;
    await expect.poll(deferrals, { interval: 5 }).toBe(1);
    const due = h.queue.list()[0]!.nextAttemptAt;
    expect(due).toBe(clock.now() + 1 * MIN);

    await h.queue.stop();
    await h.queue.start();
    // the queue's retry timer is armed again for that time
    expect(clock.nextAt()).toBe(due);
    clock.advance(1 * MIN);
    await expect.poll(deferrals, { interval: 5, timeout: 3000 }).toBe(2);
  });
});
