/**
 * Pure logic of the trusted-groups and clients views (renderer/src/views/parts): address validation as typed,
 * expiry presets and an entry's expiry in words.
 */
import { describe, expect, it } from 'vitest';
import { checkAddress } from '../renderer/src/views/parts/address.ts';
import { expiryFor, expiryState } from '../renderer/src/views/parts/expiry.ts';

const NOW = Date.parse('2026-11-27T12:00:00Z');

describe('checkAddress', () => {
  it('accepts what people type and says what will be stored', () => {
    expect(checkAddress(' 192.0.2.7 ', [])).toMatchObject({ state: 'ok', text: '192.0.2.7', covers: 'one address', duplicate: false });
    expect(checkAddress('192.0.2.0 / 24', [])).toMatchObject({ state: 'ok', text: '192.0.2.0/24', covers: '256 addresses' });
    expect(checkAddress('192.0.2.10-192.0.2.20', [])).toMatchObject({ state: 'ok', covers: '11 addresses' });
    expect(checkAddress('2001:db8::/48', [])).toMatchObject({ state: 'ok', covers: 'an IPv6 /48 network' });
    expect(checkAddress('::ffff:192.0.2.1', [])).toMatchObject({ state: 'ok', text: '192.0.2.1' });
  });
  it('refuses bad input with the shared parser\'s words', () => {
    expect(checkAddress('', [])).toEqual({ state: 'empty' });
    const a = checkAddress('192.0.2.1/24', []);
    expect(a.state).toBe('invalid');
    expect(a.state === 'invalid' && a.error).toMatch(/host bits set; did you mean 192.0.2.0\/24/);
    const b = checkAddress('192.168.010.1', []);
    expect(b.state === 'invalid' && b.error).toMatch(/leading zeros/);
  });
  it('notices an address already in the group, in any spelling', () => {
    expect(checkAddress('2001:DB8:0::1', ['2001:db8::1'])).toMatchObject({ state: 'ok', duplicate: true });
  });
});

describe('expiry', () => {
  it('turns presets into ISO instants', () => {
    expect(expiryFor('1h', '', NOW)).toEqual({ ok: true, expiresAt: '2026-11-27T13:00:00.000Z' });
    expect(expiryFor('1d', '', NOW)).toEqual({ ok: true, expiresAt: '2026-11-28T12:00:00.000Z' });
    expect(expiryFor('1w', '', NOW)).toEqual({ ok: true, expiresAt: '2026-12-04T12:00:00.000Z' });
    expect(expiryFor('never', '', NOW)).toEqual({ ok: true, expiresAt: null });
  });
  it('takes a local date and refuses the past', () => {
    const r = expiryFor('date', '2030-01-02T03:04', NOW);
    expect(r.ok).toBe(true);
    expect(r.ok && Date.parse(r.expiresAt!)).toBe(new Date(2030, 0, 2, 3, 4).getTime());
    expect(expiryFor('date', '2020-01-01T00:00', NOW)).toMatchObject({ ok: false });
    expect(expiryFor('date', '', NOW)).toMatchObject({ ok: false });
  });
  it('says how an entry stands', () => {
    expect(expiryState(null, NOW)).toEqual({ expired: false, text: 'never expires', soon: false });
    expect(expiryState('2026-11-27T09:00:00Z', NOW)).toEqual({ expired: true, text: 'expired 3 h ago', soon: false });
    expect(expiryState('2026-11-27T17:00:00Z', NOW)).toEqual({ expired: false, text: 'expires in 5 h', soon: true });
    expect(expiryState('2026-12-27T17:00:00Z', NOW)).toMatchObject({ expired: false, soon: false });
  });
});
