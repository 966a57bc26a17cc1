/**
 * A downstream server that refuses MAIL FROM. With PIPELINING (smtp-server offers it, as most servers do) nodemailer
 * sends MAIL, RCPT and DATA at once, and the server answers each RCPT "503 need MAIL command". Those 503s were taken
 * as the recipients' own replies: a 451 at MAIL FROM (greylisting, a full disk) bounced every message, and the soak
 * test lost 9,066 acknowledged messages in three minutes. The MAIL's reply decides for every recipient.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import type { RelayEvent } from '../shared/events.ts';

const { sink, harness } = deliveryFixtures();
type Kind<K extends RelayEvent['kind']> = Extract<RelayEvent, { kind: K }>;

describe('a refused MAIL FROM (pipelined)', () => {
  it('451 defers every recipient (no bounce, no 503 in the reason), and the message is delivered once the server takes it', async () => {
    const clock = new FakeClock();
    let refuse = true;
    const s = await sink({ onMailFrom: () => (refuse ? { code: 451, message: '4.3.0 try again later' } : undefined) });
    const h = await harness(plainLocalDomains({ 'corp.test': s }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['a@corp.test', 'b@corp.test', 'c@corp.test']);
    await expect.poll(() => h.events.some((e) => e.kind === 'deferred' || e.kind === 'bounced'), { interval: 5 }).toBe(true);
    expect(h.events.filter((e) => e.kind === 'bounced')).toEqual([]);
    const deferred = h.events.filter((e): e is Kind<'deferred'> => e.kind === 'deferred');
    expect(deferred.flatMap((e) => e.to).sort()).toEqual(['a@corp.test', 'b@corp.test', 'c@corp.test']);
    for (const e of deferred) {
      expect(e.reason).toContain('451');
      expect(e.reason).not.toContain('503');
    }
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, to: ['a@corp.test', 'b@corp.test', 'c@corp.test'], attempts: 1 })]);

    refuse = false;
    clock.advance(61_000);
    await s.waitFor(1);
    expect(s.messages[0]!.to.sort()).toEqual(['a@corp.test', 'b@corp.test', 'c@corp.test']);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.events.filter((e) => e.kind === 'bounced')).toEqual([]);
  });

  it('550 at MAIL FROM bounces every recipient with the 550, not the 503s that followed it', async () => {
    const s = await sink({ onMailFrom: () => ({ code: 550, message: '5.7.1 sender refused by policy' }) });
    const h = await harness(plainLocalDomains({ 'corp.test': s }));
    await h.queue.start();
    await h.submit('alice@sender.test', ['a@corp.test', 'b@corp.test']);
    await expect.poll(() => h.events.filter((e) => e.kind === 'bounced').length, { interval: 5 }).toBeGreaterThan(0);
    const bounced = h.events.filter((e): e is Kind<'bounced'> => e.kind === 'bounced' && e.to.some((t) => t.endsWith('@corp.test')));
    expect(bounced.flatMap((e) => e.to).sort()).toEqual(['a@corp.test', 'b@corp.test']);
    for (const e of bounced) {
      expect(e.reason).toContain('550');
      expect(e.reason).not.toContain('503');
    }
  });
});
