/**
 * One address, one entry. A tryout (s13 #8) added 203.0.113.40, 203.0.113.40/32 and 203.0.113.40-203.0.113.40 to one
 * group: all three were stored as written, and groups.removeEntry {address: "203.0.113.40"} answered "removed" while
 * the other two still trusted the address. A network or range that holds one address (/32, /128, x-x) now has the
 * plain address as its canonical text (shared/ip.ts parseAddressSpec), which every lookup by address uses: adding it
 * again under another spelling updates the one entry, removing it by any spelling removes it (also an entry an older
 * relay stored as "x/32"), and a config holding two spellings of it in one group is refused, naming both entries.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../shared/config.ts';
import { ErrorCode } from '../shared/protocol.ts';
import { relayCode } from './helpers/smtp-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

const startRelay = manageRelayPerTest();
const CHECKS_OFF = { reverseDns: { mode: 'off' as const }, senderDomain: { mode: 'off' as const } };


describe('a network or range of one address is that address', () => {
  it('groups.addEntry: x, x/32 and x-x are one entry, stored as x; removing x removes it and the address may no longer relay', async () => {
    const t = await startRelay({ checks: CHECKS_OFF });
    const admin = await t.admin();
    const a = await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.40', comment: 'first' });
    expect(a).toMatchObject({ updated: false, entry: { address: '127.0.0.40' } });
    const b = await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.40/32', comment: 'second' });
    expect(b).toMatchObject({ updated: true, previous: { address: '127.0.0.40', comment: 'first' }, entry: { address: '127.0.0.40', comment: 'second' } });
    const c = await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.40 - 127.0.0.40', comment: 'third' });
    expect(c).toMatchObject({ updated: true, entry: { address: '127.0.0.40', comment: 'third' } });
    expect(t.relay.config.current.groups['Trusted']!.map((e) => e.address)).toEqual(['127.0.0.40']);
    expect(await relayCode(t.port, '127.0.0.40')).toBe(250);

    const r = await admin.call('groups.removeEntry', { group: 'Trusted', address: '127.0.0.40' });
    expect(r.removed).toMatchObject({ address: '127.0.0.40', comment: 'third' });
    expect(t.relay.config.current.groups['Trusted']).toEqual([]);
    expect(await relayCode(t.port, '127.0.0.40')).toBe(554);
    expect((await admin.callError('groups.removeEntry', { group: 'Trusted', address: '127.0.0.40/32' })).code).toBe(ErrorCode.NotFound);
  });

  it('IPv6: a /128 and a one-address range are the address', async () => {
    const t = await startRelay({ checks: CHECKS_OFF });
    const admin = await t.admin();
    await admin.call('groups.addEntry', { group: 'Office', address: '2001:DB8::7/128' });
    await admin.call('groups.addEntry', { group: 'Office', address: '2001:db8::7-2001:db8:0::7' });
    expect(t.relay.config.current.groups['Office']!.map((e) => e.address)).toEqual(['2001:db8::7']);
    expect((await admin.call('groups.removeEntry', { group: 'Office', address: '2001:db8::7' })).removed.address).toBe('2001:db8::7');
    expect(t.relay.config.current.groups['Office']).toEqual([]);
  });

  it('an entry an older relay stored as x/32 is found by x: removeEntry removes it, clients.trust sees it, clients.list names it as x', async () => {
    const t = await startRelay({
      checks: CHECKS_OFF,
      groups: { Trusted: [{ address: '127.0.0.41/32', comment: 'written as a /32' }], Dup: [{ address: '127.0.0.42-127.0.0.42', comment: 'a range of one' }] },
    });
    const admin = await t.admin();
    expect(await relayCode(t.port, '127.0.0.41')).toBe(250);
    const trust = await admin.call('clients.trust', { ip: '127.0.0.41' });
    expect(trust).toMatchObject({ alreadyTrusted: true, entry: { address: '127.0.0.41/32', comment: 'written as a /32' } });
    expect(t.relay.config.current.groups['Trusted']).toHaveLength(1);
    const listed = (await admin.call('clients.list', { ip: '127.0.0.41' })).clients[0]!;
    expect(listed.trustedBy).toMatchObject({ group: 'Trusted', address: '127.0.0.41' });

    expect((await admin.call('groups.removeEntry', { group: 'Trusted', address: '127.0.0.41' })).removed).toMatchObject({ address: '127.0.0.41/32' });
    expect(t.relay.config.current.groups['Trusted']).toEqual([]);
    expect(await relayCode(t.port, '127.0.0.41')).toBe(554);
    expect((await admin.call('groups.removeEntry', { group: 'Dup', address: '127.0.0.42' })).removed).toMatchObject({ comment: 'a range of one' });
    expect(t.relay.config.current.groups['Dup']).toEqual([]);
  });

  it('two spellings of one address in one group are refused by the config check, naming both entries (config.update: -32602)', async () => {
    const r = parseConfig({ groups: { Trusted: [{ address: '192.0.2.1' }, { address: '192.0.2.1/32' }, { address: '192.0.2.1-192.0.2.1' }] } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => `${i.key}: ${i.message}`)).toEqual([
      'groups.Trusted.1.address: 192.0.2.1 ("192.0.2.1/32") is entry 0 of group "Trusted" already: one entry per address (keep one, with the comment and expiry you want)',
      'groups.Trusted.2.address: 192.0.2.1 ("192.0.2.1-192.0.2.1") is entry 0 of group "Trusted" already: one entry per address (keep one, with the comment and expiry you want)',
    ]);

    const t = await startRelay({ checks: CHECKS_OFF });
    const admin = await t.admin();
    const g = await admin.call('config.get', {});
    const config = structuredClone(g.config);
    config.groups['Trusted'] = [{ address: '2001:db8::9' }, { address: '2001:db8::9/128', comment: 'again' }];
    const e = await admin.callError('config.update', { baseRevision: g.revision, config });
    expect(e.code).toBe(ErrorCode.InvalidParams);
    expect(e.message).toContain('2001:db8::9 ("2001:db8::9/128") is entry 0 of group "Trusted" already');
    expect(JSON.stringify(e.data)).toContain('"path":["config","groups","Trusted",1,"address"]');
    expect((await admin.call('config.get', {})).revision).toBe(g.revision);
  });
});
