import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { RawSmtp, sendMail, smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { clients, open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

const MAIL = { from: 'a@example.org', to: ['alice@example.com'] };

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

  it('monitor mode accepts and reports a would-have rejection; exempt IPs pass (off: the test below)', async () => {
    t = await startTestRelay({
      limits: { messagesPerHour: { max: 1, mode: 'monitor' } },
      groups: { Trusted: [{ address: '127.0.0.9' }] },
    });
    expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' })).data?.code).toBe(250);
    expect(t.rejections('limits.messagesPerHour')).toHaveLength(0);
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

  it('off does nothing: no refusal and no event however many messages', async () => {
    t = await startTestRelay({ limits: { messagesPerHour: { max: 1, mode: 'off' } } });
    for (let i = 0; i < 3; i++) {
      expect((await sendMail(t.port, { ...MAIL, localAddress: '127.0.0.5' })).data?.code).toBe(250);
    }
    expect(t.rejections('limits.messagesPerHour')).toHaveLength(0);
  });
});

describe('limits.concurrentConnections', () => {
  it('refuses the connection over the limit with 421 4.7.0 and closes it; other IPs pass; closing one frees a slot', async () => {
    t = await startTestRelay({ limits: { concurrentConnections: { max: 2 } } });
    const a = await open(t.port, '127.0.0.10');
    const b = await open(t.port, '127.0.0.10');
    expect((await a.hello()).code).toBe(250);
    expect((await b.hello()).code).toBe(250);
    const c = await open(t.port, '127.0.0.10');
    const r = await c.read();
    expect(r).toMatchObject({ code: 421, text: '4.7.0 Too many connections from 127.0.0.10: 3 open (limit 2). Close some and try again.' });
    await waitFor(() => c.closed, 'the refused connection to be closed');
    expect(t.rejections('limits.concurrentConnections')).toMatchObject([{ ip: '127.0.0.10', stage: 'connect', code: 421, enforced: true }]);
    // another client is not affected
    const d = await open(t.port, '127.0.0.11');
    expect((await d.hello()).code).toBe(250);
    // the refused connection was not left counted, and closing one frees a slot
    await waitFor(() => t!.relay.anvil.connections('127.0.0.10') === 2, 'the refused connection to be uncounted');
    await a.quit();
    await waitFor(() => t!.relay.anvil.connections('127.0.0.10') === 1, 'the closed connection to be uncounted');
    const e = await open(t.port, '127.0.0.10');
    expect((await e.hello()).code).toBe(250);
    expect(t.rejections('limits.concurrentConnections')).toHaveLength(1);
  });

  it('a refused client that keeps its socket open does not go on counting against its IP', async () => {
    t = await startTestRelay({ limits: { concurrentConnections: { max: 2 } } });
    const a = await open(t.port, '127.0.0.14');
    const b = await open(t.port, '127.0.0.14');
    expect((await a.hello()).code).toBe(250);
    expect((await b.hello()).code).toBe(250);
    // a client that reads the 421 and then neither closes nor ends its side (smtp-server waits up to 5 s for it)
    const stubborn = net.connect({ port: t.port, host: '127.0.0.1', localAddress: '127.0.0.14', allowHalfOpen: true });
    const reply = await new Promise<string>((resolve) => stubborn.once('data', (d) => resolve(d.toString())));
    try {
      expect(reply).toMatch(/^421 4\.7\.0 Too many connections from 127\.0\.0\.14: 3 open \(limit 2\)/);
      // the relay ended that session when it sent the 421: it counts no more, though the socket is still open
      expect(stubborn.destroyed).toBe(false);
      expect(t.relay.anvil.connections('127.0.0.14')).toBe(2);
      // so a slot freed by a client that leaves is there for the next one at once
      await a.quit();
      await waitFor(() => t!.relay.anvil.connections('127.0.0.14') === 1, 'the closed connection to be uncounted');
      const c = await open(t.port, '127.0.0.14');
      expect((await c.hello()).code).toBe(250);
      expect(t.rejections('limits.concurrentConnections')).toHaveLength(1);
      // one disconnect event per session, the stubborn one's included, however its socket ends
      stubborn.destroy();
      await c.quit();
      const endsOf = () => t!.events.filter((e) => e.kind === 'disconnect' && e.ip === '127.0.0.14');
      await waitFor(() => endsOf().length >= 3 && t!.relay.anvil.connections('127.0.0.14') === 1, 'c to be uncounted');
      const ends = endsOf();
      expect(ends).toHaveLength(3);
      expect(new Set(ends.map((e) => e.sessionId)).size).toBe(3);
    } finally {
      stubborn.destroy();
    }
  });

  it('monitor accepts the connection and reports it; off does nothing; exempt IPs pass', async () => {
    t = await startTestRelay({
      limits: { concurrentConnections: { max: 1, mode: 'monitor' } },
      groups: { Trusted: [{ address: '127.0.0.12' }] },
    });
    const a = await open(t.port, '127.0.0.10');
    const b = await open(t.port, '127.0.0.10');
    expect((await a.hello()).code).toBe(250);
    expect((await b.hello()).code).toBe(250);
    expect(t.rejections('limits.concurrentConnections')).toMatchObject([{ ip: '127.0.0.10', code: 421, enforced: false }]);
    // exempt: three connections at a limit of one, no event
    const ex = [await open(t.port, '127.0.0.12'), await open(t.port, '127.0.0.12'), await open(t.port, '127.0.0.12')];
    for (const c of ex) expect((await c.hello()).code).toBe(250);
    expect(t.rejections('limits.concurrentConnections').filter((e) => e.ip === '127.0.0.12')).toHaveLength(0);
    // off
    t.relay.config.modify((d) => void (d.limits.concurrentConnections.mode = 'off'), { by: 'test', source: 'test' });
    const offs = [await open(t.port, '127.0.0.13'), await open(t.port, '127.0.0.13'), await open(t.port, '127.0.0.13')];
    for (const c of offs) expect((await c.hello()).code).toBe(250);
    expect(t.rejections('limits.concurrentConnections').filter((e) => e.ip === '127.0.0.13')).toHaveLength(0);
  });
});

describe('limits.unknownRecipients', () => {
  it('550 5.1.1 for each unknown recipient; at the limit 421 4.7.0, close, and a block for blockMinutes', async () => {
    t = await startTestRelay({ limits: { unknownRecipients: { max: 3, blockMinutes: 5 } } });
    const c = await open(t.port, '127.0.0.20');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    for (const n of [1, 2]) {
      expect(await c.cmd(`RCPT TO:<nobody${n}@example.com>`)).toMatchObject({
        code: 550,
        text: `5.1.1 <nobody${n}@example.com>: no such recipient here. Check the address.`,
      });
    }
    expect(await c.cmd('RCPT TO:<nobody3@example.com>')).toMatchObject({
      code: 421,
      text: '4.7.0 Too many unknown recipients from 127.0.0.20: 3 in the last hour (limit 3). Blocked for 5 minutes.',
    });
    await waitFor(() => c.closed, 'the session to be closed');
    // one event per reply sent: two 550s, then the limit's 421 (a tryout saw a third 550 recorded that no client got)
    expect(t.rejections('recipient.unknown').map((e) => e.to)).toEqual(['nobody1@example.com', 'nobody2@example.com']);
    expect(t.rejections('limits.unknownRecipients')).toMatchObject([{ ip: '127.0.0.20', stage: 'rcpt', code: 421, enforced: true, to: 'nobody3@example.com' }]);

    // blocked: new connections get the reply and are closed
    const blockedText = '4.7.0 127.0.0.20 is blocked until 2026-11-27T12:05:00Z: too many unknown recipients. Try again later.';
    const d = await open(t.port, '127.0.0.20');
    expect(await d.read()).toMatchObject({ code: 421, text: blockedText });
    await waitFor(() => d.closed, 'the blocked connection to be closed');
    // other clients are not blocked
    expect((await sendMail(t.port, { ...MAIL, localAddress: '127.0.0.21' })).data?.code).toBe(250);
    // the block lasts blockMinutes on the clock, then ends
    t.clock.advance(5 * 60_000 - 1);
    const e = await open(t.port, '127.0.0.20');
    expect((await e.read())?.code).toBe(421);
    t.clock.advance(1);
    expect((await sendMail(t.port, { ...MAIL, localAddress: '127.0.0.20' })).data?.code).toBe(250);
  });

  it('monitor keeps answering 550 and reports the limit without a block; off counts nothing; exempt IPs are not counted', async () => {
    t = await startTestRelay({
      limits: { unknownRecipients: { max: 2, mode: 'monitor' } },
      groups: { Trusted: [{ address: '127.0.0.22' }] },
    });
    for (const ip of ['127.0.0.20', '127.0.0.22']) {
      const c = await open(t.port, ip);
      await c.hello();
      await c.cmd('MAIL FROM:<a@example.org>');
      for (let i = 0; i < 4; i++) expect((await c.cmd(`RCPT TO:<nobody${i}@example.com>`)).code).toBe(550);
      expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
      expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
      await c.quit();
    }
    // 2nd, 3rd and 4th unknown recipient of 127.0.0.20 reached the limit of 2
    expect(t.rejections('limits.unknownRecipients')).toMatchObject([
      { ip: '127.0.0.20', enforced: false, code: 421 },
      { ip: '127.0.0.20', enforced: false },
      { ip: '127.0.0.20', enforced: false },
    ]);
    expect(t.relay.anvil.blocked('127.0.0.20')).toBeNull();
    expect(t.relay.anvil.unknownRecipientsLastHour('127.0.0.22')).toBe(0);
    const d = await open(t.port, '127.0.0.20');
    expect((await d.read())?.code).toBe(220);

    t.relay.config.modify((d) => void (d.limits.unknownRecipients.mode = 'off'), { by: 'test', source: 'test' });
    const before = t.rejections('limits.unknownRecipients').length;
    const c = await open(t.port, '127.0.0.23');
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    for (let i = 0; i < 4; i++) expect((await c.cmd(`RCPT TO:<nobody${i}@example.com>`)).code).toBe(550);
    expect(t.rejections('limits.unknownRecipients')).toHaveLength(before);
  });
});

describe('smtp.maxConnections', () => {
  it('refuses connections over the server-wide limit with 421 4.7.0, whatever the client IP', async () => {
    t = await startTestRelay({ smtp: { maxConnections: 2 }, groups: { Trusted: [{ address: '127.0.0.12' }] } });
    const a = await open(t.port, '127.0.0.10');
    const b = await open(t.port, '127.0.0.11');
    await a.hello();
    await b.hello();
    const c = await open(t.port, '127.0.0.12');
    expect(await c.read()).toMatchObject({ code: 421, text: '4.7.0 This server has too many connections (limit 2). Try again in a moment.' });
    await waitFor(() => c.closed, 'the refused connection to be closed');
    expect(t.rejections('smtp.maxConnections')).toMatchObject([{ ip: '127.0.0.12', stage: 'connect', code: 421, enforced: true }]);
    // it never reached onConnect, so it was never counted per IP and no disconnect is reported for it
    expect(t.relay.anvil.connections('127.0.0.12')).toBe(0);
    await a.quit();
    await waitFor(() => t!.relay.front.connectionCount === 1, 'the server to see one connection');
    const d = await open(t.port, '127.0.0.12');
    expect((await d.hello()).code).toBe(250);
  });
});

