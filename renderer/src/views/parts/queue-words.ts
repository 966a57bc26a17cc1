/**
 * The Queue view's words for a delete or return of a queued message (QueueView.tsx), apart so that they can be tested
 * without a browser.
 */
import type { QueueItem } from '../../../../shared/protocol.ts';

/** The relay's last error of a message whose return is pending because its bounce could not be stored (spool.ts). */
export const RETURN_NOT_STORED = /^the return to the sender the administrator asked for is not done yet: its bounce could not be stored/;

/**
 * What a pending removal means, in the row and in the toast: during a delivery (not cut); or a return not being
 * delivered, which waits either because its bounce could not be stored (the relay's last error says so) or for its
 * next try (one found pending when the relay started, carried out in a moment).
 */
export function pendingText(removal: 'delete' | 'bounce', m: Pick<QueueItem, 'status' | 'lastError'>): string {
  if (m.status !== 'delivering' && removal === 'bounce') {
    return RETURN_NOT_STORED.test(m.lastError ?? '')
      ? 'Being returned to the sender: its bounce could not be stored yet (see the last error). The return is tried again at the next attempt; it is not delivered meanwhile.'
      : 'Being returned to the sender: the relay carries the return out at its next try; it is not delivered meanwhile.';
  }
  return removal === 'bounce'
    ? 'Being returned to the sender: it leaves the queue when the delivery attempt under way ends. Recipients that attempt reaches still get it; the bounce lists the others.'
    : 'Being deleted: it leaves the queue when the delivery attempt under way ends. Recipients that attempt reaches still get it.';
}

/** The toast for a delete or return done (pending: false); `returned` is the relay's word on the bounce (older relays: none). */
export function doneText(item: QueueItem, bounce: boolean, returned: boolean | undefined): string {
  if (!bounce) return `Deleted ${item.id}.`;
  if (returned === false) {
    const why = item.from === '' || item.kind === 'dsn' ? 'its sender is empty (<>), and a bounce is never bounced' : 'the delivery attempt that was under way reached every recipient, so there was nothing to return';
    return `Deleted ${item.id}. No bounce was sent: ${why}.`;
  }
  return `Deleted ${item.id} and returned it to ${item.from || 'its sender'}.`;
}
