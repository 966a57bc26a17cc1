/**
 * A block (set when a client reaches limits.unknownRecipients or limits.authFailures) refuses the client's new
 * connections, and also its sessions that were already open when the block began, at their next AUTH, MAIL FROM or
 * RCPT TO: before, those went on until they ended, so a client with several connections open kept guessing passwords
 * (a right one got 235 during the block) or recipients. policy.simulate replays these refusals too.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import type { Result } from '../shared/protocol.ts';
import { hashPassword } from '../relay/auth/passwords.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { manageRelayPerTest, type WssClient } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});
const startManaged = manageRelayPerTest();

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const plain = (user: string, pass: string) => b64(`\0${user}\0${pass}`);
let hash = '';
beforeAll(async () => {
  hash = await hashPassword('correct horse');
});

const blockRefusals = (events: RelayEvent[]) =>
  events.filter((e): e is Extract<RelayEvent, { kind: 'rejected' }> => e.kind === 'rejected' && e.blocked === true);

describe('a block reaches the sessions already open', () => {
  it('unknown recipients: the other open sessions are refused at their next RCPT TO or MAIL FROM and closed; a message whose recipients passed before the block is still taken', async () => {
    t = await startTestRelay({ limits: { unknownRecipients: { max: 3, blockMinutes: 5 } } });
    const blockedText = '4.7.0 127.0.0.20 is blocked until 2026-11-27T12:05:00Z: too many unknown recipients. Try again later.';
    const inRcpt = await open(t.port, '127.0.0.20');
    const idle = await open(t.port, '127.0.0.20');
    const withMessage = await open(t.port, '127.0.0.20');
    const other = await open(t.port, '127.0.0.21');
    for (const c of [inRcpt, idle, withMessage, other]) await c.hello();
    for (const c of [inRcpt, withMessage, other]) {
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    }

    const prober = await open(t.port, '127.0.0.20');
    await prober.hello();
    expect((await prober.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    for (const n of [1, 2]) expect((await prober.cmd(`RCPT TO:<nobody${n}@example.com>`)).code).toBe(550);
    expect((await prober.cmd('RCPT TO:<nobody3@example.com>')).code).toBe(421);
    await waitFor(() => prober.closed, 'the session that reached the limit to close');

    // a known recipient in another open session: refused by the block, not a 250 (nor a 550 telling it apart)
    expect(await inRcpt.cmd('RCPT TO:<bob@example.com>')).toMatchObject({ code: 421, text: blockedText });
    await waitFor(() => inRcpt.closed, 'the session refused at RCPT to close');
    expect(await idle.cmd('MAIL FROM:<a@example.org>')).toMatchObject({ code: 421, text: blockedText });
    await waitFor(() => idle.closed, 'the session refused at MAIL to close');
    // its recipients were accepted before the block: DATA goes on
    expect((await withMessage.data('Subject: before the block\r\n\r\nhi\r\n')).code).toBe(250);
    expect(await withMessage.cmd('MAIL FROM:<a@example.org>')).toMatchObject({ code: 421, text: blockedText });
    // another client is not touched
    expect((await other.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
    expect((await other.data('Subject: s\r\n\r\nhi\r\n')).code).toBe(250);

    expect(blockRefusals(t.events).map((e) => [e.stage, e.rule, e.code, e.enforced, e.to ?? null])).toEqual([
      ['rcpt', 'limits.unknownRecipients', 421, true, 'bob@example.com'],
      ['mail', 'limits.unknownRecipients', 421, true, null],
      ['mail', 'limits.unknownRecipients', 421, true, null],
    ]);
    // the limit's own refusal is not a block refusal
    expect(t.rejections('limits.unknownRecipients').filter((e) => !e.blocked)).toHaveLength(1);
  });

  it('failed logins: another open session of the client cannot log in during the block, even with the right password', async () => {
    t = await startTestRelay({
      users: { sales: { passwordHash: hash } },
      limits: { authFailures: { max: 2, windowMinutes: 10, blockMinutes: 15 } },
    });
    const guesser = await open(t.port);
    const parallel = await open(t.port);
    await guesser.hello();
    await parallel.hello();
    expect((await guesser.cmd(`AUTH PLAIN ${plain('sales', 'bad1')}`)).code).toBe(535);
    expect((await guesser.cmd(`AUTH PLAIN ${plain('sales', 'bad2')}`)).code).toBe(421);
    expect(await parallel.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).toMatchObject({
      code: 421,
      text: '4.7.0 127.0.0.5 is blocked until 2026-11-27T12:15:00Z: too many failed logins. Try again later.',
    });
    await waitFor(() => parallel.closed, 'the parallel session to close');
    // no login was made, and no auth event says one was tried: the password was never checked
    expect(t.events.filter((e) => e.kind === 'auth' && e.success)).toHaveLength(0);
    expect(blockRefusals(t.events).map((e) => [e.stage, e.rule, e.enforced])).toEqual([['auth', 'limits.authFailures', true]]);
  });

  it('an exempt client is never refused by a block; a block under monitor mode is reported and the session goes on', async () => {
    t = await startTestRelay({ limits: { unknownRecipients: { max: 2, blockMinutes: 5 } } });
    const a = await open(t.port, '127.0.0.20');
    await a.hello();
    const prober = await open(t.port, '127.0.0.20');
    await prober.hello();
    await prober.cmd('MAIL FROM:<a@example.org>');
    await prober.cmd('RCPT TO:<nobody1@example.com>');
    expect((await prober.cmd('RCPT TO:<nobody2@example.com>')).code).toBe(421);
    // the limit switched to monitor while the block stands: reported, not refused
    t.relay.config.modify((d) => {
      d.limits.unknownRecipients.mode = 'monitor';
    }, { by: 'test', source: 'test' });
    expect((await a.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect(blockRefusals(t.events).map((e) => [e.stage, e.enforced])).toEqual([['mail', false]]);
    // trusted now (an exempt group): not even reported
    t.relay.config.modify((d) => {
      d.groups['Trusted'] = [{ address: '127.0.0.20' }];
      d.limits.exemptGroups = ['Trusted'];
    }, { by: 'test', source: 'test' });
    expect((await a.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect(blockRefusals(t.events)).toHaveLength(1);
  });
});

describe('a lowered blockMinutes', () => {
  it('shortens the blocks under way (from when each began), says so; a raise lengthens none', async () => {
    const lines: string[] = [];
    t = await startTestRelay({ limits: { unknownRecipients: { max: 1, blockMinutes: 60 } } }, { relay: { log: (l) => lines.push(l) } });
    const prober = await open(t.port, '127.0.0.20');
    await prober.hello();
    await prober.cmd('MAIL FROM:<a@example.org>');
    expect((await prober.cmd('RCPT TO:<nobody@example.com>')).code).toBe(421);
    t.clock.advance(5 * 60_000);
    const modify = (minutes: number) => t!.relay.config.modify((d) => void (d.limits.unknownRecipients.blockMinutes = minutes), { by: 'test', source: 'test' });
    // 60 -> 120: no block under way grows; 120 -> 10: the block that began 5 minutes ago ends 5 minutes from now
    modify(120);
    expect(t.relay.anvil.blocked('127.0.0.20')?.until).toBe(Date.parse('2026-11-27T13:00:00Z'));
    modify(10);
    await new Promise((r) => setImmediate(r));
    expect(lines).toContain('limits.unknownRecipients.blockMinutes lowered to 10: 1 client block under way shortened to match');
    const blocked = await open(t.port, '127.0.0.20');
    expect(await blocked.read()).toMatchObject({ code: 421, text: '4.7.0 127.0.0.20 is blocked until 2026-11-27T12:10:00Z: too many unknown recipients. Try again later.' });
    t.clock.advance(5 * 60_000);
    const free = await open(t.port, '127.0.0.20');
    expect((await free.read())?.code).toBe(220);
    // a block that began more than the new length ago is over at once
    const other = await open(t.port, '127.0.0.21');
    await other.hello();
    await other.cmd('MAIL FROM:<a@example.org>');
    expect((await other.cmd('RCPT TO:<nobody@example.com>')).code).toBe(421);
    t.clock.advance(3 * 60_000);
    modify(2);
    expect((await (await open(t.port, '127.0.0.21')).read())?.code).toBe(220);
    expect(lines).toContain('limits.unknownRecipients.blockMinutes lowered to 2: 1 client block under way shortened to match (it is over at once)');
  });
});

describe('policy.simulate replays the block on open sessions', () => {
  const ruleOf = (r: Result<'policy.simulate'>, rule: string) => r.rules.find((x) => x.rule === rule);
  /** the last hour replayed with limits.unknownRecipients.max set to `max` (null: the config as it is) */
  const simulateWith = async (admin: WssClient, max: number | null) => {
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    if (max !== null) c.limits.unknownRecipients.max = max;
    return admin.call('policy.simulate', { config: c, hours: 1 });
  };
  /** 127.0.0.20 keeps a session open while another sends `unknown` unknown recipients and quits */
  const openAndProbe = async (port: number, unknown: number) => {
    const idle = await open(port, '127.0.0.20');
    await idle.hello();
    const prober = await open(port, '127.0.0.20');
    await prober.hello();
    await prober.cmd('MAIL FROM:<a@example.org>');
    for (let n = 1; n <= unknown; n++) await prober.cmd(`RCPT TO:<nobody${n}@example.com>`);
    return { idle, prober };
  };

  it('the same config changes nothing; a higher limit lets the open session through; a lower one refuses it', async () => {
    const m = await startManaged({ limits: { unknownRecipients: { max: 3, blockMinutes: 5 } } });
    const admin = await m.admin();
    // recorded: 127.0.0.20 keeps a session open, another reaches the limit, the first is refused at MAIL by the block
    const { idle, prober } = await openAndProbe(m.port, 3);
    await waitFor(() => prober.closed, 'the limit to close the prober');
    expect((await idle.cmd('MAIL FROM:<a@example.org>')).code).toBe(421);
    await waitFor(() => m.relay.anvil.connections('127.0.0.20') === 0, 'the sessions to close');

    const same = await simulateWith(admin, null);
    expect(ruleOf(same, 'limits.unknownRecipients')).toMatchObject({ before: 2, after: 2, newlyRejected: 0, newlyPassed: 0 });
    expect(same.newlyPassedIps).toEqual([]);
    expect(same.newlyRejectedIps).toEqual([]);

    const up = await simulateWith(admin, 10);
    // the limit's refusal and the block's refusal at MAIL both newly pass
    expect(ruleOf(up, 'limits.unknownRecipients')).toMatchObject({ before: 2, after: 0, newlyPassed: 2 });
    expect(up.newlyPassedIps).toEqual(['127.0.0.20']);
  });

  it('a candidate whose block would have begun earlier refuses the open session it reaches at its next command', async () => {
    const m = await startManaged({ limits: { unknownRecipients: { max: 10, blockMinutes: 5 } } });
    const admin = await m.admin();
    const { idle, prober } = await openAndProbe(m.port, 2);
    await prober.quit();
    expect((await idle.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await idle.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    await idle.quit();
    await waitFor(() => m.relay.anvil.connections('127.0.0.20') === 0, 'the sessions to close');

    const sim = await simulateWith(admin, 2);
    // the 2nd unknown recipient reaches the limit (421), then the block refuses the idle session's MAIL FROM
    expect(ruleOf(sim, 'limits.unknownRecipients')).toMatchObject({ before: 0, after: 2, newlyRejected: 2 });
    expect(sim.newlyRejectedIps).toEqual(['127.0.0.20']);
  });

  it('events of relays before one refusal per reply (a 550 and the 421 for the same recipient) are still one decision', async () => {
    const m = await startManaged({ limits: { unknownRecipients: { max: 2, blockMinutes: 5 } } });
    const admin = await m.admin();
    const ip = '192.0.2.7';
    m.relay.bus.emit({ kind: 'connect', sessionId: 'old1', ip, port: 1000 });
    m.relay.bus.emit({ kind: 'mail', sessionId: 'old1', ip, from: 'a@example.org', declaredSize: null });
    m.relay.bus.emit({ kind: 'rejected', sessionId: 'old1', ip, stage: 'rcpt', rule: 'recipient.unknown', code: 550, text: '5.1.1 no', enforced: true, to: 'n1@example.com' });
    m.relay.bus.emit({ kind: 'rejected', sessionId: 'old1', ip, stage: 'rcpt', rule: 'recipient.unknown', code: 550, text: '5.1.1 no', enforced: true, to: 'n2@example.com' });
    m.relay.bus.emit({ kind: 'rejected', sessionId: 'old1', ip, stage: 'rcpt', rule: 'limits.unknownRecipients', code: 421, text: '4.7.0 limit', enforced: true, to: 'n2@example.com' });
    m.relay.bus.emit({ kind: 'disconnect', sessionId: 'old1', ip, messages: 0 });
    const g = await admin.call('config.get', {});
    const sim = await admin.call('policy.simulate', { config: g.config, hours: 1 });
    expect(ruleOf(sim, 'limits.unknownRecipients')).toMatchObject({ before: 1, after: 1, newlyRejected: 0, newlyPassed: 0 });
    expect(ruleOf(sim, 'recipient.unknown')).toMatchObject({ before: 1, after: 1, newlyRejected: 0, newlyPassed: 0 });
  });
});
