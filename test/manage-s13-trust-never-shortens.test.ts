/**
 * "Trust this IP" (clients.trust) never takes trust away. A tryout (s13 #7) trusted an address that had a permanent
 * entry ("CEO laptop, permanent") with an expiry of tomorrow: the entry then expired tomorrow, its comment was
 * replaced, and the reply said alreadyTrusted: false. Trusting a permanent branch-office /24 with a date in the past
 * made that entry expire at once, so the office lost relaying (554), by an action called "trust".
 *
 * Now: an entry of the group that holds the whole address and lasts at least as long as asked means alreadyTrusted:
 * true and nothing written (no revision, no `trusted` event, comment and expiry as they were). An entry for exactly
 * the address that ends sooner than asked is lengthened, its comment kept (filled in only when it had none), and the
 * reply says `updated: true` with `previous`; a network that ends sooner is left alone and the address gets its own
 * entry. Real relay, real wss client on loopback, and SMTP from the addresses concerned.
 */
import { describe, expect, it } from 'vitest';
import { relayCode } from './helpers/smtp-client.ts';
import { manageRelayPerTest, type ManageRelay } from './helpers/wss-client.ts';

const startRelay = manageRelayPerTest();

// the fake clock's now is 2026-11-27T12:00:00Z
const TOMORROW = '2026-11-28T12:00:00.000Z';
const NEXT_WEEK = '2026-12-04T12:00:00.000Z';
const IN_AN_HOUR = '2026-11-27T13:00:00.000Z';
const YESTERDAY = '2026-11-26T12:00:00.000Z';

const CONFIG = {
  checks: { reverseDns: { mode: 'off' as const }, senderDomain: { mode: 'off' as const } },
  groups: {
    Trusted: [
      { address: '127.0.0.50', comment: 'CEO laptop, permanent', expiresAt: null },
      { address: '127.0.1.0/24', comment: 'branch office', expiresAt: null },
      { address: '127.0.0.60', comment: 'contractor', expiresAt: IN_AN_HOUR },
      { address: '127.0.2.0/24', comment: 'trade fair stand', expiresAt: IN_AN_HOUR },
      { address: '127.0.0.70', comment: 'old laptop', expiresAt: YESTERDAY },
    ],
  },
};


const entryOf = (t: ManageRelay, address: string) => t.relay.config.current.groups['Trusted']!.find((e) => e.address === address);

describe('clients.trust never shortens trust nor rewrites a comment', () => {
  it('a permanent entry asked for a day: alreadyTrusted, nothing written, still permanent with its comment', async () => {
    const t = await startRelay(CONFIG);
    const admin = await t.admin();
    const before = await admin.call('config.get', {});
    const r = await admin.call('clients.trust', { ip: '127.0.0.50', comment: 'Trusted from Live traffic', expiresAt: TOMORROW });
    expect(r).toMatchObject({
      revision: before.revision,
      group: 'Trusted',
      alreadyTrusted: true,
      updated: false,
      previous: null,
      entry: { address: '127.0.0.50', comment: 'CEO laptop, permanent', expiresAt: null },
    });
    expect(entryOf(t, '127.0.0.50')).toEqual({ address: '127.0.0.50', comment: 'CEO laptop, permanent', expiresAt: null });
    const after = await admin.call('config.get', {});
    expect(after.revision).toBe(before.revision);
    expect(after.config).toEqual(before.config);
    expect(t.events.filter((e) => e.kind === 'trusted')).toEqual([]);
    // and the day after tomorrow it still relays
    t.clock.advance(3 * 86_400_000);
    expect(await relayCode(t.port, '127.0.0.50')).toBe(250);
  });

  it('a network with a date in the past: the permanent branch office keeps relaying, its comment stays', async () => {
    const t = await startRelay(CONFIG);
    const admin = await t.admin();
    expect(await relayCode(t.port, '127.0.1.9')).toBe(250);
    const before = await admin.call('config.get', {});
    const r = await admin.call('clients.trust', { ip: '127.0.1.0/24', comment: 'x', expiresAt: YESTERDAY });
    expect(r).toMatchObject({ revision: before.revision, alreadyTrusted: true, updated: false, entry: { address: '127.0.1.0/24', comment: 'branch office', expiresAt: null } });
    // one address inside it, any expiry or none: covered by the network
    const one = await admin.call('clients.trust', { ip: '127.0.1.9' });
    expect(one).toMatchObject({ revision: before.revision, alreadyTrusted: true, entry: { address: '127.0.1.0/24' } });
    expect((await admin.call('config.get', {})).config).toEqual(before.config);
    expect(await relayCode(t.port, '127.0.1.9')).toBe(250);
  });

  it('an exact entry that ends sooner is lengthened, never shortened; its comment kept; updated and previous say what it was', async () => {
    const t = await startRelay(CONFIG);
    const admin = await t.admin();
    const before = await admin.call('config.get', {});
    const r = await admin.call('clients.trust', { ip: '127.0.0.60', comment: 'Trusted from Live traffic', expiresAt: NEXT_WEEK });
    expect(r.revision).toBe(before.revision + 1);
    expect(r).toMatchObject({
      alreadyTrusted: true,
      updated: true,
      previous: { address: '127.0.0.60', comment: 'contractor', expiresAt: IN_AN_HOUR },
      entry: { address: '127.0.0.60', comment: 'contractor', expiresAt: NEXT_WEEK },
    });
    expect(entryOf(t, '127.0.0.60')).toMatchObject({ comment: 'contractor', expiresAt: NEXT_WEEK });
    expect(t.relay.config.current.groups['Trusted']!.filter((e) => e.address === '127.0.0.60')).toHaveLength(1);
    // asked again for less: nothing (it lasts longer than asked)
    const again = await admin.call('clients.trust', { ip: '127.0.0.60', expiresAt: TOMORROW });
    expect(again).toMatchObject({ revision: r.revision, alreadyTrusted: true, updated: false, entry: { expiresAt: NEXT_WEEK } });
    // and the same request twice: the second changes nothing (idempotent)
    const twice = await admin.call('clients.trust', { ip: '127.0.0.60', comment: 'Trusted from Live traffic', expiresAt: NEXT_WEEK });
    expect(twice).toMatchObject({ revision: r.revision, alreadyTrusted: true, updated: false });
    // for ever (expiresAt null, or left out) is longer than any date
    const ever = await admin.call('clients.trust', { ip: '127.0.0.60' });
    expect(ever).toMatchObject({ alreadyTrusted: true, updated: true, previous: { expiresAt: NEXT_WEEK }, entry: { comment: 'contractor', expiresAt: null } });
    t.clock.advance(30 * 86_400_000);
    expect(await relayCode(t.port, '127.0.0.60')).toBe(250);
  });

  it('an expired exact entry is made live again (not alreadyTrusted), its comment kept; an empty comment is filled in', async () => {
    const t = await startRelay(CONFIG);
    const admin = await t.admin();
    expect(await relayCode(t.port, '127.0.0.70')).not.toBe(250);
    const r = await admin.call('clients.trust', { ip: '127.0.0.70', comment: 'Trusted from Live traffic', expiresAt: TOMORROW });
    expect(r).toMatchObject({
      alreadyTrusted: false,
      updated: true,
      previous: { comment: 'old laptop', expiresAt: YESTERDAY },
      entry: { address: '127.0.0.70', comment: 'old laptop', expiresAt: TOMORROW },
    });
    expect(await relayCode(t.port, '127.0.0.70')).toBe(250);
    expect(t.events.filter((e) => e.kind === 'trusted')).toEqual([expect.objectContaining({ address: '127.0.0.70', group: 'Trusted' })]);

    await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.71', comment: null, expiresAt: YESTERDAY });
    const filled = await admin.call('clients.trust', { ip: '127.0.0.71', comment: 'why', expiresAt: TOMORROW });
    expect(filled).toMatchObject({ alreadyTrusted: false, updated: true, entry: { comment: 'why', expiresAt: TOMORROW } });
  });

  it('a network that ends sooner is left as it is; the address gets its own entry for as long as asked', async () => {
    const t = await startRelay(CONFIG);
    const admin = await t.admin();
    const r = await admin.call('clients.trust', { ip: '127.0.2.5', comment: 'Trusted from Live traffic', expiresAt: TOMORROW });
    expect(r).toMatchObject({ alreadyTrusted: false, updated: false, previous: null, entry: { address: '127.0.2.5', comment: 'Trusted from Live traffic', expiresAt: TOMORROW } });
    expect(entryOf(t, '127.0.2.0/24')).toEqual({ address: '127.0.2.0/24', comment: 'trade fair stand', expiresAt: IN_AN_HOUR });
    t.clock.advance(2 * 3600_000);
    expect(await relayCode(t.port, '127.0.2.5')).toBe(250);
    expect(await relayCode(t.port, '127.0.2.6')).not.toBe(250);
  });
});
