/**
 * A bounce (null sender) that cannot be delivered is said on stdout at most once a minute, then how many more there
 * were. Found by the soak test: a burst of them (bounces to made-up sender domains, during an outage) wrote one
 * stdout line each, about 9,000 lines in three minutes, straight into a systemd journal.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';

const { sink, harness } = deliveryFixtures();

describe('undeliverable bounces on stdout', () => {
  it('the first is said; the rest of the minute are counted and said in one line when it ends', async () => {
    const clock = new FakeClock();
    const lines: string[] = [];
    const s = await sink({ onRcpt: () => ({ code: 550, message: '5.1.1 no such user' }) });
    const h = await harness(plainLocalDomains({ 'corp.test': s }), { now: clock.now, timers: clock, log: (l: string) => lines.push(l) });
    await h.queue.start();
    for (let i = 0; i < 6; i++) await h.submit('', [`gone${i}@corp.test`]);
    await expect.poll(() => h.events.filter((e) => e.kind === 'bounced').length, { interval: 5 }).toBe(6);
    const said = () => lines.filter((l) => l.includes('(null sender) could not be delivered'));
    expect(said()).toHaveLength(1);
    expect(said()[0]).toMatch(/^queue: \S+ \(null sender\) could not be delivered to gone\d@corp\.test; no bounce is sent for a bounce$/);
    clock.advance(60_000);
    await expect.poll(() => said().length).toBe(2);
    expect(said()[1]).toMatch(/^queue: 5 more bounces \(null sender\) could not be delivered since \d\d:\d\d:\d\d UTC; not said one by one/);
    // a minute on, quiet: nothing more; the next one is said again
    clock.advance(120_000);
    expect(said()).toHaveLength(2);
    await h.submit('', ['late@corp.test']);
    await expect.poll(() => said().length).toBe(3);
    expect(said()[2]).toContain('late@corp.test');
  });
});
