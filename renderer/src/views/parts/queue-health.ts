/**
 * The queue in words, for the Dashboard's Queue card and the Queue view (pure, tested in Node): whether mail is stuck
 * (a destination down, or the oldest message waiting longer than STUCK_AFTER_MS), the destinations that are down or
 * deferring with their last error and next attempt, a destination's key as a person reads it, and what "Retry all
 * now" asks and answers.
 */
import { destinationLabel } from '../../../../shared/destinations.ts';
import type { QueueDestination, Stats } from '../../../../shared/protocol.ts';
import { fmtAgo, fmtCount, fmtDuration } from '../../components/format.ts';

/** The oldest message waiting longer than this makes the Queue card a warning. */
export const STUCK_AFTER_MS = 15 * 60_000;

const plural = (n: number, one: string, many = `${one}s`) => `${fmtCount(n)} ${n === 1 ? one : many}`;

// (the relay's log lines say destinations the same way)
export { destinationLabel };

/** What a destination is, in a tooltip. */
export function destinationTitle(key: string): string {
  if (key.startsWith('mx:')) return `the mail servers (MX) of ${key.slice(3)}`;
  if (key.startsWith('local:')) return `${key.slice(6)}, the server a local domain delivers to (deliverTo)`;
  if (key.startsWith('smarthost:')) return `the smarthost ${key.slice(10)}`;
  return key;
}

/** A next attempt's time from `now`: "in 3 min", or "due now" once it has come (never "2 min ago": it is overdue, so due). */
export function dueWords(at: number, now: number): string {
  return at - now < 1000 ? 'due now' : fmtAgo(at, now);
}

/**
 * When a destination is tried next, for its row: "in 3 min", "due now", "being delivered" (none scheduled), or
 * "waiting for a free connection" when its due deliveries wait for a delivery connection (every one in use, or its own
 * limit reached): due, but not "now" (a relay before it does not say, and reads as before).
 */
export function destinationWhen(d: Pick<QueueDestination, 'down' | 'nextAttemptAt' | 'waitingForConnection'>, now: number): string {
  if (!d.down && (d.waitingForConnection ?? 0) > 0 && (d.nextAttemptAt === null || d.nextAttemptAt - now < 1000)) return 'waiting for a free connection';
  if (d.nextAttemptAt === null) return 'being delivered';
  return dueWords(d.nextAttemptAt, now);
}

/** "next attempt in 3 min", "next attempt due now", "being delivered" (none scheduled), "waiting for a free connection". */
export function nextAttemptWords(d: Pick<QueueDestination, 'down' | 'nextAttemptAt' | 'waitingForConnection'>, now: number): string {
  const when = destinationWhen(d, now);
  return when === 'being delivered' || when === 'waiting for a free connection' ? when : `next attempt ${when}`;
}

/**
 * Why "Retry <destination> now" would change nothing, or null when it would: a destination that is up with no message
 * scheduled later (every one is due and waits for a free connection, or is being delivered). A relay that does not
 * say (no scheduledLater) keeps the button.
 */
export function destinationRetryIdle(d: Pick<QueueDestination, 'down' | 'scheduledLater' | 'waitingForConnection'>): string | null {
  if (d.down || d.scheduledLater === undefined || d.scheduledLater > 0) return null;
  return (d.waitingForConnection ?? 0) > 0
    ? 'Nothing to bring forward: its messages are due now and wait for a free delivery connection, or are being delivered.'
    : 'Nothing to bring forward: none of its messages is scheduled for later (they are due now, being delivered or about to be).';
}

export type DestinationState = 'down' | 'deferring' | 'waiting';

/** "down" (probed, one connection at a time), "deferring" (its last attempt failed), else "waiting" (its turn to come). */
export function destinationState(d: Pick<QueueDestination, 'down' | 'lastError'>): DestinationState {
  return d.down ? 'down' : d.lastError !== null ? 'deferring' : 'waiting';
}

/** The badge tone of each state, wherever it is shown. */
export const STATE_TONE = { down: 'bad', deferring: 'warn', waiting: 'muted' } as const;

export interface DestinationLine {
  destination: string;
  label: string;
  messages: number;
  down: boolean;
  lastError: string | null;
  nextAttemptAt: number | null;
  state: DestinationState;
  /** "3,926 messages · next attempt in 3 min" */
  text: string;
}

export interface QueueHealth {
  /** warn: a destination is down or the oldest message has waited longer than STUCK_AFTER_MS */
  tone: 'ok' | 'warn';
  /** one sentence saying what is wrong (or that nothing is), for the top of the card */
  headline: string;
  /** "oldest waiting 42 min" (null when the queue is empty or the relay does not say) */
  oldest: string | null;
  oldestMs: number | null;
  /** "3,926 deferred" (messages that failed at least once and wait for their next attempt) */
  deferred: string | null;
  /** destinations down, deferring (a last error) or waiting for a free connection, down ones first */
  destinations: DestinationLine[];
  /** "40 waiting for a free connection" (deliveries due while every connection they may use is taken), or null */
  waitingForConnection: string | null;
  /** the relay sends the queue's summary (relays before it send only the size) */
  detailed: boolean;
}

type QueueStats = Stats['queue'];

/** The Queue card's reading of stats.queue at `now` (the relay's clock: stats.at). */
export function queueHealth(q: QueueStats, now: number): QueueHealth {
  const detailed = q.destinations !== undefined;
  const messages = q.messages ?? q.size;
  const oldestMs = q.oldestReceivedAt === undefined || q.oldestReceivedAt === null ? null : Math.max(0, now - q.oldestReceivedAt);
  const destinations: DestinationLine[] = (q.destinations ?? [])
    .filter((d) => d.down || d.lastError !== null || (d.waitingForConnection ?? 0) > 0)
    .map((d: QueueDestination): DestinationLine => ({
      destination: d.destination,
      label: destinationLabel(d.destination),
      messages: d.messages,
      down: d.down,
      lastError: d.lastError,
      nextAttemptAt: d.nextAttemptAt,
      state: destinationState(d),
      text: `${plural(d.messages, 'message')} · ${nextAttemptWords(d, now)}`,
    }))
    .sort((a, b) => Number(b.down) - Number(a.down) || b.messages - a.messages);
  const down = destinations.filter((d) => d.down);
  const waiting = (q.destinations ?? []).reduce((n, d) => n + (d.waitingForConnection ?? 0), 0);
  const old = oldestMs !== null && oldestMs > STUCK_AFTER_MS;
  const tone = down.length > 0 || old ? 'warn' : 'ok';
  let headline: string;
  if (messages === 0) headline = 'Empty: every accepted message has been delivered or bounced.';
  else if (down.length > 0) {
    const names = down.slice(0, 2).map((d) => d.label).join(' and ') + (down.length > 2 ? ` and ${down.length - 2} more` : '');
    headline = `Mail is stuck: ${names} ${down.length === 1 ? 'does' : 'do'} not answer.`;
  } else if (old) headline = `Mail is waiting: the oldest message has waited ${fmtDuration(oldestMs)}.`;
  else if (waiting > 0) headline = 'Some mail waits for a free delivery connection: every one it may use is taken.';
  else if (destinations.length > 0) headline = 'Some deliveries are being retried.';
  else headline = 'Mail is flowing.';
  return {
    tone,
    headline,
    oldest: messages > 0 && oldestMs !== null ? `oldest waiting ${fmtDuration(oldestMs)}` : null,
    oldestMs,
    deferred: q.deferred === undefined ? null : `${fmtCount(q.deferred)} deferred`,
    destinations,
    waitingForConnection: waiting > 0 ? `${fmtCount(waiting)} waiting for a free connection` : null,
    detailed,
  };
}

/** The confirmation of "Retry all now": its title, what it does, and its button. */
export function retryAllConfirm(count: number, destination: string | null): { title: string; body: string[]; confirmLabel: string } {
  const what = destination === null ? `all ${plural(count, 'queued message')}` : `the ${plural(count, 'message')} waiting for ${destinationLabel(destination)}`;
  return {
    title: `Retry ${what} now?`,
    body: [
      destination === null
        ? 'Every queued message becomes due at once, instead of at its next scheduled attempt.'
        : `Every queued message with a recipient waiting for ${destinationLabel(destination)} becomes due at once, instead of at its next scheduled attempt.`,
      'Messages being delivered right now are left as they are. Nothing is deleted or returned to its sender.',
      'The relay sends them within its usual connection limits, so a large queue takes a while to drain: follow it on the Dashboard.',
    ],
    confirmLabel: destination === null ? 'Retry all now' : `Retry ${destinationLabel(destination)} now`,
  };
}

/** What the relay answered to "Retry all now" (heldBack and down: from relays that say which destinations are down). */
export interface RetryAllAnswer {
  scheduled: number;
  delivering: number;
  heldBack?: number;
  down?: { destination: string; messages: number; heldBack: number }[];
}

/**
 * The toast after "Retry all now": "3,926 messages will be tried now; 12 are being delivered already". A destination
 * that is down takes one message now (its probe: does it answer?) and the others only once it does, as Postfix does
 * for a dead destination: the toast says so, instead of promising that every message goes now.
 */
export function retryAllDoneText(r: RetryAllAnswer, destination: string | null): string {
  const forDest = destination === null ? '' : ` for ${destinationLabel(destination)}`;
  if (r.scheduled === 0 && r.delivering === 0) return `No message${forDest} was waiting: there was nothing to retry.`;
  const beingDelivered = r.delivering === 0 ? '' : `${fmtCount(r.delivering)} ${r.delivering === 1 ? 'is' : 'are'} being delivered already.`;
  const down = r.down ?? [];
  if (down.length === 0) {
    const tried = `${plural(r.scheduled, 'message')}${forDest} will be tried now`;
    return r.delivering === 0 ? `${tried}.` : `${tried}; ${beingDelivered}`;
  }
  const parts: string[] = [];
  let counted = 0;
  for (const d of down) {
    counted += d.messages;
    const label = destinationLabel(d.destination);
    const now = d.messages - d.heldBack;
    if (now > 0) {
      const tried = now === 1 ? (d.messages === 1 ? 'its one message is' : 'one message is') : `${fmtCount(now)} messages are`;
      const rest = d.heldBack === 0 ? '' : `; the other ${fmtCount(d.heldBack)} follow${d.heldBack === 1 ? 's' : ''} as soon as it does`;
      parts.push(`${label} is down: ${tried} tried now to see if it answers${rest}.`);
    } else {
      // (a probe was under way already: it answers the question for all of them)
      const its = d.heldBack === 1 ? 'its message follows' : `its ${fmtCount(d.heldBack)} messages follow`;
      parts.push(`${label} is down: a connection to it is under way to see if it answers; ${its} as soon as it does.`);
    }
  }
  // (messages for destinations that answer: every one is tried now; a relay lists at most 10 down destinations)
  const others = r.scheduled - counted;
  if (others > 0 && down.length < 10) parts.push(`${plural(others, 'message')} for other destinations ${others === 1 ? 'is' : 'are'} tried now.`);
  if (beingDelivered) parts.push(beingDelivered);
  return parts.join(' ');
}
