/**
 * The stories the management channel exists for, end to end over real SMTP and real wss:
 * - the salesperson: rejected for sending too much, seen live by the admin, trusted in one click, and the NEXT
 *   MAIL FROM in the same SMTP session passes; the audit log records who did it;
 * - policy.simulate on recorded traffic predicts exactly what enforcing a lower limit then really rejects.
 */
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { RawSmtp, sendMail } from './helpers/smtp-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

const startRelay = manageRelayPerTest();

describe('the salesperson story', () => {
  it('127.0.0.5 gets 450 4.7.1, the console sees it, clients.trust, the next MAIL FROM in the same session passes, audited', async () => {
    const t = await startRelay({ limits: { messagesPerHour: { max: 3 } } });
    const admin = await t.admin();
    const sub = await admin.call('events.subscribe', { filter: { rejectionsOnly: true } });

    const smtp = await RawSmtp.connect(t.port, { localAddress: '127.0.0.5' });
    await smtp.hello('laptop.sales.test');
    for (let i = 0; i < 3; i++) {
      expect((await smtp.cmd('MAIL FROM:<sales@example.org>')).code).toBe(250);
      expect((await smtp.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
      expect((await smtp.data(`Subject: offer ${i}\r\n\r\nBuy now.\r\n`)).code).toBe(250);
    }
    const refused = await smtp.cmd('MAIL FROM:<sales@example.org>');
    expect(refused.code).toBe(450);
    expect(refused.text).toMatch(/^4\.7\.1 Too much mail from 127\.0\.0\.5: 3 messages in the last hour \(limit 3\)/);

    // the console sees the rejection on its live stream
    await admin.waitFor(() => admin.events(sub.subscriptionId).length > 0, 3000, 'the rejected event');
    const ev = admin.events(sub.subscriptionId)[0] as Extract<RelayEvent, { kind: 'rejected' }>;
    expect(ev).toMatchObject({ kind: 'rejected', ip: '127.0.0.5', rule: 'limits.messagesPerHour', code: 450, stage: 'mail', enforced: true });

    // one click
    const trusted = await admin.call('clients.trust', { ip: ev.ip!, comment: 'sales laptop, mailing customers', expiresAt: '2026-11-28T12:00:00Z' });
    expect(trusted).toMatchObject({ group: 'Trusted', alreadyTrusted: false, entry: { address: '127.0.0.5', addedBy: 'admin', expiresAt: '2026-11-28T12:00:00Z' } });

    // the very next command of the same session meets the new policy
    expect((await smtp.cmd('MAIL FROM:<sales@example.org>')).code).toBe(250);
    expect((await smtp.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await smtp.data('Subject: offer 4\r\n\r\nBuy now.\r\n')).code).toBe(250);
    await smtp.quit();

    // the trusted event is in the stream of everything
    const all = await admin.call('events.query', { kinds: ['trusted'], limit: 10 });
    expect(all.events[0]).toMatchObject({ kind: 'trusted', address: '127.0.0.5', group: 'Trusted', by: 'admin' });

    // audit: who, from where, when, what, and the config diff
    const line = t.auditLines().find((l) => l.method === 'clients.trust')!;
    expect(line).toMatchObject({
      by: 'admin',
      role: 'admin',
      remoteIp: '127.0.0.1',
      ok: true,
      params: { ip: '127.0.0.5', comment: 'sales laptop, mailing customers' },
      revision: trusted.revision,
      changes: [{ path: 'groups.Trusted[127.0.0.5]', op: 'add', after: expect.objectContaining({ address: '127.0.0.5' }) }],
    });
    expect(typeof line.time).toBe('string');

    // and the relay itself remembers it: config.json has the entry, the history has the revision
    expect(t.relay.config.current.groups['Trusted']).toEqual([expect.objectContaining({ address: '127.0.0.5', comment: 'sales laptop, mailing customers' })]);
    const h = await admin.call('config.history', { limit: 1 });
    expect(h.revisions[0]).toMatchObject({ source: 'clients.trust', by: 'admin' });
  });

  it('trust also clears a block, effective for the next connection', async () => {
    const t = await startRelay({ limits: { unknownRecipients: { max: 2 } } });
    const admin = await t.admin();
    const r = await sendMail(t.port, { from: 'a@example.org', to: ['x1@example.com', 'x2@example.com'], localAddress: '127.0.0.8' });
    expect(r.rcpts.map((x) => x.code)).toEqual([550, 421]);
    const blocked = await RawSmtp.connect(t.port, { localAddress: '127.0.0.8' });
    expect((await blocked.read())?.code).toBe(421);
    await blocked.quit();
    const trusted = await admin.call('clients.trust', { ip: '127.0.0.8' });
    expect(trusted.unblocked).toBe(true);
    expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.8' })).data?.code).toBe(250);
  });
});

describe('policy.simulate', () => {
  /** The same load each time: three clients, one of them retrying MAIL FROM after a refusal in one session. */
  async function load(port: number): Promise<void> {
    for (let i = 0; i < 8; i++) await sendMail(port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    for (let i = 0; i < 3; i++) await sendMail(port, { from: 'b@example.org', to: ['bob@example.com'], localAddress: '127.0.0.6' });
    const c = await RawSmtp.connect(port, { localAddress: '127.0.0.7' });
    await c.hello();
    for (let i = 0; i < 6; i++) {
      const m = await c.cmd('MAIL FROM:<c@example.org>');
      if (m.code !== 250) continue;
      await c.cmd('RCPT TO:<alice@example.com>');
      await c.cmd('RCPT TO:<bob@example.com>');
      await c.data(`Subject: ${i}\r\n\r\nx\r\n`);
    }
    await c.quit();
  }

  const refusedBy = (events: RelayEvent[], sinceId: number) => {
    const out: Record<string, number> = {};
    for (const e of events) {
      if (e.id > sinceId && e.kind === 'rejected' && e.enforced && e.rule === 'limits.messagesPerHour') out[e.ip!] = (out[e.ip!] ?? 0) + 1;
    }
    return out;
  };

  it('predicts per IP what a lower messagesPerHour then really rejects for the same load, and the way back', async () => {
    const t = await startRelay({ limits: { messagesPerHour: { max: 100 } } });
    const admin = await t.admin();
    await load(t.port);
    await waitFor(() => t.events.filter((e) => e.kind === 'disconnect').length === 12, '12 disconnects');
    expect(refusedBy(t.events, 0)).toEqual({});

    const g = await admin.call('config.get', {});
    const lower = structuredClone(g.config);
    lower.limits.messagesPerHour.max = 4;
    const sim = await admin.call('policy.simulate', { config: lower, hours: 1 });
    const rule = sim.rules.find((r) => r.rule === 'limits.messagesPerHour')!;
    expect(rule).toMatchObject({ unit: 'message', before: 0, newlyPassed: 0 });
    const predicted = Object.fromEntries(rule.ips.map((x) => [x.ip, x.newlyRejected]));
    expect(predicted).toEqual({ '127.0.0.5': 4, '127.0.0.7': 2 });
    expect(rule.newlyRejected).toBe(6);
    expect(sim.newlyRejectedIps).toEqual(['127.0.0.5', '127.0.0.7']);
    expect(sim.replayed).toMatchObject({ connections: 12, mailAttempts: 17, messages: 17 });

    // enforce it, let the hour pass, and replay the same load for real
    await admin.call('config.update', { baseRevision: g.revision, config: lower });
    t.clock.advance(61 * 60_000);
    const mark = t.relay.bus.lastId;
    await load(t.port);
    await waitFor(() => t.events.filter((e) => e.kind === 'disconnect').length === 24, '24 disconnects');
    expect(refusedBy(t.events, mark)).toEqual(predicted);

    // and back: simulating the old limit over the last hour says exactly those would pass again
    const back = await admin.call('policy.simulate', { config: g.config, hours: 1 });
    const backRule = back.rules.find((r) => r.rule === 'limits.messagesPerHour')!;
    expect(backRule).toMatchObject({ before: 6, after: 0, newlyPassed: 6, newlyRejected: 0 });
    expect(Object.fromEntries(backRule.ips.map((x) => [x.ip, x.newlyPassed]))).toEqual(predicted);
  });

  it('an exempt group in the candidate makes the rejected IP pass; monitor mode reports instead of rejecting', async () => {
    const t = await startRelay({ limits: { messagesPerHour: { max: 2 } } });
    const admin = await t.admin();
    for (let i = 0; i < 4; i++) await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    const g = await admin.call('config.get', {});
    const trusting = structuredClone(g.config);
    trusting.groups['Trusted'] = [{ address: '127.0.0.5' }];
    const s1 = await admin.call('policy.simulate', { config: trusting, hours: 1 });
    expect(s1.rules.find((r) => r.rule === 'limits.messagesPerHour')).toMatchObject({ before: 2, after: 0, newlyPassed: 2 });
    expect(s1.newlyPassedIps).toEqual(['127.0.0.5']);
    const monitoring = structuredClone(g.config);
    monitoring.limits.messagesPerHour.mode = 'monitor';
    const s2 = await admin.call('policy.simulate', { config: monitoring, hours: 1 });
    expect(s2.rules.find((r) => r.rule === 'limits.messagesPerHour')).toMatchObject({ before: 2, after: 0, newlyPassed: 2, monitored: 2 });
    // a stricter concurrent-connection limit cannot refuse sequential sessions
    const conns = structuredClone(g.config);
    conns.limits.concurrentConnections.max = 1;
    const s3 = await admin.call('policy.simulate', { config: conns, hours: 1 });
    expect(s3.rules.find((r) => r.rule === 'limits.concurrentConnections')).toBeUndefined();
  });
});
