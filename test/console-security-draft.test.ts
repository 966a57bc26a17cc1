/**
 * The security form's logic added for the tryout's findings, in Node:
 * - a negative number gets the field's own bound ("must be at least 1"), not "enter a whole number";
 * - the draft kept per server profile across a disconnect, and what a config the relay sends after the reconnect
 *   does to it (adopt, keep, or "the relay moved on": never a silent drop of edits);
 * - the impact preview's comparison of two replays (the current settings and the changed ones), so a change is not
 *   credited with the effect of earlier changes (IPs trusted since the traffic was recorded).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigSchema, defaultConfig, type Config } from '../shared/config.ts';
import type { SimulationResult, SimulationRule } from '../shared/protocol.ts';
import { buildCandidate, formFromConfig } from '../renderer/src/views/security/model.ts';
import { adoption, draftEdits, securityDrafts, type SecurityDraft } from '../renderer/src/views/security/draft.ts';
import { compareSimulations } from '../renderer/src/views/security/impact.ts';

const cfg = (patch: (c: Config) => void = () => {}): Config => {
  const c = defaultConfig();
  patch(c);
  return ConfigSchema.parse(c);
};

describe('security form: negative numbers', () => {
  it('says the bound of the field, in the form\'s words', () => {
    const base = cfg();
    const form = { ...formFromConfig(base), 'limits.messagesPerHour.max': '-1', 'smtp.greetingDelayMs': '-5', 'checks.maxRecipients.max': '−3' };
    const r = buildCandidate(base, form);
    expect(r.ok).toBe(false);
    expect(r.fieldErrors['limits.messagesPerHour.max']).toBe('must be at least 1');
    expect(r.fieldErrors['smtp.greetingDelayMs']).toBe('must be at least 0');
    // a typographic minus sign is a minus sign
    expect(r.fieldErrors['checks.maxRecipients.max']).toBe('must be at least 1');
  });
  it('still says "whole number" for text that is not one', () => {
    const base = cfg();
    const r = buildCandidate(base, { ...formFromConfig(base), 'limits.messagesPerHour.max': '1.5', 'checks.maxRecipients.max': '-x' });
    expect(r.fieldErrors['limits.messagesPerHour.max']).toBe('enter a whole number, e.g. 100');
    expect(r.fieldErrors['checks.maxRecipients.max']).toBe('enter a whole number, e.g. 100');
  });
});

describe('security form: the draft across a disconnect', () => {
  beforeEach(() => securityDrafts.clear());
  const at7 = { revision: 7, config: cfg() };
  const edited = (): SecurityDraft => ({
    base: at7,
    form: { ...formFromConfig(at7.config), 'limits.messagesPerHour.max': '50', 'checks.senderDomain.mode': 'monitor' },
    loadedAt: 1,
  });

  it('is kept per server profile, not shared between relays', () => {
    securityDrafts.set('edge', edited());
    expect(draftEdits(securityDrafts.get('edge'))).toBe(2);
    expect(securityDrafts.get('backup')).toBeUndefined();
    expect(draftEdits(securityDrafts.get('backup'))).toBe(0);
  });

  it('keeps the edits when the relay comes back at the same revision (a restart with nothing changed)', () => {
    expect(adoption(edited(), { revision: 7, config: cfg() })).toBe('keep');
  });

  it('says the relay moved on when it comes back at a newer revision with other settings', () => {
    const theirs = cfg((c) => {
      c.limits.concurrentConnections.max = 3;
    });
    expect(adoption(edited(), { revision: 8, config: theirs })).toBe('moved');
  });

  it('adopts a newer revision when nothing is edited, or when the relay already holds exactly the edits', () => {
    const plain: SecurityDraft = { base: at7, form: formFromConfig(at7.config), loadedAt: 1 };
    expect(adoption(plain, { revision: 8, config: cfg((c) => void (c.limits.concurrentConnections.max = 3)) })).toBe('adopt');
    // the user's own Apply, whose answer was lost when the connection dropped
    const mine = cfg((c) => {
      c.limits.messagesPerHour.max = 50;
      c.checks.senderDomain.mode = 'monitor';
    });
    expect(adoption(edited(), { revision: 8, config: mine })).toBe('adopt');
    expect(adoption(undefined, at7)).toBe('adopt');
  });
});

const rule = (r: Partial<SimulationRule> & Pick<SimulationRule, 'rule'>): SimulationRule => ({
  unit: 'message',
  before: 0,
  after: 0,
  newlyRejected: 0,
  newlyPassed: 0,
  monitored: 0,
  ips: [],
  ...r,
});
const sim = (rules: SimulationRule[]): SimulationResult => ({
  from: 0,
  to: 1000,
  replayed: { events: 100, connections: 10, mailAttempts: 20, recipients: 30, messages: 20 },
  rules,
  newlyRejectedIps: [...new Set(rules.flatMap((r) => r.ips.filter((i) => i.newlyRejected).map((i) => i.ip)))],
  newlyPassedIps: [...new Set(rules.flatMap((r) => r.ips.filter((i) => i.newlyPassed).map((i) => i.ip)))],
  caveats: [],
  notReplayed: [],
  truncated: false,
});

describe('impact preview: this change against the settings in effect now', () => {
  // The tryout: 6 MAIL FROM from 4 IPs were refused by the hourly limit and recorded so; the 4 IPs were trusted
  // since. The current settings already let them pass, so a change of max recipients and reverse DNS must not be
  // credited with "6 that were rejected would pass".
  const trustedSince = rule({
    rule: 'limits.messagesPerHour',
    before: 6,
    after: 0,
    newlyPassed: 6,
    ips: [
      { ip: '127.0.0.5', newlyRejected: 0, newlyPassed: 2 },
      { ip: '127.0.0.6', newlyRejected: 0, newlyPassed: 2 },
      { ip: '127.0.0.7', newlyRejected: 0, newlyPassed: 1 },
      { ip: '127.0.0.8', newlyRejected: 0, newlyPassed: 1 },
    ],
  });

  it('does not credit the change with what earlier changes did', () => {
    const current = sim([trustedSince]);
    const candidate = sim([
      trustedSince,
      rule({ rule: 'checks.maxRecipients', unit: 'recipient', after: 3, newlyRejected: 3, ips: [{ ip: '127.0.0.9', newlyRejected: 3, newlyPassed: 0 }] }),
    ]);
    const r = compareSimulations(current, candidate);
    expect(r.more).toBe(3);
    expect(r.fewer).toBe(0);
    expect(r.moreIps).toEqual(['127.0.0.9']);
    expect(r.fewerIps).toEqual([]);
    expect(r.rules.map((x) => [x.rule, x.now, x.after, x.more, x.fewer])).toEqual([['checks.maxRecipients', 0, 3, 3, 0]]);
  });

  it('counts what the change lets pass that the current settings reject, per rule and IP', () => {
    const rdns = (mode: 'enforce' | 'monitor') =>
      rule({
        rule: 'checks.reverseDns',
        before: 4,
        after: mode === 'enforce' ? 4 : 0,
        newlyPassed: mode === 'enforce' ? 0 : 4,
        monitored: mode === 'monitor' ? 4 : 0,
        ips: mode === 'enforce' ? [] : [{ ip: '127.0.0.20', newlyRejected: 0, newlyPassed: 4 }],
      });
    const r = compareSimulations(sim([trustedSince, rdns('enforce')]), sim([trustedSince, rdns('monitor')]));
    expect(r.more).toBe(0);
    expect(r.fewer).toBe(4);
    expect(r.fewerIps).toEqual(['127.0.0.20']);
    const x = r.rules.find((y) => y.rule === 'checks.reverseDns')!;
    expect(x).toMatchObject({ now: 4, after: 0, fewer: 4, monitoredNow: 0, monitoredAfter: 4 });
    expect(x.ips).toEqual([{ ip: '127.0.0.20', more: 0, fewer: 4 }]);
  });

  it('shows a rule only one of the two replays mentions, and nets an IP over both', () => {
    // the current settings already reject 2 of 127.0.0.30's messages (limit 5); the change (limit 3) rejects 4
    const current = sim([rule({ rule: 'limits.messagesPerHour', after: 2, newlyRejected: 2, ips: [{ ip: '127.0.0.30', newlyRejected: 2, newlyPassed: 0 }] })]);
    const candidate = sim([rule({ rule: 'limits.messagesPerHour', after: 4, newlyRejected: 4, ips: [{ ip: '127.0.0.30', newlyRejected: 4, newlyPassed: 0 }] })]);
    const r = compareSimulations(current, candidate);
    expect(r.more).toBe(2);
    expect(r.rules[0]!.ips).toEqual([{ ip: '127.0.0.30', more: 2, fewer: 0 }]);
    // the change turns the limit off: a rule in the current replay only
    const off = compareSimulations(current, sim([]));
    expect(off.rules.map((x) => [x.rule, x.now, x.after, x.fewer])).toEqual([['limits.messagesPerHour', 2, 0, 2]]);
    expect(off.fewerIps).toEqual(['127.0.0.30']);
  });

  it('leaves out rules whose refusals are only in the recording', () => {
    const r = compareSimulations(sim([trustedSince]), sim([trustedSince]));
    expect(r).toEqual({ rules: [], more: 0, fewer: 0, moreIps: [], fewerIps: [] });
  });
});
