/**
 * The lines an administrator looks for on the relay's standard output (journald, a terminal) when something is wrong
 * with more than one message: a client blocked (a password-guessing or recipient-harvesting attack) and DNS lookups
 * failing (the DNS checks tell clients 4xx, and the queue defers relayed mail, until DNS answers). Each was only in
 * the event history; a tryout found nothing said on stdout while every sender was deferred. Read from the bus, so the
 * SMTP path pays one comparison per event. Bounded: at most BLOCK_LINES block lines and one DNS line a minute; what
 * was not said one by one is counted in a line of its own once the minute is over (flush(), from the relay's
 * minute sweep, or the next such event), with the time it began.
 */
import type { RelayEvent } from '../../shared/events.ts';
import type { EventBus } from './bus.ts';

const MINUTE = 60_000;
export const BLOCK_LINES = 10;
/** a deferral whose reason is a failed DNS lookup (the queue's route: MX, A, AAAA) */
const DNS_REASON = /^(?:DNS )?(?:MX|A|AAAA) lookup for \S+ (?:timed out|failed)/;

const hhmmss = (ms: number) => new Date(ms).toISOString().slice(11, 19) + 'Z';

export class FaultLog {
  private blocks = { start: -Infinity, lines: 0, unsaid: 0, unsaidSince: 0 };
  private dns = { lastAt: -Infinity, unsaid: 0, unsaidSince: 0, last: '' };
  private readonly unsubscribe: () => void;

  constructor(
    bus: EventBus,
    private readonly log: (line: string) => void,
    private readonly now: () => number,
  ) {
    this.unsubscribe = bus.subscribe((e) => {
      if (e.kind === 'rejected') this.rejected(e);
      else if (e.kind === 'deferred' && DNS_REASON.test(e.reason)) this.dnsFailed(e.reason, `the queue deferred ${e.queueId} (to ${e.to.join(', ')}; next try ${new Date(e.nextAttemptAt).toISOString()})`);
    });
  }

  close(): void {
    this.unsubscribe();
  }

  /** Says what was counted but not said once its minute is over (the relay calls this every minute). */
  flush(): void {
    const at = this.now();
    const b = this.blocks;
    if (b.unsaid > 0 && at - b.start >= MINUTE) {
      this.log(`blocked: ${b.unsaid} more client${b.unsaid === 1 ? '' : 's'} blocked since ${hhmmss(b.unsaidSince)}, not shown one by one (the console's Clients view, or clients.list with blockedOnly, has them all)`);
      b.unsaid = 0;
    }
    const d = this.dns;
    if (d.unsaid > 0 && at - d.lastAt >= MINUTE) {
      this.log(`warning: ${d.unsaid} more DNS lookup${d.unsaid === 1 ? '' : 's'} failed since ${hhmmss(d.unsaidSince)} (the last: ${d.last})`);
      d.unsaid = 0;
    }
  }

  private rejected(e: Extract<RelayEvent, { kind: 'rejected' }>): void {
    if (e.enforced && !e.blocked && e.code === 421 && (e.rule === 'limits.authFailures' || e.rule === 'limits.unknownRecipients')) this.blocked(e);
    if (e.dns !== undefined) {
      const told = e.enforced ? `${e.rule} told ${e.ip ?? 'the client'} ${e.code} (try again later)` : `${e.rule} would have told ${e.ip ?? 'the client'} ${e.code} (monitor mode: it was let through)`;
      this.dnsFailed(e.dns, told);
    }
  }

  /** a block began: the limit's own refusal (the block's later refusals carry `blocked`) */
  private blocked(e: Extract<RelayEvent, { kind: 'rejected' }>): void {
    this.flush();
    const at = this.now();
    const b = this.blocks;
    if (at - b.start >= MINUTE) {
      b.start = at;
      b.lines = 0;
    }
    if (b.lines >= BLOCK_LINES) {
      if (b.unsaid++ === 0) b.unsaidSince = at;
      return;
    }
    b.lines++;
    // "4.7.0 Too many failed logins from 192.0.2.7: 10 in 10 minutes (limit 10). Blocked for 15 minutes."
    this.log(`blocked: ${e.text.replace(/^\d\.\d{1,3}\.\d{1,3} /, '')} (${e.rule}; clients.unblock or trusting the address lifts it)`);
  }

  /** one sender's broken domain, or the relay's DNS servers down for everyone: the reason tells which */
  private dnsFailed(reason: string, what: string): void {
    this.flush();
    const at = this.now();
    const d = this.dns;
    if (at - d.lastAt < MINUTE) {
      if (d.unsaid++ === 0) d.unsaidSince = at;
      d.last = reason;
      return;
    }
    d.lastAt = at;
    this.log(`warning: a DNS lookup failed: ${reason}; ${what}`);
  }
}
