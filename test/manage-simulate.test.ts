/**
 * policy.simulate beyond the hourly limit, on traffic recorded by a real relay: concurrent connections, the
 * unknown-recipient limit and the block it sets, recipients per message, a DNS check moved from monitor to enforce.
 * Where the load can be replayed for real, the prediction is checked against enforcement.
 */
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import type { Result } from '../shared/protocol.ts';
import { RawSmtp, sendMail } from './helpers/smtp-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';
import { simulate } from '../relay/manage/simulate.ts';

const startRelay = manageRelayPerTest();

const ruleOf = (r: Result<'policy.simulate'>, rule: string) => r.rules.find((x) => x.rule === rule);
const enforcedSince = (events: RelayEvent[], sinceId: number, rule: string) =>
  events.filter((e) => e.id > sinceId && e.kind === 'rejected' && e.enforced && e.rule === rule).length;

describe('policy.simulate on recorded traffic', () => {
  it('`until` ends the window where an earlier answer did, so two replays read the same traffic; later than now is now', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    const send = () => sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.14' });
    await send();
    const g = await admin.call('config.get', {});
    const first = await admin.call('policy.simulate', { config: g.config, hours: 1 });
    expect(first.replayed.messages).toBe(1);
    t.clock.advance(5_000);
    await send();
    const same = await admin.call('policy.simulate', { config: g.config, hours: 1, until: first.to });
    expect(same.to).toBe(first.to);
    expect(same.replayed).toEqual(first.replayed);
    const later = await admin.call('policy.simulate', { config: g.config, hours: 1 });
    expect(later.replayed.messages).toBe(2);
    const future = await admin.call('policy.simulate', { config: g.config, hours: 1, until: first.to + 86_400_000 });
    expect(future.to).toBe(t.clock.now());
    expect((await admin.callError('policy.simulate', { config: g.config, hours: 1, until: 'now' })).message).toBe(
      'invalid params for policy.simulate: until: must be a number; it is "now"',
    );
  });

  it('concurrent connections: overlapping sessions are replayed with their real overlap', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    const load = async () => {
      const open: RawSmtp[] = [];
      for (let i = 0; i < 4; i++) {
        const c = await RawSmtp.connect(t.port, { localAddress: '127.0.0.12' });
        await c.read();
        open.push(c);
      }
      for (const c of open) await c.quit();
      await waitFor(() => t.relay.anvil.connections('127.0.0.12') === 0, 'the sessions from 127.0.0.12 to close');
    };
    await load();
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.concurrentConnections.max = 2;
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'limits.concurrentConnections')).toMatchObject({ unit: 'connection', before: 0, newlyRejected: 2, ips: [{ ip: '127.0.0.12', newlyRejected: 2 }] });

    await admin.call('config.update', { baseRevision: g.revision, config: c });
    const mark = t.relay.bus.lastId;
    await load();
    expect(enforcedSince(t.events, mark, 'limits.concurrentConnections')).toBe(2);
  });

  it('unknown recipients: the limit closes the session and its block refuses the next connection', async () => {
    const t = await startRelay({ limits: { unknownRecipients: { max: 10 } } });
    const admin = await t.admin();
    const load = async () => {
      // once the limit closes a session, the client helper throws: that is the point
      await sendMail(t.port, { from: 'a@example.org', to: ['n1@example.com', 'n2@example.com', 'n3@example.com', 'alice@example.com'], localAddress: '127.0.0.13' }).catch(() => null);
      await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.13' }).catch(() => null);
      await waitFor(() => t.relay.anvil.connections('127.0.0.13') === 0, 'the sessions from 127.0.0.13 to close');
    };
    await load();
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.unknownRecipients.max = 2;
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    // the 2nd unknown recipient reaches the limit (one refusal at RCPT); the block then refuses the 2nd connection
    expect(ruleOf(sim, 'limits.unknownRecipients')).toMatchObject({ before: 0, newlyRejected: 2 });
    expect(sim.newlyRejectedIps).toEqual(['127.0.0.13']);

    await admin.call('config.update', { baseRevision: g.revision, config: c });
    t.clock.advance(2 * 60 * 60_000);
    const mark = t.relay.bus.lastId;
    await load();
    expect(enforcedSince(t.events, mark, 'limits.unknownRecipients')).toBe(2);
  });

  it('recipients per message: the recipients over a lower maxRecipients are refused, earlier ones stand', async () => {
    const t = await startRelay({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } } });
    const admin = await t.admin();
    // a repeated address is one recipient (smtp-server keeps one entry per address), as the replay knows
    const to = ['r1@example.com', 'r2@example.com', 'R1@example.com', 'r3@example.com', 'r4@example.com', 'r5@example.com'];
    await sendMail(t.port, { from: 'a@example.org', to, localAddress: '127.0.0.14' });
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.checks.maxRecipients.max = 3;
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'checks.maxRecipients')).toMatchObject({ unit: 'recipient', newlyRejected: 2 });
    await admin.call('config.update', { baseRevision: g.revision, config: c });
    const r = await sendMail(t.port, { from: 'a@example.org', to, localAddress: '127.0.0.14' });
    expect(r.rcpts.map((x) => x.code)).toEqual([250, 250, 250, 250, 452, 452]);
  });

  it('a DNS check in monitor mode: its reports are the facts that enforcing would refuse', async () => {
    // 127.0.0.50 has no PTR record in the test DNS
    const t = await startRelay({ checks: { reverseDns: { mode: 'monitor' } } });
    const admin = await t.admin();
    for (let i = 0; i < 3; i++) expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.50' })).data?.code).toBe(250);
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.15' });
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.checks.reverseDns.mode = 'enforce';
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'checks.reverseDns')).toMatchObject({ before: 0, after: 3, newlyRejected: 3, ips: [{ ip: '127.0.0.50', newlyRejected: 3 }] });
    expect(sim.newlyRejectedIps).toEqual(['127.0.0.50']);
    // and the same rule turned off: nothing is refused, nothing is reported
    c.checks.reverseDns.mode = 'off';
    const off = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(off, 'checks.reverseDns')).toBeUndefined();
  });

  it('only the window counts: traffic older than `hours` primes the counters but is not reported', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    for (let i = 0; i < 3; i++) await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.16' });
    t.clock.advance(40 * 60_000);
    for (let i = 0; i < 2; i++) await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.16' });
    t.clock.advance(30 * 60_000);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.messagesPerHour.max = 3;
    // the window is the last 0.5 h (after the first three); within the rolling hour they still count, so both later ones are refused
    const sim = await admin.call('policy.simulate', { config: c, hours: 0.5 + 1 / 60 });
    expect(sim.replayed.mailAttempts).toBe(2);
    expect(ruleOf(sim, 'limits.messagesPerHour')).toMatchObject({ newlyRejected: 2 });
  });
});

/** The kinds simulate replays: what its event cap must count (helo, delivery and admin events are never replayed). */
const REPLAYED_KINDS = ['connect', 'disconnect', 'auth', 'mail', 'rcpt', 'accepted', 'rejected'] as const;

describe('policy.simulate: the event cap counts only the events it replays', () => {
  it('helo events (and delivery events) do not use up the cap: a window that fits is replayed whole, a cut skips exactly the oldest', async () => {
    const t = await startRelay();
    for (let i = 0; i < 4; i++) {
      await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.17' });
      t.clock.advance(1000);
    }
    await waitFor(() => t.relay.anvil.connections('127.0.0.17') === 0, 'the sessions from 127.0.0.17 to close');
    const now = t.clock.now();
    const replayable = t.relay.history.query({ kinds: REPLAYED_KINDS, limit: 10_000 }).events.length;
    const helos = t.relay.history.query({ kinds: ['helo'], limit: 10_000 }).events.length;
    expect(helos).toBe(4);
    const c = (await (await t.admin()).call('config.get', {})).config;

    const whole = await simulate(t.relay.history, c, 1, now, { maxEvents: replayable });
    expect(whole.truncated).toBe(false);
    expect(whole.replayed).toMatchObject({ events: replayable, connections: 4, messages: 4 });

    // one session fewer than the window holds: exactly the oldest session is skipped
    const perSession = replayable / 4;
    const cut = await simulate(t.relay.history, c, 1, now, { maxEvents: replayable - perSession });
    expect(cut.truncated).toBe(true);
    expect(cut.replayed).toMatchObject({ events: replayable - perSession, connections: 3, messages: 3 });
  });
});

describe('policy.simulate: relay access and recipient classification under the candidate', () => {
  it('relay access: a client dropped from relay.allowGroups is refused the remote recipients it relayed to', async () => {
    const t = await startRelay({ groups: { Trusted: [{ address: '127.0.0.20' }] } });
    const admin = await t.admin();
    const load = () => sendMail(t.port, { from: 'a@example.org', to: ['bob@remote.example', 'alice@example.com'], localAddress: '127.0.0.20' });
    expect((await load()).rcpts.map((r) => r.code)).toEqual([250, 250]);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.groups.Trusted = [];
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'relay.access')).toMatchObject({ unit: 'recipient', before: 0, after: 1, newlyRejected: 1, ips: [{ ip: '127.0.0.20', newlyRejected: 1 }] });
    expect(sim.newlyRejectedIps).toEqual(['127.0.0.20']);

    await admin.call('config.update', { baseRevision: g.revision, config: c });
    expect((await load()).rcpts.map((r) => r.code)).toEqual([554, 250]);
  });

  it('relay access: a refused client added to relay.allowGroups would pass (the refusal keeps the recipient)', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    const load = () => sendMail(t.port, { from: 'a@example.org', to: ['bob@remote.example', 'alice@example.com'], localAddress: '127.0.0.21' });
    expect((await load()).rcpts.map((r) => r.code)).toEqual([554, 250]);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.groups.Trusted = [{ address: '127.0.0.21' }];
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'relay.access')).toMatchObject({ before: 1, after: 0, newlyPassed: 1, ips: [{ ip: '127.0.0.21', newlyPassed: 1 }] });
    expect(sim.newlyPassedIps).toEqual(['127.0.0.21']);
    // and a remote domain the candidate makes local, with a recipient list that lacks bob: refused as unknown instead
    const local = structuredClone(g.config);
    local.domains['remote.example'] = { deliverTo: '127.0.0.1:9', recipients: ['carol'] };
    const sim2 = await admin.call('policy.simulate', { config: local, hours: 1 });
    expect(ruleOf(sim2, 'relay.access')).toMatchObject({ before: 1, after: 0 });
    expect(ruleOf(sim2, 'recipient.unknown')).toMatchObject({ before: 0, after: 1 });

    await admin.call('config.update', { baseRevision: g.revision, config: c });
    expect((await load()).rcpts.map((r) => r.code)).toEqual([250, 250]);
  });

  it('unknown recipients: a recipient dropped from a local domain is refused, and counts toward the unknown-recipient limit', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    const load = () => sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com', 'bob@example.com'], localAddress: '127.0.0.22' });
    expect((await load()).rcpts.map((r) => r.code)).toEqual([250, 250]);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.domains['example.com']!.recipients = ['bob@example.com'];
    c.limits.unknownRecipients.max = 1;
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    // the first unknown recipient reaches max 1: it gets the limit's 421 (not a 550 as well: one reply, one refusal),
    // and the limit closes the session, so bob is never asked for
    expect(ruleOf(sim, 'limits.unknownRecipients')).toMatchObject({ before: 0, after: 1, newlyRejected: 1 });
    expect(ruleOf(sim, 'recipient.unknown')?.after ?? 0).toBe(0);
    expect(sim.replayed.recipients).toBe(1);

    await admin.call('config.update', { baseRevision: g.revision, config: c });
    const mark = t.relay.bus.lastId;
    await load().catch(() => null);
    await waitFor(() => t.relay.anvil.connections('127.0.0.22') === 0, 'the session from 127.0.0.22 to close');
    // as the simulation said: the limit's 421 alone
    expect(enforcedSince(t.events, mark, 'recipient.unknown')).toBe(0);
    expect(enforcedSince(t.events, mark, 'limits.unknownRecipients')).toBe(1);
  });

  it('unknown recipients: a refused address the candidate adds to the domain would pass', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    const load = () => sendMail(t.port, { from: 'a@example.org', to: ['Carol@example.com', 'alice@example.com'], localAddress: '127.0.0.23' });
    expect((await load()).rcpts.map((r) => r.code)).toEqual([550, 250]);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.domains['example.com']!.recipients = ['alice', 'carol'];
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'recipient.unknown')).toMatchObject({ before: 1, after: 0, newlyPassed: 1, ips: [{ ip: '127.0.0.23', newlyPassed: 1 }] });

    await admin.call('config.update', { baseRevision: g.revision, config: c });
    expect((await load()).rcpts.map((r) => r.code)).toEqual([250, 250]);
  });
});

describe('policy.simulate: the SIZE a client declares at MAIL FROM', () => {
  const declare = async (port: number, size: number, localAddress: string) => {
    const c = await RawSmtp.connect(port, { localAddress });
    try {
      await c.hello();
      const mail = await c.cmd(`MAIL FROM:<a@example.org> SIZE=${size}`);
      if (mail.code !== 250) return mail.code;
      await c.cmd('RCPT TO:<alice@example.com>');
      return (await c.data('Subject: small\r\n\r\nhello\r\n')).code;
    } finally {
      await c.quit();
    }
  };

  it('a lower maxMessageSize refuses at MAIL FROM a declared SIZE over it, even when the message sent was small', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    expect(await declare(t.port, 5000, '127.0.0.24')).toBe(250);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.checks.maxMessageSize.maxBytes = 4000;
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'checks.maxMessageSize')).toMatchObject({ unit: 'message', before: 0, after: 1, newlyRejected: 1, ips: [{ ip: '127.0.0.24', newlyRejected: 1 }] });

    await admin.call('config.update', { baseRevision: g.revision, config: c });
    expect(await declare(t.port, 5000, '127.0.0.24')).toBe(552);
  });

  it('a declared SIZE refused at MAIL FROM would pass under a higher maxMessageSize', async () => {
    const t = await startRelay({ checks: { maxMessageSize: { maxBytes: 4000 } } });
    const admin = await t.admin();
    expect(await declare(t.port, 5000, '127.0.0.25')).toBe(552);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.checks.maxMessageSize.maxBytes = 6000;
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'checks.maxMessageSize')).toMatchObject({ before: 1, after: 0, newlyPassed: 1 });
    c.checks.maxMessageSize.maxBytes = 4500;
    const still = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(still, 'checks.maxMessageSize')).toMatchObject({ before: 1, after: 1, newlyPassed: 0 });
  });
});

describe('policy.simulate says which rules it could not replay', () => {
  it('checks.maxFailedCommands: a recorded closure stands and the result says why, even when the candidate raises the limit', async () => {
    const t = await startRelay({ checks: { maxFailedCommands: { max: 2 } } });
    const admin = await t.admin();
    // smtp-server's own 500s: no event records them, only the closure they lead to
    const c1 = await RawSmtp.connect(t.port, { localAddress: '127.0.0.26' });
    await c1.hello();
    expect((await c1.cmd('BOGUS')).code).toBe(500);
    expect((await c1.cmd('BOGUS')).code).toBe(421);
    await c1.quit();
    await waitFor(() => t.relay.anvil.connections('127.0.0.26') === 0, 'the session from 127.0.0.26 to close');
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.checks.maxFailedCommands.max = 10;
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    expect(ruleOf(sim, 'checks.maxFailedCommands')).toMatchObject({ before: 1, after: 1, newlyPassed: 0 });
    const entry = sim.notReplayed.find((n) => n.rule === 'checks.maxFailedCommands');
    expect(entry).toMatchObject({ decisions: 1 });
    expect(entry?.why).toMatch(/no event/);
    expect(sim.caveats.some((x) => x.startsWith('Not replayed: checks.maxFailedCommands'))).toBe(true);
    // the rules no event can replay are always listed; the old-event ones only when such events were met
    expect(sim.notReplayed.map((n) => n.rule)).toEqual(['checks.maxFailedCommands', 'smtp.maxConnections', 'smtp.greetingDelayMs', 'storage']);
  });

  it('events recorded before the refused recipient and the declared SIZE were kept: their outcome stands, and the result counts them', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    const at = t.clock.now() - 60_000;
    const id = t.relay.bus.lastId + 1000;
    const sess = { sessionId: 'old-1', ip: '127.0.0.27' };
    // a session as an older relay recorded it: no declaredSize on mail, no `to` on the rcpt refusals
    t.relay.history.load([
      { id, at, kind: 'connect', ...sess },
      { id: id + 1, at, kind: 'mail', from: 'a@example.org', ...sess },
      { id: id + 2, at, kind: 'rejected', stage: 'rcpt', rule: 'relay.access', code: 554, text: '5.7.1 Relay access denied: remote.example is not a local domain, and 127.0.0.27 has not authenticated and is not in an allowed group.', enforced: true, ...sess },
      { id: id + 3, at, kind: 'rejected', stage: 'rcpt', rule: 'recipient.unknown', code: 550, text: '5.1.1 <carol@example.com>: no such recipient here. Check the address.', enforced: true, ...sess },
      { id: id + 4, at, kind: 'disconnect', messages: 0, ...sess },
    ]);
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.groups.Trusted = [{ address: '127.0.0.27' }];
    c.domains['example.com']!.recipients = ['alice', 'carol'];
    const sim = await admin.call('policy.simulate', { config: c, hours: 1 });
    // no guess: without the address, neither refusal is turned into a pass
    expect(ruleOf(sim, 'relay.access')).toMatchObject({ before: 1, after: 1, newlyPassed: 0 });
    expect(ruleOf(sim, 'recipient.unknown')).toMatchObject({ before: 1, after: 1, newlyPassed: 0 });
    expect(sim.notReplayed.filter((n) => ['relay.access', 'recipient.unknown', 'checks.maxMessageSize'].includes(n.rule))).toEqual([
      { rule: 'relay.access', decisions: 1, why: expect.stringMatching(/refused address/) },
      { rule: 'recipient.unknown', decisions: 1, why: expect.stringMatching(/refused address/) },
      { rule: 'checks.maxMessageSize', decisions: 1, why: expect.stringMatching(/declared SIZE/) },
    ]);
  });
});
