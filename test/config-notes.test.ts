/**
 * Valid config changes that are probably not what the admin meant are noted in the log beside the change: a group
 * entry that has already expired (it can never match), and every address in an exempt group (nobody is limited).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../shared/config.ts';
import { configNotes } from '../relay/store/config-notes.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

const NOW = Date.parse('2026-11-27T12:00:00Z');
function config(input: Record<string, unknown>): Config {
  const r = parseConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}
let t: TestRelay | null = null;
afterEach(async () => {
  await t?.stop();
  t = null;
});

describe('configNotes', () => {
  it('a new entry that expired already; every address in an exempt group; nothing for what was there before', () => {
    const before = config({ groups: { Trusted: [{ address: '192.0.2.1', expiresAt: '2020-01-01T00:00:00Z' }], Load: [] } });
    const after = config({
      groups: {
        Trusted: [{ address: '192.0.2.1', expiresAt: '2020-01-01T00:00:00Z' }, { address: '192.0.2.2', expiresAt: '2026-11-27T11:59:59Z' }, { address: '192.0.2.3', expiresAt: '2027-01-01T00:00:00Z' }],
        Load: [{ address: '0.0.0.0/0' }],
      },
      limits: { exemptGroups: ['Trusted', 'Load'] },
    });
    expect(configNotes(before, after, NOW)).toEqual([
      'note: groups.Trusted entry 192.0.2.2 expired already (2026-11-27T11:59:59Z): it matches no client',
      'note: groups.Load holds 0.0.0.0/0, every IPv4 address, and "Load" is in limits.exemptGroups: no such client is held to the per-IP limits or the failed-login block any more',
    ]);
    // the same config again: nothing new to note
    expect(configNotes(after, after, NOW)).toEqual([]);
    // ::/0 in a group not exempt: no note (it is not refused either: it relays for nobody, limits nobody less)
    expect(configNotes(before, config({ groups: { Trusted: [], Other: [{ address: '::/0' }] } }), NOW)).toEqual([]);
  });

  it('a group of 50,000 entries is compared entry by entry once, not each against all (the test ends, with one note)', () => {
    const entries = Array.from({ length: 50_000 }, (_, i) => ({ address: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` }));
    const before = config({ groups: { Trusted: entries } });
    const after = config({ groups: { Trusted: [...entries, { address: '192.0.2.9', expiresAt: '2020-01-01T00:00:00Z' }] } });
    expect(configNotes(before, after, NOW)).toEqual(['note: groups.Trusted entry 192.0.2.9 expired already (2020-01-01T00:00:00Z): it matches no client']);
  });

  it('the relay logs the notes with the change', async () => {
    const lines: string[] = [];
    t = await startTestRelay({}, { relay: { log: (l) => lines.push(l) } });
    t.relay.config.modify((d) => void (d.groups['Trusted'] = [{ address: '192.0.2.9', expiresAt: '2026-01-01T00:00:00Z' }]), { by: 'test', source: 'test' });
    expect(lines).toContain('note: groups.Trusted entry 192.0.2.9 expired already (2026-01-01T00:00:00Z): it matches no client');
  });
});
