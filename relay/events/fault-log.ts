/**
 * The lines an administrator looks for on the relay's standard output (journald, a terminal) when something is wrong
 * with more than one message: a client blocked (a password-guessing or recipient-harvesting attack) and DNS lookups
 * failing (every client the DNS checks ask about is told 4xx until DNS answers). Each was only in the event history;
 * a tryout found nothing said on stdout while every sender was deferred. Read from the bus, so the SMTP path pays one
 * comparison per event; bounded: at most BLOCK_LINES block lines a minute (the rest counted in the next one) and one
 * DNS line a minute (the failures in between counted in the next).
 */
import type { RelayEvent } from '../../shared/events.ts';
import type { EventBus } from './bus.ts';

const MINUTE = 60_000;
export const BLOCK_LINES = 10;

export class FaultLog {
  private blockWindow = { start: -Infinity, lines: 0, unsaid: 0 };
  private dns = { lastAt: -Infinity, unsaid: 0 };
  private readonly unsubscribe: () => void;

  constructor(
    bus: EventBus,
    private readonly log: (line: string) => void,
    private readonly now: () => number,
  ) {
    this.unsubscribe = bus.subscribe((e) => {
      if (e.kind === 'rejected') this.rejected(e);
    });
  }

  close(): void {
    this.unsubscribe();
  }

  private rejected(e: Extract<RelayEvent, { kind: 'rejected' }>): void {
    if (e.enforced && !e.blocked && e.code === 421 && (e.rule === 'limits.authFailures' || e.rule === 'limits.unknownRecipients')) this.blocked(e);
    if (e.dns !== undefined) this.dnsFailed(e);
  }

  /** a block began: the limit's own refusal (the block's later refusals carry `blocked`) */
  private blocked(e: Extract<RelayEvent, { kind: 'rejected' }>): void {
    const at = this.now();
    const w = this.blockWindow;
    if (at - w.start >= MINUTE) {
      w.start = at;
      w.lines = 0;
    }
    if (w.lines >= BLOCK_LINES) {
      w.unsaid++;
      return;
    }
    w.lines++;
    const more = w.unsaid ? ` (and ${w.unsaid} more block${w.unsaid === 1 ? '' : 's'} not shown here in the minute before: the console's Clients view, or clients.list with blockedOnly, has them all)` : '';
    w.unsaid = 0;
    // "4.7.0 Too many failed logins from 192.0.2.7: 10 in 10 minutes (limit 10). Blocked for 15 minutes."
    this.log(`blocked: ${e.text.replace(/^\d\.\d{1,3}\.\d{1,3} /, '')} (${e.rule}; clients.unblock or trusting the address lifts it)${more}`);
  }

  private dnsFailed(e: Extract<RelayEvent, { kind: 'rejected' }>): void {
    const at = this.now();
    if (at - this.dns.lastAt < MINUTE) {
      this.dns.unsaid++;
      return;
    }
    const since = this.dns.unsaid ? `; ${this.dns.unsaid} more DNS failure${this.dns.unsaid === 1 ? '' : 's'} since the last such line` : '';
    this.dns = { lastAt: at, unsaid: 0 };
    // (one sender's broken domain, or the relay's DNS servers down for everyone: the reason tells which)
    this.log(`warning: a DNS lookup failed: ${e.dns}; ${e.rule} told ${e.ip ?? 'the client'} ${e.code} (try again later)${since}`);
  }
}
