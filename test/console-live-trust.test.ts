/**
 * The live view's words about trusting and about events (renderer/src/state/trust.ts, summary.ts), pure: what
 * "Trust this IP" does with a given config (the per-IP limits; relaying and the DNS checks when the trust group is in
 * relay.allowGroups, as it is by default), that a relay-access rejection asks first, the toast after the click,
 * whether an address is trusted now, the client line after a trust reset the counters, a connect event that makes
 * no claim about reverse DNS, and a rejection that names the refused recipient.
 */
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../shared/config.ts';
import type { RelayEvent, Rule } from '../shared/events.ts';
import { fmtDateTime, fmtTime } from '../renderer/src/components/format.ts';
import { EMPTY_FILTER, compileFilter } from '../renderer/src/state/filter.ts';
import { RELAY_TRUST_DEFAULT, asksBeforeTrust, clientNowLine, groupMatcher, refusedTo, summarize, trustEffects, trustHelps, trustWarning, trustedEntry, trustedMessage } from '../renderer/src/state/summary.ts';

const NOW = Date.parse('2026-11-29T09:00:00Z');
const defaults = ConfigSchema.parse({});

type Rejected = Extract<RelayEvent, { kind: 'rejected' }>;
const rejected = (rule: Rule, extra: Partial<Rejected> = {}): RelayEvent => ({
  id: 7,
  at: NOW,
  sessionId: 's1',
  ip: '127.0.0.4',
  kind: 'rejected',
  stage: 'rcpt',
  rule,
  code: 554,
  text: '5.7.1 Relay access denied: elsewhere.test is not a local domain',
  enforced: true,
  ...extra,
});

describe('what trusting does, with the config at hand', () => {
  it('by default the trust group ("Trusted") may relay too: the words say so, and name the DNS checks it skips', () => {
    const eff = trustEffects(defaults);
    expect(eff).toEqual({ group: 'Trusted', relays: true, dnsChecks: ['reverse DNS', 'sender domain'] });
    const w = trustWarning('127.0.0.4', eff);
    expect(w).toMatch(/^Trusting adds 127\.0\.0\.4 to "Trusted": it skips the per-IP limits/);
    expect(w).toMatch(/may send mail through this relay to any domain, and the reverse DNS and sender domain checks no longer apply to it\.$/);
  });

  it('a trust group that may not relay: only the limits; a DNS check that is off is not named', () => {
    const cfg = ConfigSchema.parse({ groups: { Trusted: [], Mailers: [] }, limits: { exemptGroups: ['Mailers'] } });
    expect(trustEffects(cfg)).toEqual({ group: 'Mailers', relays: false, dnsChecks: [] });
    const w = trustWarning('127.0.0.6', trustEffects(cfg));
    expect(w).toMatch(/skips the per-IP limits/);
    expect(w).not.toMatch(/relay/);
    const off = ConfigSchema.parse({ checks: { reverseDns: { mode: 'off' } } });
    expect(trustEffects(off).dnsChecks).toEqual(['sender domain']);
    expect(trustWarning('127.0.0.6', trustEffects(off))).toMatch(/and the sender domain check no longer applies to it\./);
    const none = ConfigSchema.parse({ limits: { exemptGroups: [] } });
    expect(trustEffects(none).group).toBeNull();
    expect(trustWarning('127.0.0.6', trustEffects(none))).toMatch(/cannot be trusted: no group is exempt/);
  });

  it('asks first only where the click itself grants relaying (a relay-access rejection), with a bounded expiry', () => {
    expect(asksBeforeTrust(rejected('relay.access'))).toBe(true);
    expect(asksBeforeTrust(rejected('limits.messagesPerHour'))).toBe(false);
    expect(asksBeforeTrust({ id: 1, at: NOW, sessionId: 's', ip: '127.0.0.4', kind: 'connect' })).toBe(false);
    expect(RELAY_TRUST_DEFAULT).not.toBe('forever');
  });

  it('the toast says what was done, relaying included', () => {
    const r = { group: 'Trusted', entry: { address: '127.0.0.4', expiresAt: null }, alreadyTrusted: false, unblocked: false };
    expect(trustedMessage('127.0.0.4', r, true)).toBe(
      'Trusted 127.0.0.4 in "Trusted" with no expiry: from its next command it skips the per-IP limits and may relay mail to any domain ("Trusted" is in relay.allowGroups). Its counters were reset.',
    );
    const until = '2026-11-30T09:00:00.000Z';
    expect(trustedMessage('127.0.0.6', { ...r, entry: { address: '127.0.0.6', expiresAt: until }, unblocked: true }, false)).toBe(
      `Trusted 127.0.0.6 in "Trusted" until ${fmtDateTime(until)}: from its next command it skips the per-IP limits (it may not relay: "Trusted" is not in relay.allowGroups). Its counters were reset. Its block was cleared.`,
    );
    expect(trustedMessage('127.0.0.6', r, null)).toMatch(/see Trusted IP groups for whether "Trusted" may relay/);
    expect(trustedMessage('127.0.0.6', { ...r, alreadyTrusted: true }, true)).toBe('127.0.0.6 is already trusted (group "Trusted", entry 127.0.0.4).');
  });
});

describe('whether an address is trusted now (for the rows: "trusted" instead of the button)', () => {
  const cfg = ConfigSchema.parse({
    groups: {
      Trusted: [
        { address: '127.0.0.6', expiresAt: null, addedAt: '2026-11-29T09:00:05Z' },
        { address: '192.0.2.0/24', expiresAt: '2026-11-29T10:00:00Z' },
        { address: '198.51.100.7', expiresAt: '2026-11-29T08:00:00Z' },
      ],
      Partners: [{ address: '203.0.113.5' }],
    },
  });
  const m = groupMatcher(cfg);
  it('finds the live entry of an exempt group, not an expired one nor one of another group', () => {
    expect(trustedEntry(m, cfg, '127.0.0.6', NOW)).toMatchObject({ group: 'Trusted', entry: { address: '127.0.0.6' } });
    expect(trustedEntry(m, cfg, '192.0.2.77', NOW)).toMatchObject({ group: 'Trusted', entry: { address: '192.0.2.0/24' } });
    expect(trustedEntry(m, cfg, '192.0.2.77', Date.parse('2026-11-29T10:00:00Z'))).toBeNull();
    expect(trustedEntry(m, cfg, '198.51.100.7', NOW)).toBeNull();
    expect(trustedEntry(m, cfg, '203.0.113.5', NOW)).toBeNull();
    expect(trustedEntry(m, cfg, null, NOW)).toBeNull();
    expect(trustedEntry(null, undefined, '127.0.0.6', NOW)).toBeNull();
  });
});

describe("the session panel's line about the client now", () => {
  const info = { ip: '127.0.0.6', messagesLastHour: 0, connections: 0 };
  it('says the counters restarted when the address was trusted after the rejection shown', () => {
    const trustedAt = NOW + 5_000;
    expect(clientNowLine(info, trustedAt, NOW)).toBe(`127.0.0.6 now: 0 messages in the last hour (counted since it was trusted at ${fmtTime(trustedAt)}: trusting resets the counters), 0 open connections`);
  });
  it('plain counts otherwise', () => {
    expect(clientNowLine({ ...info, messagesLastHour: 1, connections: 1 }, null, NOW)).toBe('127.0.0.6 now: 1 message in the last hour, 1 open connection');
    expect(clientNowLine(info, NOW - 3_600_000, NOW)).toBe('127.0.0.6 now: 0 messages in the last hour, 0 open connections');
  });
});

describe('event summaries claim only what the event says', () => {
  it('a connect event without a hostname says nothing about reverse DNS', () => {
    expect(summarize({ id: 1, at: NOW, sessionId: 's', ip: '127.0.0.4', kind: 'connect', port: 41000 })).toBe('connected');
    expect(summarize({ id: 1, at: NOW, sessionId: 's', ip: '127.0.0.4', kind: 'connect', hostname: null })).toBe('connected');
    expect(summarize({ id: 1, at: NOW, sessionId: 's', ip: '127.0.0.4', kind: 'connect', hostname: 'mail.example.org' })).toBe('connected from mail.example.org');
  });
  it('a rejected recipient is named, and found by the text filter', () => {
    const e = rejected('relay.access', { to: 'someone@elsewhere.test' });
    expect(refusedTo(e)).toBe('to <someone@elsewhere.test>');
    expect(summarize(e)).toBe('relay.access · to <someone@elsewhere.test> · 554 5.7.1 Relay access denied: elsewhere.test is not a local domain');
    expect(compileFilter({ ...EMPTY_FILTER, text: 'someone@elsewhere' })!(e)).toBe(true);
    expect(summarize(rejected('limits.messagesPerHour', { stage: 'mail', code: 450, text: '4.7.1 Too much mail' }))).toBe('limits.messagesPerHour · 450 4.7.1 Too much mail');
  });
});

describe('where trusting is offered', () => {
  it('only on rejections trust can lift: the per-IP limits, the greeting delay, relaying and the DNS checks', () => {
    for (const rule of ['limits.messagesPerHour', 'limits.concurrentConnections', 'limits.unknownRecipients', 'limits.authFailures', 'smtp.greetingDelayMs', 'relay.access', 'checks.reverseDns', 'checks.senderDomain']) {
      expect(trustHelps(rejected(rule as Rule)), rule).toBe(true);
    }
    // an unknown mailbox, a message too big, ... are the same for every client: no offer
    for (const rule of ['recipient.unknown', 'checks.maxRecipients', 'checks.maxFailedCommands', 'checks.maxMessageSize', 'smtp.bareLineEndings', 'smtp.maxConnections', 'protocol', 'storage']) {
      expect(trustHelps(rejected(rule as Rule)), rule).toBe(false);
    }
    expect(trustHelps({ kind: 'connect', id: 2, at: 0, sessionId: 's', ip: '192.0.2.7' } as RelayEvent)).toBe(false);
  });
});
