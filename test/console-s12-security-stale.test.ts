/**
 * The console tryout of session 12, finding 2: another admin applied a change (messagesPerHour 3 → 7, maxRecipients
 * off) while this admin edited revision 5 (messagesPerHour 3 → 5). The Review dialog said "Now: 3 messages per hour",
 * did not show maxRecipients off, and its impact preview compared the edits with revision 5, crediting the change with
 * messages that already pass at 7. With a stale base, Review now shows the relay's values and measures the impact from
 * them to the edits put on top (security/stale.ts); the e2e test test/e2e/s12-security-stale.test.ts shows it on screen.
 */
import { describe, expect, it } from 'vitest';
import { ConfigSchema, defaultConfig, type Config } from '../shared/config.ts';
import { formFromConfig } from '../renderer/src/views/security/model.ts';
import { staleReview } from '../renderer/src/views/security/stale.ts';

const cfg = (patch: (c: Config) => void = () => {}): Config => {
  const c = defaultConfig();
  patch(c);
  return ConfigSchema.parse(c);
};

describe('Review with a stale base (finding 2)', () => {
  const base = cfg((c) => (c.limits.messagesPerHour.max = 3));
  const latest = cfg((c) => {
    c.limits.messagesPerHour.max = 7;
    c.checks.maxRecipients.mode = 'off';
  });
  const form = { ...formFromConfig(base), 'limits.messagesPerHour.max': '5', 'checks.reverseDns.mode': 'monitor' };

  it('"Now" is the relay\'s value, with the value the edit started from; the other admin\'s other change is listed', () => {
    const r = staleReview(base, form, latest);
    expect(r.rows.map((x) => [x.id, x.before, x.startedFrom, x.after])).toEqual([
      ['limits.messagesPerHour.max', '7 messages per hour', '3 messages per hour', '5 messages per hour'],
      ['checks.reverseDns.mode', 'Enforce', null, 'Monitor'],
    ]);
    expect(r.theirs.map((x) => [x.id, x.before, x.after])).toEqual([['checks.maxRecipients.mode', 'Enforce', 'Off']]);
  });

  it('the impact is measured from the relay\'s settings now to the edits on top of them, not from the old revision', () => {
    const r = staleReview(base, form, latest);
    expect(r.current).toBe(latest);
    expect(r.after.limits.messagesPerHour.max).toBe(5);
    expect(r.after.checks.reverseDns.mode).toBe('monitor');
    // the other admin's change stays in what is compared (it is what the relay does, not part of this change)
    expect(r.after.checks.maxRecipients.mode).toBe('off');
  });
});
