/**
 * The words the views put on the connection's states (renderer/src/hooks.ts): what the button that leaves a state
 * does, the live countdown's sentence, and a connection stopped by itself told from one the user ended.
 */
import { describe, expect, it } from 'vitest';
import type { ConnectionState } from '../shared/console-api.ts';
import { isStopped, leaveLabel, retryWords, secondsUntil } from '../renderer/src/hooks.ts';

const base: ConnectionState = {
  status: 'disconnected',
  profileId: null,
  profileName: null,
  message: 'Not connected. Pick a server and connect.',
  role: null,
  tokenName: null,
  certificate: null,
  pinnedFingerprint: null,
  attempt: 0,
  retryAt: null,
  relay: null,
  since: 0,
};

describe('connection words', () => {
  it('"Disconnect" only while connected; otherwise what the button really does', () => {
    expect(leaveLabel('connected')).toBe('Disconnect');
    expect(leaveLabel('reconnecting')).toBe('Stop trying');
    expect(leaveLabel('connecting')).toBe('Stop trying');
    expect(leaveLabel('authenticating')).toBe('Stop trying');
    expect(leaveLabel('fingerprint-unknown')).toBe('Cancel');
    expect(leaveLabel('auth-failed')).toBe('Dismiss');
    expect(leaveLabel('fingerprint-mismatch')).toBe('Dismiss');
    expect(leaveLabel('disconnected')).toBeNull();
  });

  it('counts down in whole seconds, never below zero, and words it only while a retry is due', () => {
    expect(secondsUntil(null, 1000)).toBeNull();
    expect(secondsUntil(10_000, 1000)).toBe(9);
    expect(secondsUntil(10_000, 1001)).toBe(9);
    expect(secondsUntil(10_000, 20_000)).toBe(0);
    const waiting = { ...base, status: 'reconnecting' as const, profileId: 'p', attempt: 3, retryAt: 10_000 };
    expect(retryWords(waiting, 9)).toBe('Trying again in 9 s (attempt 3).');
    expect(retryWords(waiting, 0)).toBe('Trying again now (attempt 3).');
    expect(retryWords({ ...waiting, status: 'auth-failed' }, 9)).toBeNull();
  });

  it('a connection stopped on its profile is not one the user ended', () => {
    expect(isStopped(base)).toBe(false);
    expect(isStopped({ ...base, profileId: 'p', profileName: 'Oops SMTP port' })).toBe(true);
    expect(isStopped({ ...base, status: 'auth-failed', profileId: 'p' })).toBe(false);
  });
});
