/**
 * The events of one full SMTP session, as a subscriber of the relay's bus sees them, and the envelope
 * stored beside the accepted message.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../relay/auth/passwords.ts';
import { readQueuedMessage } from '../relay/queue/files.ts';
import { RelayEvent } from '../shared/events.ts';
import { RawSmtp, smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { clients } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

let hash = '';
beforeAll(async () => {
  hash = await hashPassword('correct horse');
});

describe('events', () => {
  it('one session: connect, helo, auth (failed and good), mail, rcpt, rejected, accepted, disconnect, in order and valid', async () => {
    t = await startTestRelay({ users: { sales: { passwordHash: hash } } });
    const c = await RawSmtp.connect(t.port, { localAddress: '127.0.0.5' });
    clients.push(c);
    await c.hello('client.test');
    expect((await c.cmd(`AUTH PLAIN ${Buffer.from('\0sales\0wrong').toString('base64')}`)).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${Buffer.from('\0sales\0correct horse').toString('base64')}`)).code).toBe(235);
    expect((await c.cmd('MAIL FROM:<sales@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<nobody@example.com>')).code).toBe(550);
    expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(250);
    const body = 'Subject: events\r\n\r\nhello\r\n';
    const done = await c.data(body);
    expect(done.code).toBe(250);
    const queueId = /queued as ([0-9A-Z]{17})$/.exec(done.text)?.[1];
    expect(queueId).toBeDefined();
    await c.quit();
    await waitFor(() => t!.events.some((e) => e.kind === 'disconnect'), 'the disconnect event');

    // the SMTP front's events (the queue's delivery events may follow; they are not this test's business)
    const FRONT = new Set(['connect', 'helo', 'auth', 'mail', 'rcpt', 'accepted', 'rejected', 'disconnect']);
    const session = t.events.filter((e) => e.sessionId !== null && FRONT.has(e.kind));
    for (const e of session) expect(RelayEvent.safeParse(e).success, JSON.stringify(e)).toBe(true);
    const sid = session[0]!.sessionId;
    expect(session.every((e) => e.sessionId === sid && e.ip === '127.0.0.5')).toBe(true);
    expect(session.map((e) => e.kind)).toEqual(['connect', 'helo', 'auth', 'auth', 'mail', 'rcpt', 'rejected', 'rcpt', 'accepted', 'disconnect']);
    const ids = session.map((e) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(session.every((e) => e.at === t!.clock.now())).toBe(true);

    const [connect, helo, authBad, authOk, mail, rcpt1, unknown, rcpt2, accepted, disconnect] = session;
    expect(connect).toMatchObject({ kind: 'connect', port: expect.any(Number) });
    expect(helo).toMatchObject({ kind: 'helo', name: 'client.test' });
    expect(authBad).toMatchObject({ kind: 'auth', user: 'sales', success: false, method: 'PLAIN' });
    expect(authOk).toMatchObject({ kind: 'auth', user: 'sales', success: true, method: 'PLAIN' });
    expect(mail).toMatchObject({ kind: 'mail', from: 'sales@example.org' });
    expect(rcpt1).toMatchObject({ kind: 'rcpt', to: 'alice@example.com', local: true });
    expect(unknown).toMatchObject({
      kind: 'rejected', stage: 'rcpt', rule: 'recipient.unknown', code: 550,
      text: '5.1.1 <nobody@example.com>: no such recipient here. Check the address.', enforced: true,
    });
    expect(rcpt2).toMatchObject({ kind: 'rcpt', to: 'user@remote.example', local: false });
    expect(accepted).toMatchObject({ kind: 'accepted', queueId, from: 'sales@example.org', to: ['alice@example.com', 'user@remote.example'] });
    expect(disconnect).toMatchObject({ kind: 'disconnect', messages: 1 });

    // the accepted size is the stored message (Received header included), and the envelope is stored beside it
    const stored = await readQueuedMessage(path.join(t.dir, 'spool', 'queue'), queueId!);
    const json = stored!.json;
    expect((accepted as { size: number }).size).toBe(stored!.data.length);
    const raw = stored!.data.toString('utf8');
    expect(raw.endsWith(body)).toBe(true);
    // authenticated: no DNS checks, so no PTR name; ESMTPA (RFC 3848) as it was AUTH without TLS
    expect(raw).toMatch(/^Received: from client\.test \(unknown \[127\.0\.0\.5\]\)\r\n\tby \S+ \(Relay Warden\) with ESMTPA id \S+;\r\n\tFri, 27 Nov 2026 12:00:00 \+0000\r\n/);
    expect(JSON.parse(json).envelope).toMatchObject({
      from: 'sales@example.org', to: ['alice@example.com', 'user@remote.example'], clientIp: '127.0.0.5',
      clientHostname: null, helo: 'client.test', authUser: 'sales', sessionId: sid,
    });
  });

  it('a rejected event carries stage, rule, code, text and enforced; a throwing subscriber never breaks the SMTP path', async () => {
    t = await startTestRelay({ limits: { messagesPerHour: { max: 1, mode: 'monitor' } } });
    t.relay.bus.subscribe(() => {
      throw new Error('a broken console');
    });
    const c = await RawSmtp.connect(t.port, { localAddress: '127.0.0.6' });
    clients.push(c);
    await c.hello();
    for (let i = 0; i < 2; i++) {
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
      expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    }
    expect(t.rejections()).toEqual([
      expect.objectContaining({
        kind: 'rejected', ip: '127.0.0.6', stage: 'mail', rule: 'limits.messagesPerHour', code: 450, enforced: false,
        text: '4.7.1 Too much mail from 127.0.0.6: 1 message in the last hour (limit 1). Try again later.',
      }),
    ]);
    expect(t.events.filter((e) => e.kind === 'accepted')).toHaveLength(2);
  });

  it('session ids: unique per connection, 16 base-32 characters, the same in events and the Received header; its date follows the clock', async () => {
    t = await startTestRelay();
    const ids: string[] = [];
    const dates: string[] = [];
    for (const [i, advanceMs] of [0, 400, 700, 61_000].entries()) {
      t.clock.advance(advanceMs);
      const c = await RawSmtp.connect(t.port, { localAddress: `127.0.0.${20 + i}` });
      clients.push(c);
      await c.hello('client.test');
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
      const done = await c.data('Subject: x\r\n\r\nx\r\n');
      expect(done.code).toBe(250);
      await c.quit();
      const queueId = /queued as (\S+)$/.exec(done.text)![1]!;
      const raw = (await readQueuedMessage(path.join(t.dir, 'spool', 'queue'), queueId))!.data.toString('utf8');
      const m = /with ESMTP id (\S+)(?:\r\n\tfor <alice@example\.com>);\r\n\t([^\r]+)\r\n/.exec(raw)!;
      const accepted = t.events.find((e) => e.kind === 'accepted' && (e as { queueId: string }).queueId === queueId)!;
      expect(m[1]).toBe(accepted.sessionId);
      ids.push(m[1]!);
      dates.push(m[2]!);
    }
    for (const id of ids) expect(id).toMatch(/^[0-9a-v]{16}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // 12:00:00.000, 12:00:00.400, 12:00:01.100, 12:01:02.100: the date is the clock's second each time
    expect(dates).toEqual([
      'Fri, 27 Nov 2026 12:00:00 +0000',
      'Fri, 27 Nov 2026 12:00:00 +0000',
      'Fri, 27 Nov 2026 12:00:01 +0000',
      'Fri, 27 Nov 2026 12:01:02 +0000',
    ]);
  });
});
