/**
 * What the live view says about a gap in its stream: events a (re)connect's backlog left out because more happened
 * since the console's last event than the relay sends at once (events.subscribe's `truncated`). Pure, so the words
 * are tested without a browser.
 *
 * The console has no view of the relay's stored history (events.query) yet, so the notice says where the events are
 * rather than offering to open them.
 */
import type { EventGap } from '../../../shared/console-api.ts';
import { fmtCount, fmtTime } from '../components/format.ts';

/**
 * the most events a relay sends as the backlog of events.subscribe when it does not say (relays older than the result's
 * `backlogMax`, which all sent at most 10,000; relay/manage/server.ts, backlogMax). A gap names the number it was told.
 */
export const BACKLOG_MAX = 10_000;

export interface GapNotice {
  /** the warning itself: which events are not shown, and why */
  text: string;
  /** where they are */
  where: string;
  /** for the tooltip: the event ids on either side */
  detail: string;
  /** a gap in a stream the console was following (a reconnect), not the older part of a stream it just started */
  whileAway: boolean;
}

const pad = (n: number) => String(n).padStart(2, '0');
const sameDay = (a: Date, b: Date) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

/** 14:03:07 today, else 2026-11-26 14:03:07 (local time) */
export function fmtWhen(ms: number, now: number): string {
  const d = new Date(ms);
  if (sameDay(d, new Date(now))) return fmtTime(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(ms)}`;
}

/**
 * The notice for one gap. `retentionDays` is the relay's events.retentionDays (null if not known yet): how long its
 * history keeps the events.
 */
export function gapNotice(g: EventGap, retentionDays: number | null = null, now: number = Date.now()): GapNotice {
  const kept = retentionDays === null ? '' : ` for ${retentionDays} day${retentionDays === 1 ? '' : 's'}`;
  const max = fmtCount(g.backlogMax ?? BACKLOG_MAX);
  const where = `They stay in the relay's event history${kept} (the management protocol's events.query reads them); the console has no view of that history yet.`;
  if (g.from === null) {
    return {
      text: `Events before ${fmtWhen(g.to, now)} are not shown here: the relay sends at most its newest ${max} when the console connects.`,
      where,
      detail: `Events with ids below #${g.beforeId} are not in the live view.`,
      whileAway: false,
    };
  }
  const n = g.beforeId - g.afterId - 1;
  const from = fmtWhen(g.from, now);
  const to = fmtWhen(g.to, now);
  return {
    text: `Events ${from === to ? `at ${from}` : `from ${from} to ${to}`} are not shown here: more than ${max} happened while the console was away, and the relay sends at most ${max} when the console reconnects.`,
    where,
    detail: `${fmtCount(n)} event${n === 1 ? '' : 's'} (ids #${g.afterId + 1} to #${g.beforeId - 1}) between the live view's event #${g.afterId} and #${g.beforeId}.`,
    whileAway: true,
  };
}

/**
 * What the live view says about a time the console was not connected: when, and whether the relay restarted
 * meanwhile (its per-IP counters and blocks live in memory and started afresh, and the Dashboard's last 15 minutes with
 * them; the events of the time away are in the list, caught up from its history).
 */
export function breakNotice(b: { from: number; to: number; restartedAt: number | null }, now: number = Date.now()): string {
  const away = `Not connected to the relay from ${fmtWhen(b.from, now)} to ${fmtWhen(b.to, now)}`;
  if (b.restartedAt === null) return `${away}; the events of that time are below, caught up from its history.`;
  return `${away}: the relay restarted at ${fmtWhen(b.restartedAt, now)}. Its per-IP counters and blocks started afresh, and so did the Dashboard's figures; the events of that time are below, caught up from its history.`;
}

