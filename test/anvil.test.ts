/** relay/clients/anvil.ts with an injected clock: rolling windows, blocks, forgiveness, ageing. */
import { describe, expect, it } from 'vitest';
import { Anvil, WINDOW_CAP } from '../relay/clients/anvil.ts';

function setup(authWindowMin = 10) {
  let now = Date.parse('2026-11-27T12:00:00Z');
  let authWindow = authWindowMin * 60_000;
  const anvil = new Anvil({ now: () => now, authWindowMs: () => authWindow });
  return {
    anvil,
    advance: (ms: number) => void (now += ms),
    setAuthWindow: (min: number) => void (authWindow = min * 60_000),
    now: () => now,
  };
}

describe('Anvil', () => {
  it('counts connections per key and never below zero', () => {
    const { anvil } = setup();
    expect(anvil.connectionOpened('192.0.2.1')).toBe(1);
    expect(anvil.connectionOpened('192.0.2.1')).toBe(2);
    expect(anvil.connectionOpened('192.0.2.2')).toBe(1);
    anvil.connectionClosed('192.0.2.1');
    anvil.connectionClosed('192.0.2.1');
    anvil.connectionClosed('192.0.2.1');
    expect(anvil.connections('192.0.2.1')).toBe(0);
    anvil.connectionClosed('never.seen');
    expect(anvil.connections('never.seen')).toBe(0);
  });

  it('messages and unknown recipients roll over a 60-minute window', () => {
    const { anvil, advance } = setup();
    anvil.messageAccepted('k');
    advance(30 * 60_000);
    anvil.messageAccepted('k');
    expect(anvil.unknownRecipient('k')).toBe(1);
    expect(anvil.messagesLastHour('k')).toBe(2);
    advance(30 * 60_000 - 1);
    expect(anvil.messagesLastHour('k')).toBe(2);
    advance(1);
    expect(anvil.messagesLastHour('k')).toBe(1);
    expect(anvil.unknownRecipientsLastHour('k')).toBe(1);
    advance(30 * 60_000);
    expect(anvil.messagesLastHour('k')).toBe(0);
    expect(anvil.unknownRecipientsLastHour('k')).toBe(0);
  });

  it('AUTH failures count in the configured window, read at each question', () => {
    const { anvil, advance, setAuthWindow } = setup(10);
    anvil.authFailure('k');
    advance(9 * 60_000);
    expect(anvil.authFailure('k')).toBe(2);
    advance(60_000);
    expect(anvil.authFailure('k')).toBe(2);
    setAuthWindow(60);
    expect(anvil.state('k')?.authFailuresInWindow).toBe(3);
  });

  it('a block holds until its end, then is forgotten; unblock and forgive clear what leads to refusals', () => {
    const { anvil, advance, now } = setup();
    anvil.block('k', { rule: 'limits.unknownRecipients', since: now(), until: now() + 60_000, reason: 'too many unknown recipients' });
    expect(anvil.blocked('k')?.rule).toBe('limits.unknownRecipients');
    advance(59_999);
    expect(anvil.blocked('k')).not.toBeNull();
    advance(1);
    expect(anvil.blocked('k')).toBeNull();

    anvil.unknownRecipient('k');
    anvil.authFailure('k');
    anvil.messageAccepted('k');
    anvil.block('k', { rule: 'limits.authFailures', since: now(), until: now() + 60_000, reason: 'too many failed logins' });
    expect(anvil.unblock('k')).toBe(true);
    expect(anvil.state('k')).toMatchObject({ blocked: null, unknownRecipientsLastHour: 0, authFailuresInWindow: 0, messagesLastHour: 1 });
    expect(anvil.unblock('k')).toBe(false);
    anvil.forgive('k');
    expect(anvil.messagesLastHour('k')).toBe(0);
  });

  it('keeps the last 10 rejections, and sweep forgets clients with nothing left', () => {
    const { anvil, advance, now } = setup();
    for (let i = 0; i < 12; i++) anvil.recordRejection('k', { at: now(), rule: 'relay.access', code: 554, text: `#${i}`, enforced: true });
    expect(anvil.state('k')?.recentRejections.map((r) => r.text)).toEqual(Array.from({ length: 10 }, (_, i) => `#${i + 2}`));
    anvil.connectionOpened('open');
    anvil.messageAccepted('m');
    advance(60 * 60_000 + 1);
    anvil.sweep();
    expect(anvil.list().map((s) => s.key).sort()).toEqual(['open']);
    anvil.connectionClosed('open');
    anvil.sweep();
    expect(anvil.size).toBe(0);
  });

  it('a window holds at most WINDOW_CAP entries and still counts the newest', () => {
    const { anvil, advance } = setup();
    for (let i = 0; i < WINDOW_CAP + 10; i++) anvil.messageAccepted('flood');
    expect(anvil.messagesLastHour('flood')).toBe(WINDOW_CAP);
    advance(60 * 60_000);
    anvil.sweep();
    expect(anvil.messagesLastHour('flood')).toBe(0);
    expect(anvil.size).toBe(0);
  });
});
