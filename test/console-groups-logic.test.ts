/**
 * The trusted-groups view's pure logic (renderer/src/views/parts): which entries are wide enough to warn about and
 * what the warning says for a group that may relay or is exempt from limits; what replacing an entry already in the
 * group changes; a new group's name beside one differing only in case; and when the view refreshes its time (at each
 * entry's expiry, not on a fixed tick).
 */
import { describe, expect, it } from 'vitest';
import type { AddressSpec } from '../shared/ip.ts';
import { checkAddress, checkGroupName, isWide, nextRefreshAt, replaceNote, wideEntryWarning } from '../renderer/src/views/parts/address.ts';
import { coversEverything as isEverything } from '../shared/ip.ts';

const NOW = Date.parse('2026-11-29T09:00:00Z');
const spec = (text: string): AddressSpec => {
  const c = checkAddress(text, []);
  if (c.state !== 'ok') throw new Error(`${text}: ${c.state}`);
  return c.spec;
};
const RELAY = { relays: true, exempt: true };
const EXEMPT = { relays: false, exempt: true };
const UNUSED = { relays: false, exempt: false };

describe('wide entries', () => {
  it('are more than 65,536 IPv4 addresses, or wider than an IPv6 /48; every address always', () => {
    for (const w of ['0.0.0.0/0', '10.0.0.0/8', '192.168.0.0/15', '10.0.0.0-10.1.0.0', '::/0', '2001:db8::/32', '2001:db8::/47', '2001:db8::-2001:db8:1::', '::ffff:0.0.0.0/96']) {
      expect(isWide(spec(w)), w).toBe(true);
    }
    for (const n of ['192.0.2.7', '192.0.2.0/24', '192.168.0.0/16', '10.0.0.0-10.0.255.255', '2001:db8::1', '2001:db8::/48', '2001:db8::/64', '2001:db8::-2001:db8:0:ffff:ffff:ffff:ffff:ffff']) {
      expect(isWide(spec(n)), n).toBe(false);
    }
    expect(isEverything(spec('0.0.0.0/0'))).toBe(true);
    expect(isEverything(spec('::/0'))).toBe(true);
    expect(isEverything(spec('0.0.0.0-255.255.255.255'))).toBe(true);
    expect(isEverything(spec('0.0.0.0/1'))).toBe(false);
  });

  it('in a group that may relay: says that any of them may relay mail to any domain; 0.0.0.0/0 (an open relay) is refused', () => {
    const all = wideEntryWarning(spec('0.0.0.0/0'), 'Trusted', RELAY)!;
    expect(all.relays).toBe(true);
    expect(all.hint).toBe(
      '"Trusted" may relay: any IPv4 address on the internet (all 4,294,967,296) would relay mail to any domain through this server (an open relay). The relay refuses it: let those clients log in (SMTP AUTH), or type their own networks.',
    );
    expect(all.refused).toBe('The relay refuses 0.0.0.0/0 in "Trusted": it would make the server an open relay.');
    expect(wideEntryWarning(spec('0.0.0.0-255.255.255.255'), 'Trusted', RELAY)!.refused).toMatch(/^The relay refuses/);
    // half the internet is past the relay's limit on the relaying groups together (more than a /8 of public IPv4):
    // refused as the relay refuses it, by the same shared rule
    expect(wideEntryWarning(spec('0.0.0.0/1'), 'Trusted', RELAY)!.refused).toBe(
      'The relay refuses 0.0.0.0/1 in "Trusted": the groups that may relay would hold 2,092,957,696 public IPv4 addresses, more than a /8 (16,777,216).',
    );
    // ...and a /9 that is fine alone is refused when the relaying groups already hold another /9 of public addresses
    expect(wideEntryWarning(spec('18.0.0.0/9'), 'Trusted', RELAY)!.refused).toBeNull();
    expect(wideEntryWarning(spec('18.0.0.0/9'), 'Trusted', RELAY, [spec('18.128.0.0/9'), spec('19.0.0.0/16')])!.refused).toMatch(/^The relay refuses 18\.0\.0\.0\/9 in "Trusted": the groups that may relay would hold 16,842,752 public IPv4 addresses/);
    // only where it may relay: exempt-only, it is a (confirmed) warning
    expect(wideEntryWarning(spec('0.0.0.0/0'), 'Office', EXEMPT)!.refused).toBeNull();

    const eight = wideEntryWarning(spec('10.0.0.0/8'), 'Partners', { relays: true, exempt: false })!;
    expect(eight.hint).toBe('"Partners" may relay: any of the 16,777,216 addresses in 10.0.0.0/8 may relay mail to any domain through this server.');
    expect(eight.title).toBe('Let 10.0.0.0/8 relay mail through this server?');
    expect(eight.consequences.join(' ')).not.toMatch(/per-IP limits/);
    expect(wideEntryWarning(spec('2001:db8::/32'), 'Trusted', RELAY)!.hint).toMatch(/any address in 2001:db8::\/32 \(an IPv6 \/32 network\) may relay mail/);
    expect(wideEntryWarning(spec('::/0'), 'Trusted', RELAY)!.hint).toMatch(/any IPv6 address on the internet would relay mail .*\(an open relay\)\. The relay refuses it/);
  });

  it('in a group only exempt from limits: says they skip the per-IP limits instead', () => {
    const w = wideEntryWarning(spec('10.0.0.0/8'), 'Office', EXEMPT)!;
    expect(w.relays).toBe(false);
    expect(w.hint).toBe('"Office" is exempt from limits: any of the 16,777,216 addresses in 10.0.0.0/8 would skip the per-IP limits.');
    expect(w.title).toBe('Exempt 10.0.0.0/8 from the per-IP limits?');
    expect(w.consequences.join(' ')).not.toMatch(/relay/);
  });

  it('are not warned about where nothing changes for mail, nor when narrow', () => {
    expect(wideEntryWarning(spec('0.0.0.0/0'), 'Spare', UNUSED)).toBeNull();
    expect(wideEntryWarning(spec('192.0.2.0/24'), 'Trusted', RELAY)).toBeNull();
    expect(wideEntryWarning(spec('2001:db8::/48'), 'Trusted', RELAY)).toBeNull();
  });
});

describe('an address already in the group', () => {
  const entry = { address: '127.0.0.6', comment: 'sales laptop', expiresAt: new Date(NOW + 57 * 60_000).toISOString(), addedBy: 'admin', addedAt: null };

  it('is found in any spelling, with its entry', () => {
    const c = checkAddress(' 127.0.0.6 ', [{ address: '192.0.2.0/24' }, entry]);
    expect(c).toMatchObject({ state: 'ok', duplicate: true, existingEntry: entry });
    expect(checkAddress('::ffff:127.0.0.6', [entry])).toMatchObject({ duplicate: true, existingEntry: entry });
    expect(checkAddress('127.0.0.7', [entry])).toMatchObject({ duplicate: false, existingEntry: null });
  });

  it('says what the entry is now and what Replace makes it', () => {
    expect(replaceNote('Trusted', entry, { comment: null, expiresAt: null }, NOW)).toEqual({
      text: 'already in "Trusted" (expires in 57 min, comment "sales laptop"); Replace makes it: never expires, no comment',
      changes: true,
    });
    const expired = { ...entry, expiresAt: new Date(NOW - 3 * 3_600_000).toISOString(), comment: null };
    expect(replaceNote('Trusted', expired, { comment: 'back', expiresAt: new Date(NOW + 86_400_000).toISOString() }, NOW).text).toBe(
      'already in "Trusted" (expired 3 h ago, no comment); Replace makes it: expires in 24 h, comment "back"',
    );
  });

  it('says it replaces the comment and expiry while the expiry typed is not valid yet', () => {
    expect(replaceNote('Trusted', entry, null, NOW)).toEqual({
      text: 'already in "Trusted" (expires in 57 min, comment "sales laptop"); Replace sets its comment and expiry to the ones here',
      changes: true,
    });
  });

  it('has nothing to replace when the comment and expiry are the same', () => {
    const n = replaceNote('Trusted', { address: '192.0.2.0/24', comment: 'office' }, { comment: 'office', expiresAt: null }, NOW);
    expect(n).toEqual({ text: 'already in "Trusted" with this comment and expiry (never expires, comment "office"): nothing to change', changes: false });
  });
});

describe('a new group name', () => {
  it('refuses a bad or taken name, and warns about one differing only in case', () => {
    expect(checkGroupName('', ['Trusted'])).toEqual({ error: null, warning: null });
    expect(checkGroupName('Office', ['Trusted'])).toEqual({ error: null, warning: null });
    expect(checkGroupName(' Trusted ', ['Trusted']).error).toBe('a group with this name exists');
    expect(checkGroupName('-x', ['Trusted']).error).toMatch(/starting with a letter or digit/);
    const w = checkGroupName('trusted', ['Trusted']);
    expect(w.error).toBeNull();
    expect(w.warning).toBe(
      'A group "Trusted" already exists. Group names are case-sensitive, so "trusted" would be a second group, used by no rule until you add it to one in Security options. To add addresses to "Trusted", use its card below.',
    );
  });
});

describe('when the groups view refreshes its time', () => {
  it('at the soonest expiry still ahead, not on the next fixed tick', () => {
    // an entry expires 95 s after the render: at that moment, not at the next 30 s tick after it (120 s)
    expect(nextRefreshAt(NOW, [NOW + 3_600_000, NOW + 95_000], 30_000)).toBe(NOW + 30_000);
    expect(nextRefreshAt(NOW + 90_000, [NOW + 3_600_000, NOW + 95_000], 30_000)).toBe(NOW + 91_000);
    expect(nextRefreshAt(NOW, [NOW + 3_600_000, NOW + 95_000], 300_000)).toBe(NOW + 95_000);
    expect(nextRefreshAt(NOW, [NOW + 5 * 60_000], 30 * 60_000)).toBe(NOW + 5 * 60_000);
    // past deadlines are done; none ahead: the regular tick
    expect(nextRefreshAt(NOW, [NOW - 1000, NOW], 30_000)).toBe(NOW + 30_000);
    expect(nextRefreshAt(NOW, [], 30_000)).toBe(NOW + 30_000);
  });

  it('every second in the last minute before an expiry (a countdown in seconds), then exactly at it', () => {
    expect(nextRefreshAt(NOW, [NOW + 59_000], 30_000)).toBe(NOW + 1000);
    expect(nextRefreshAt(NOW, [NOW + 400], 30_000)).toBe(NOW + 400);
    expect(nextRefreshAt(NOW, [NOW + 61_000], 30_000)).toBe(NOW + 30_000);
    expect(nextRefreshAt(NOW, [NOW + 45_000], 60_000)).toBe(NOW + 1000);
  });
});
