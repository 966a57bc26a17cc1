import { afterEach, describe, expect, it } from 'vitest';
import { RawSmtp, sendMail } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

let t: TestRelay | null = null;
afterEach(async () => {
  await t?.stop();
  t = null;
});

describe('limits.messagesPerHour', () => {
  it('accepts up to the limit, then answers 450 4.7.1 with the count and limit, and rolls over after an hour', async () => {
    t = await startTestRelay({ limits: { messagesPerHour: { max: 3 } } });
    for (let i = 0; i < 3; i++) {
      const r = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
      expect(r.data?.code).toBe(250);
    }
    const over = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    expect(over.mail.code).toBe(450);
    expect(over.mail.text).toBe('4.7.1 Too much mail from 127.0.0.5: 3 messages in the last hour (limit 3). Try again later.');
    const ev = t.rejections('limits.messagesPerHour');
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ ip: '127.0.0.5', stage: 'mail', code: 450, enforced: true });
    // another client is not affected
    const other = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.6' });
    expect(other.data?.code).toBe(250);
    // a rolling hour: just before it ends still refused, after it accepted
    t.clock.advance(60 * 60_000 - 1);
    expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' })).mail.code).toBe(450);
    t.clock.advance(1);
    expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' })).data?.code).toBe(250);
  });

  it('monitor mode accepts and reports a would-have rejection; off does nothing; exempt IPs pass', async () => {
    t = await startTestRelay({
      limits: { messagesPerHour: { max: 1, mode: 'monitor' } },
      groups: { Trusted: [{ address: '127.0.0.9' }] },
    });
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    const r = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    expect(r.data?.code).toBe(250);
    expect(t.rejections('limits.messagesPerHour')).toMatchObject([{ enforced: false, code: 450 }]);
    for (let i = 0; i < 3; i++) {
      expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.9' })).data?.code).toBe(250);
    }
    expect(t.rejections('limits.messagesPerHour').filter((e) => e.ip === '127.0.0.9')).toHaveLength(0);
  });

  it('a lowered limit applies to an open session at its next MAIL FROM', async () => {
    t = await startTestRelay({ limits: { messagesPerHour: { max: 100 } } });
    const c = await RawSmtp.connect(t.port, { localAddress: '127.0.0.7' });
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: 1\r\n\r\nx')).code).toBe(250);
    t.relay.config.modify((d) => void (d.limits.messagesPerHour.max = 1), { by: 'test', source: 'test' });
    const r = await c.cmd('MAIL FROM:<a@example.org>');
    expect(r.code).toBe(450);
    await c.quit();
  });
});
