/**
 * The decisions alone (relay/policy/verdicts.ts): for each rule, where its limit starts (the max-th occurrence for the
 * counters that count what came before, "over max" for sizes), what monitor and off do, and that exempt clients skip
 * the per-IP limits. The SMTP tests reach each through a real session; these pin the boundaries in milliseconds.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../shared/config.ts';
import * as policy from '../relay/policy/verdicts.ts';

function config(input: Record<string, unknown> = {}): Config {
  const r = parseConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}
const ip = '192.0.2.7';
const rules = (vs: policy.Verdict[]) => vs.map((v) => `${v.rule}:${v.mode}:${v.code}`);
const mail = (c: Config, extra: Partial<policy.MailFacts> = {}) =>
  policy.atMailFrom(c, { ip, exempt: false, dnsExempt: false, messagesLastHour: 0, declaredSize: null, senderDomain: 'example.org', senderDomainFact: null, reverseDnsFact: null, ...extra });

describe('where each limit starts', () => {
  const c = config({
    limits: { messagesPerHour: { max: 3 }, concurrentConnections: { max: 2 }, unknownRecipients: { max: 4 }, authFailures: { max: 5 } },
    checks: { maxRecipients: { max: 2 }, maxMessageSize: { maxBytes: 1000 }, maxFailedCommands: { max: 6 } },
  });

  it('messages per hour: the max-th message of the hour is the last let through', () => {
    expect(rules(mail(c, { messagesLastHour: 2 }))).toEqual([]);
    expect(rules(mail(c, { messagesLastHour: 3 }))).toEqual(['limits.messagesPerHour:enforce:450']);
    expect(rules(mail(c, { messagesLastHour: 3, exempt: true }))).toEqual([]);
  });

  it('concurrent connections: this one counted, more than max refused, and closed', () => {
    expect(rules(policy.atConnect(c, { ip, exempt: false, connections: 2, block: null }))).toEqual([]);
    const v = policy.atConnect(c, { ip, exempt: false, connections: 3, block: null });
    expect(rules(v)).toEqual(['limits.concurrentConnections:enforce:421']);
    expect(v[0]!.close).toBe(true);
    expect(policy.atConnect(c, { ip, exempt: true, connections: 99, block: null })).toEqual([]);
  });

  it('unknown recipients and failed logins: the max-th sets the block', () => {
    expect(policy.unknownRecipientLimit(c, { ip, exempt: false, unknownLastHour: 3 })).toEqual([]);
    expect(policy.unknownRecipientLimit(c, { ip, exempt: false, unknownLastHour: 4 })).toMatchObject([{ code: 421, close: true, blockMinutes: 60 }]);
    expect(policy.unknownRecipientLimit(c, { ip, exempt: true, unknownLastHour: 40 })).toEqual([]);
    expect(policy.authFailureLimit(c, { ip, exempt: false, failuresInWindow: 4 })).toEqual([]);
    expect(policy.authFailureLimit(c, { ip, exempt: false, failuresInWindow: 5 })).toMatchObject([{ code: 421, close: true, blockMinutes: 15 }]);
  });

  it('a block refuses at connect and at AUTH, MAIL and RCPT alike, flagged as a block, never an exempt client', () => {
    const block = { rule: 'limits.authFailures' as const, since: 0, until: Date.parse('2026-11-27T12:15:00Z'), reason: 'too many failed logins' };
    for (const stage of ['connect', 'auth', 'mail', 'rcpt'] as const) {
      expect(policy.blockedNow(c, { ip, exempt: false, block }, stage)).toEqual([{
        rule: 'limits.authFailures', stage, code: 421, mode: 'enforce', close: true, blocked: true,
        text: '4.7.0 192.0.2.7 is blocked until 2026-11-27T12:15:00Z: too many failed logins. Try again later.',
      }]);
      expect(policy.blockedNow(c, { ip, exempt: true, block }, stage)).toEqual([]);
    }
  });

  it('recipients: the max-th recipient is the last taken; failed commands: the max-th closes', () => {
    expect(policy.tooManyRecipients(c, 1)).toEqual([]);
    expect(rules(policy.tooManyRecipients(c, 2))).toEqual(['checks.maxRecipients:enforce:452']);
    expect(policy.failedCommandLimit(c, 5)).toEqual([]);
    expect(policy.failedCommandLimit(c, 6)).toMatchObject([{ code: 421, close: true }]);
  });

  it('size: exactly the limit passes, one byte over does not, declared or sent', () => {
    expect(mail(c, { declaredSize: 1000 })).toEqual([]);
    expect(rules(mail(c, { declaredSize: 1001 }))).toEqual(['checks.maxMessageSize:enforce:552']);
    expect(policy.messageTooBig(c.checks.maxMessageSize, 1000)).toEqual([]);
    expect(rules(policy.messageTooBig(c.checks.maxMessageSize, 1001))).toEqual(['checks.maxMessageSize:enforce:552']);
    expect(mail(c, { declaredSize: 2 ** 60 })[0]!.text).toContain(`declared SIZE=more than ${Number.MAX_SAFE_INTEGER} bytes`);
  });
});

describe('modes', () => {
  it('monitor reports with the same code; off says nothing (for every mode-bearing rule)', () => {
    for (const mode of ['monitor', 'off'] as const) {
      const c = config({
        limits: { messagesPerHour: { max: 1, mode }, concurrentConnections: { max: 1, mode }, unknownRecipients: { max: 1, mode }, authFailures: { max: 1, mode } },
        checks: { maxRecipients: { max: 1, mode }, maxMessageSize: { maxBytes: 10, mode }, maxFailedCommands: { max: 1, mode }, reverseDns: { mode }, senderDomain: { mode } },
      });
      const all = [
        ...mail(c, { messagesLastHour: 5, declaredSize: 99, reverseDnsFact: { result: 'none' }, senderDomainFact: { result: 'nodomain' } }),
        ...policy.atConnect(c, { ip, exempt: false, connections: 5, block: null }),
        ...policy.unknownRecipientLimit(c, { ip, exempt: false, unknownLastHour: 5 }),
        ...policy.authFailureLimit(c, { ip, exempt: false, failuresInWindow: 5 }),
        ...policy.tooManyRecipients(c, 5),
        ...policy.failedCommandLimit(c, 5),
        ...policy.messageTooBig(c.checks.maxMessageSize, 99),
      ];
      if (mode === 'off') expect(all).toEqual([]);
      else {
        expect(rules(all)).toEqual([
          'limits.messagesPerHour:monitor:450', 'checks.maxMessageSize:monitor:552', 'checks.reverseDns:monitor:550', 'checks.senderDomain:monitor:550',
          'limits.concurrentConnections:monitor:421', 'limits.unknownRecipients:monitor:421', 'limits.authFailures:monitor:421',
          'checks.maxRecipients:monitor:452', 'checks.maxFailedCommands:monitor:421', 'checks.maxMessageSize:monitor:552',
        ]);
      }
    }
  });

  it('DNS: a failure to look up is temporary (4xx), an answer that there is nothing is permanent (5xx); DNS-exempt clients are not looked up', () => {
    const c = config();
    expect(rules(mail(c, { reverseDnsFact: { result: 'temperror', reason: 'timed out' } }))).toEqual(['checks.reverseDns:enforce:450']);
    expect(rules(mail(c, { senderDomainFact: { result: 'temperror', reason: 'SERVFAIL' } }))).toEqual(['checks.senderDomain:enforce:451']);
    expect(rules(mail(c, { senderDomainFact: { result: 'nullmx' } }))).toEqual(['checks.senderDomain:enforce:550']);
    expect(policy.mailNeeds(c, { dnsExempt: true, senderDomain: 'example.org' })).toEqual({ reverseDns: false, senderDomain: false });
    expect(policy.mailNeeds(c, { dnsExempt: false, senderDomain: null })).toEqual({ reverseDns: true, senderDomain: false });
  });

  it('bare line endings: refused only when the config says reject', () => {
    expect(policy.bareLineEnding(config({ smtp: { bareLineEndings: 'normalize' } }))).toEqual([]);
    expect(rules(policy.bareLineEnding(config({ smtp: { bareLineEndings: 'reject' } })))).toEqual(['smtp.bareLineEndings:enforce:550']);
  });
});
