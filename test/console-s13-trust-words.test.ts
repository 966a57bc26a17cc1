/**
 * The console's words and Undo after "Trust this IP" now that clients.trust never shortens an entry and may lengthen
 * one (relay session 13): a lengthened entry is said as such (was until X, now until Y), and Undo puts the entry back
 * as it was rather than removing it; a new entry's Undo removes it; nothing changed, nothing to undo.
 */
import { describe, expect, it } from 'vitest';
import { trustedMessage, trustUndo, type TrustReply } from '../renderer/src/state/summary.ts';
import { fmtDateTime } from '../renderer/src/components/format.ts';

const base: TrustReply = { group: 'Trusted', entry: { address: '192.0.2.7', expiresAt: null }, alreadyTrusted: false, unblocked: false };

describe('after Trust this IP', () => {
  it('a new entry: said as trusted, Undo removes it', () => {
    expect(trustedMessage('192.0.2.7', base, true)).toMatch(/^Trusted 192\.0\.2\.7 in "Trusted" with no expiry: from its next command/);
    expect(trustUndo(base)).toEqual({ method: 'groups.removeEntry', params: { group: 'Trusted', address: '192.0.2.7' } });
  });

  it('trusted already for long enough: said so, nothing to undo (a relay before `updated` answers the same)', () => {
    const r = { ...base, alreadyTrusted: true };
    expect(trustedMessage('192.0.2.7', r, true)).toBe('192.0.2.7 is already trusted (group "Trusted", entry 192.0.2.7).');
    expect(trustUndo(r)).toBeNull();
    expect(trustUndo({ ...r, updated: false, previous: null })).toBeNull();
  });

  it('trusted for less long: lengthened, said with both ends, and Undo restores the old expiry and comment', () => {
    const until = '2026-12-01T08:00:00.000Z';
    const was = '2026-11-28T08:00:00.000Z';
    const r: TrustReply = {
      ...base,
      alreadyTrusted: true,
      updated: true,
      entry: { address: '192.0.2.7', comment: 'CEO laptop', expiresAt: until },
      previous: { address: '192.0.2.7', comment: 'CEO laptop', expiresAt: was },
    };
    expect(trustedMessage('192.0.2.7', r, true)).toBe(
      `192.0.2.7 was trusted until ${fmtDateTime(was)}; now until ${fmtDateTime(until)} (group "Trusted", entry 192.0.2.7, its comment kept).`,
    );
    expect(trustUndo(r)).toEqual({ method: 'groups.addEntry', params: { group: 'Trusted', address: '192.0.2.7', comment: 'CEO laptop', expiresAt: was } });
  });

  it('an expired entry brought back: said as trusted, Undo puts the expired entry back (its record kept)', () => {
    const r: TrustReply = { ...base, updated: true, previous: { address: '192.0.2.7', comment: 'old', expiresAt: '2020-01-01T00:00:00Z' } };
    expect(trustedMessage('192.0.2.7', r, false)).toMatch(/^Trusted 192\.0\.2\.7 in "Trusted" with no expiry/);
    expect(trustUndo(r)).toEqual({ method: 'groups.addEntry', params: { group: 'Trusted', address: '192.0.2.7', comment: 'old', expiresAt: '2020-01-01T00:00:00Z' } });
  });
});
