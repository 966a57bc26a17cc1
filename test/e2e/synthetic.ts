/** Schema-shaped synthetic relay events for the console tests (a burst without an SMTP load generator). */
import type { RelayEvent } from '../../shared/events.ts';

/** synthetic but schema-shaped events: sessions of connect, mail, rcpt, accepted or rejected, disconnect */
export function syntheticEvents(startId: number, n: number, at = Date.now()): RelayEvent[] {
  const out: RelayEvent[] = [];
  for (let i = 0; i < n; i++) {
    const id = startId + i;
    const s = Math.floor(id / 5);
    const ip = `198.51.100.${s % 250}`;
    const sessionId = `burst${s}`;
    const base = { id, at: at + i / 10, sessionId, ip };
    switch (id % 5) {
      case 0:
        out.push({ ...base, kind: 'connect', hostname: null });
        break;
      case 1:
        out.push({ ...base, kind: 'mail', from: `user${s}@example.org` });
        break;
      case 2:
        out.push({ ...base, kind: 'rcpt', to: 'alice@example.com', local: true });
        break;
      case 3:
        out.push(
          s % 7 === 0
            ? { ...base, kind: 'rejected', stage: 'mail', rule: 'limits.messagesPerHour', code: 450, text: `4.7.1 Too much mail from ${ip}: 100 messages in the last hour (limit 100). Try again later.`, enforced: true }
            : { ...base, kind: 'accepted', queueId: `Q${id}`, size: 1200, from: `user${s}@example.org`, to: ['alice@example.com'] },
        );
        break;
      default:
        out.push({ ...base, kind: 'disconnect', messages: 1 });
    }
  }
  return out;
}
