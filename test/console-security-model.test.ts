/**
 * The security options form's logic (renderer/src/views/security/model.ts and diff.ts), in Node: every row of
 * SPEC section 1's table is in the form, the shared ConfigSchema's issues land on the right fields, untouched fields
 * keep their exact values, and a conflict re-applies one's edits on top of the newer revision.
 */
import { describe, expect, it } from 'vitest';
import { ConfigSchema, defaultConfig, type Config } from '../shared/config.ts';
import {
  FIELDS,
  SECTIONS,
  buildCandidate,
  editedFields,
  fieldForPath,
  formChanges,
  formFromConfig,
  mapIssues,
  rebase,
} from '../renderer/src/views/security/model.ts';
import { describeChanges } from '../renderer/src/views/security/diff.ts';
import { diffConfigs } from '../shared/config-diff.ts';

const cfg = (patch: (c: Config) => void = () => {}): Config => {
  const c = defaultConfig();
  patch(c);
  return ConfigSchema.parse(c);
};

describe('security form: the fields', () => {
  it('covers every option of SPEC section 1 with its mode and numbers', () => {
    const ids = FIELDS.map((f) => f.id);
    for (const id of [
      'limits.messagesPerHour.mode',
      'limits.messagesPerHour.max',
      'limits.concurrentConnections.mode',
      'limits.concurrentConnections.max',
      'limits.unknownRecipients.mode',
      'limits.unknownRecipients.max',
      'limits.unknownRecipients.blockMinutes',
      'limits.authFailures.mode',
      'limits.authFailures.max',
      'limits.authFailures.windowMinutes',
      'limits.authFailures.blockMinutes',
      'limits.exemptGroups',
      'limits.ipv6Prefix',
      'checks.senderDomain.mode',
      'checks.reverseDns.mode',
      'checks.maxRecipients.mode',
      'checks.maxRecipients.max',
      'checks.maxFailedCommands.mode',
      'checks.maxFailedCommands.max',
      'checks.maxMessageSize.mode',
      'checks.maxMessageSize.maxBytes',
      'smtp.bareLineEndings',
      'smtp.greetingDelayMs',
      'delivery.tls',
    ]) {
      expect(ids, id).toContain(id);
    }
    // every field path exists in the default config
    const d = defaultConfig() as unknown as Record<string, Record<string, unknown>>;
    for (const f of FIELDS) {
      let cur: unknown = d;
      for (const k of f.path) cur = (cur as Record<string, unknown>)[k];
      expect(cur, f.id).not.toBeUndefined();
    }
    expect(SECTIONS.flatMap((s) => s.rules).length).toBe(14);
  });

  it('shows the size in MiB and stores bytes', () => {
    const form = formFromConfig(defaultConfig());
    expect(form['checks.maxMessageSize.maxBytes']).toBe('25');
    const c = buildCandidate(defaultConfig(), { ...form, 'checks.maxMessageSize.maxBytes': '10.5' });
    expect(c.ok).toBe(true);
    expect(c.config.checks.maxMessageSize.maxBytes).toBe(Math.round(10.5 * 1024 * 1024));
  });

  it('keeps the exact value of a field the user did not touch (no MiB rounding)', () => {
    const base = cfg((c) => (c.checks.maxMessageSize.maxBytes = 26_214_401));
    const form = formFromConfig(base);
    expect(form['checks.maxMessageSize.maxBytes']).toBe('25');
    const c = buildCandidate(base, { ...form, 'limits.messagesPerHour.max': '20' });
    expect(c.ok).toBe(true);
    expect(c.config.checks.maxMessageSize.maxBytes).toBe(26_214_401);
    expect(c.config.limits.messagesPerHour.max).toBe(20);
    expect(formChanges(base, c.config).map((x) => x.id)).toEqual(['limits.messagesPerHour.max']);
  });
});

describe('security form: validation with the shared schema', () => {
  it('puts zod issues on the fields, in the units shown', () => {
    const base = defaultConfig();
    const form = formFromConfig(base);
    const c = buildCandidate(base, {
      ...form,
      'limits.messagesPerHour.max': '0',
      'limits.ipv6Prefix': '129',
      'smtp.greetingDelayMs': '60001',
      'checks.maxMessageSize.maxBytes': '4096',
      'limits.authFailures.windowMinutes': 'ten',
    });
    expect(c.ok).toBe(false);
    expect(c.fieldErrors['limits.messagesPerHour.max']).toBe('must be at least 1');
    expect(c.fieldErrors['limits.ipv6Prefix']).toBe('must be at most 128');
    expect(c.fieldErrors['smtp.greetingDelayMs']).toBe('must be at most 60,000');
    expect(c.fieldErrors['checks.maxMessageSize.maxBytes']).toMatch(/at most 2048 MiB/);
    expect(c.fieldErrors['limits.authFailures.windowMinutes']).toMatch(/whole number/);
    expect(c.otherErrors).toEqual([]);
  });

  it('refuses an exempt group that is not defined, on the groups field', () => {
    const base = defaultConfig();
    const c = buildCandidate(base, { ...formFromConfig(base), 'limits.exemptGroups': ['Trusted', 'Nope'] });
    expect(c.ok).toBe(false);
    expect(c.fieldErrors['limits.exemptGroups']).toMatch(/Nope/);
  });

  it('maps the relay\'s -32602 issues (params path config.*) onto fields, others listed', () => {
    const r = mapIssues(
      [
        { path: ['config', 'limits', 'messagesPerHour', 'max'], message: 'Too small', code: 'too_small', minimum: 1 },
        { path: ['config', 'domains', 'Example.COM'], message: 'not a domain', code: 'custom' },
      ],
      ['config'],
    );
    expect(r.fieldErrors['limits.messagesPerHour.max']).toBe('must be at least 1');
    expect(r.otherErrors).toEqual(['domains.Example.COM: not a domain']);
    expect(fieldForPath(['limits', 'exemptGroups', 1])?.id).toBe('limits.exemptGroups');
  });

  it('a valid edit passes and lists exactly its change in words', () => {
    const base = defaultConfig();
    const form = formFromConfig(base);
    const c = buildCandidate(base, { ...form, 'limits.messagesPerHour.mode': 'monitor', 'limits.messagesPerHour.max': '1,000' });
    expect(c.ok).toBe(true);
    const ch = formChanges(base, c.config);
    expect(ch).toEqual([
      { id: 'limits.messagesPerHour.mode', rule: 'Max messages per hour from one IP', label: 'Mode', before: 'Enforce', after: 'Monitor' },
      { id: 'limits.messagesPerHour.max', rule: 'Max messages per hour from one IP', label: 'Limit', before: '100 messages per hour', after: '1,000 messages per hour' },
    ]);
  });
});

describe('security form: conflicts', () => {
  it('re-applies my edits on top of theirs, keeps their other changes, and reports both-changed fields', () => {
    const base = defaultConfig();
    const mine = { ...formFromConfig(base), 'limits.messagesPerHour.max': '20', 'checks.reverseDns.mode': 'monitor' };
    const latest = cfg((c) => {
      c.limits.messagesPerHour.max = 50; // both changed
      c.limits.concurrentConnections.max = 3; // only theirs
      c.groups.Office = [{ address: '192.0.2.0/24', comment: 'office', expiresAt: null }];
    });
    const r = rebase(base, mine, latest);
    expect(r.mine.sort()).toEqual(['checks.reverseDns.mode', 'limits.messagesPerHour.max']);
    expect(r.theirs.sort()).toEqual(['limits.concurrentConnections.max', 'limits.messagesPerHour.max']);
    expect(r.conflicts).toEqual([{ id: 'limits.messagesPerHour.max', base: '100 messages per hour', theirs: '50 messages per hour', mine: '20 messages per hour' }]);
    const c = buildCandidate(latest, r.form);
    expect(c.ok).toBe(true);
    expect(c.config.limits.messagesPerHour.max).toBe(20);
    expect(c.config.checks.reverseDns.mode).toBe('monitor');
    expect(c.config.limits.concurrentConnections.max).toBe(3);
    expect(c.config.groups.Office).toHaveLength(1);
    expect(editedFields(latest, r.form).sort()).toEqual(['checks.reverseDns.mode', 'limits.messagesPerHour.max']);
  });

  it('describes what the other admin changed, group entries by address', () => {
    const base = defaultConfig();
    const latest = cfg((c) => {
      c.limits.messagesPerHour.max = 50;
      c.groups.Trusted = [{ address: '127.0.0.5', comment: 'sales', expiresAt: null, addedBy: 'alice' }];
      c.delivery.smarthost.password = 'hunter2';
      c.delivery.smarthost.user = 'relay';
    });
    const lines = describeChanges(diffConfigs(base, latest));
    const byPath = Object.fromEntries(lines.map((l) => [l.path, l]));
    expect(byPath['limits.messagesPerHour.max']).toMatchObject({ key: 'Max messages per hour from one IP: limit', before: '100 messages per hour', after: '50 messages per hour' });
    expect(byPath['groups.Trusted[127.0.0.5]']).toMatchObject({ op: 'add', key: 'Group "Trusted": entry 127.0.0.5' });
    expect(byPath['groups.Trusted[127.0.0.5]']!.after).toContain('"sales"');
    expect(byPath['delivery.smarthost.password']!.after).toBe('(secret)');
  });
});
