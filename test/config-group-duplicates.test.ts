/**
 * One entry per address in a group. A tryout put a permanent entry and one that expires tomorrow for the same IP in
 * Trusted, then removed the permanent one: the reload line, config.history and the audit diff (which compare entries
 * by address) all said "the same settings, written differently", though from tomorrow the IP was no longer trusted.
 * A second entry for an address (as written, or the same network written another way) is now refused, naming both.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../shared/config.ts';
import { diffConfigs } from '../shared/config-diff.ts';

const issuesOf = (input: unknown) => {
  const r = parseConfig(input);
  return r.ok ? [] : r.issues.map((i) => `${i.key}: ${i.message}`);
};

describe('group entries', () => {
  it('a second entry for the same address or network is refused, naming the first', () => {
    expect(issuesOf({ groups: { Trusted: [{ address: '192.0.2.1' }, { address: ' 192.0.2.1 ', comment: 'dup', expiresAt: '2030-01-01T00:00:00Z' }] } })).toEqual([
      'groups.Trusted.1.address: 192.0.2.1 is entry 0 of group "Trusted" already: one entry per address (keep one, with the comment and expiry you want)',
    ]);
    expect(issuesOf({ groups: { Trusted: [], Office: [{ address: '2001:db8::/32' }, { address: '2001:0db8::/32' }] } })).toEqual([
      'groups.Office.1.address: 2001:db8::/32 ("2001:0db8::/32") is entry 0 of group "Office" already: one entry per address (keep one, with the comment and expiry you want)',
    ]);
    // the same address in two groups, and overlapping but different networks, are fine
    expect(issuesOf({ groups: { Trusted: [{ address: '192.0.2.1' }, { address: '192.0.2.0/24' }], Office: [{ address: '192.0.2.1' }] } })).toEqual([]);
  });

  it('a group named like an inherited property is diffed as the group it is', () => {
    expect(diffConfigs({ groups: { Trusted: [] } }, { groups: { Trusted: [], constructor: [{ address: '192.0.2.9' }] } })).toEqual([
      { path: 'groups.constructor', op: 'add', after: [{ address: '192.0.2.9' }] },
    ]);
    expect(diffConfigs({ groups: { Trusted: [], constructor: [{ address: '192.0.2.9' }] } }, { groups: { Trusted: [] } })).toEqual([
      { path: 'groups.constructor', op: 'remove', before: [{ address: '192.0.2.9' }] },
    ]);
  });
});
