/**
 * The Queue view's words for a delete or return (renderer/src/views/QueueView.tsx, its words in parts/queue-words.ts): the toast says a bounce went to
 * the sender only when the relay says one did (queue.delete's `returned`), and a pending return's row says its bounce
 * could not be stored only when the relay's last error says so (a return found pending at a restart is merely due).
 */
import { describe, expect, it } from 'vitest';
import type { QueueItem } from '../shared/protocol.ts';
import { doneText, pendingText } from '../renderer/src/views/parts/queue-words.ts';

const item = (over: Partial<QueueItem> = {}): QueueItem => ({
  id: '0MX1T15JP000OATGB',
  from: 'alice@sender.test',
  to: ['bob@example.test'],
  done: [],
  size: 100,
  receivedAt: 0,
  kind: 'message',
  status: 'deferred',
  attempts: 1,
  nextAttemptAt: 0,
  lastError: null,
  removal: null,
  ...over,
});

describe('the Queue view: what a delete or return says', () => {
  it('a return done says it was returned only when the relay sent a bounce', () => {
    expect(doneText(item(), true, true)).toBe('Deleted 0MX1T15JP000OATGB and returned it to alice@sender.test.');
    // a relay older than `returned`: its ok meant the bounce was stored
    expect(doneText(item(), true, undefined)).toBe('Deleted 0MX1T15JP000OATGB and returned it to alice@sender.test.');
    expect(doneText(item(), true, false)).toBe('Deleted 0MX1T15JP000OATGB. No bounce was sent: the delivery attempt that was under way reached every recipient, so there was nothing to return.');
    expect(doneText(item({ from: '' }), true, false)).toMatch(/No bounce was sent: its sender is empty/);
    expect(doneText(item(), false, undefined)).toBe('Deleted 0MX1T15JP000OATGB.');
  });

  it('a pending return not being delivered says its bounce could not be stored only when the relay said so', () => {
    const failed = 'the return to the sender the administrator asked for is not done yet: its bounce could not be stored (ENOSPC: no space left on device, open); it is tried again';
    expect(pendingText('bounce', { status: 'deferred', lastError: failed })).toMatch(/its bounce could not be stored yet/);
    // found pending at a restart (asked for during a delivery before it): no store failed
    const loaded = pendingText('bounce', { status: 'deferred', lastError: '127.0.0.1:9: connection refused' });
    expect(loaded).not.toMatch(/could not be stored/);
    expect(loaded).toMatch(/carries the return out at its next try; it is not delivered meanwhile/);
    expect(pendingText('bounce', { status: 'delivering', lastError: failed })).toMatch(/when the delivery attempt under way ends/);
    expect(pendingText('delete', { status: 'delivering', lastError: null })).toMatch(/^Being deleted/);
  });
});
