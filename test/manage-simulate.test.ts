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
