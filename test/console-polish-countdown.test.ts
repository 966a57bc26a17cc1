/**
 * The connection countdown in words (renderer/src/hooks.ts): seconds up to 90 s, then minutes and seconds, so a
 * relay's lockout reads "4 min 57 s" in the status bar and on the server card instead of "297 s".
 */
import { describe, expect, it } from 'vitest';
import type { ConnectionState } from '../shared/console-api.ts';
import { countdownWords, retryWords } from '../renderer/src/hooks.ts';

const waiting: ConnectionState = {
  status: 'reconnecting',
  profileId: 'p',
  profileName: 'lab',
  message: 'Too many failed logins from this address: the relay locked it out.',
  role: null,
  tokenName: null,
  certificate: null,
  pinnedFingerprint: null,
  attempt: 2,
  retryAt: 0,
  relay: null,
  since: 0,
};

describe('countdown wording', () => {
  it('seconds up to 90 s', () => {
    expect(countdownWords(0)).toBe('0 s');
    expect(countdownWords(9)).toBe('9 s');
    expect(countdownWords(60)).toBe('60 s');
    expect(countdownWords(90)).toBe('90 s');
  });

  it('minutes and seconds above 90 s, whole minutes without "0 s"', () => {
    expect(countdownWords(91)).toBe('1 min 31 s');
    expect(countdownWords(297)).toBe('4 min 57 s');
    expect(countdownWords(300)).toBe('5 min');
    expect(countdownWords(3725)).toBe('62 min 5 s');
  });

  it('the retry sentence uses it', () => {
    expect(retryWords(waiting, 297)).toBe('Trying again in 4 min 57 s (attempt 2).');
    expect(retryWords(waiting, 13)).toBe('Trying again in 13 s (attempt 2).');
    expect(retryWords(waiting, 0)).toBe('Trying again now (attempt 2).');
  });
});
