/** Formatting for people: times, durations, sizes, counts. Pure. */

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** 14:03:07 (local time) */
export function fmtTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** 14:03:07.123 */
export function fmtTimeMs(ms: number): string {
  return `${fmtTime(ms)}.${pad(new Date(ms).getMilliseconds(), 3)}`;
}

/** 2026-11-27 14:03 (local time) */
export function fmtDateTime(ms: number | string | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return String(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** 3 s, 5 min, 2 h 10 min, 3 d */
export function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} d`;
}

/** "5 min ago" / "in 5 min" relative to now */
export function fmtAgo(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return '—';
  const d = ms - now;
  if (Math.abs(d) < 1000) return 'now';
  return d < 0 ? `${fmtDuration(-d)} ago` : `in ${fmtDuration(d)}`;
}

/**
 * "5 min ago" for something that has happened: never a future "in 4 s". A time a little ahead of `now` (a `now` that
 * is refreshed every few seconds and so runs behind the data it is shown with, or the relay's clock a little ahead of
 * this machine's) is "just now", as is anything within the last second.
 */
export function fmtSince(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return '—';
  const d = now - ms;
  return d < 1000 ? 'just now' : `${fmtDuration(d)} ago`;
}

/** 1.2 MB */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** 12,345 */
export function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** the rule id as words: "limits.messagesPerHour" -> "Messages per hour" */
export const RULE_LABELS: Record<string, string> = {
  'limits.messagesPerHour': 'Messages per hour',
  'limits.concurrentConnections': 'Concurrent connections',
  'limits.unknownRecipients': 'Too many unknown recipients',
  'limits.authFailures': 'Failed AUTH attempts',
  'checks.senderDomain': 'Sender domain not in DNS',
  'checks.reverseDns': 'No reverse DNS',
  'checks.maxRecipients': 'Recipients per message',
  'checks.maxFailedCommands': 'Failed commands',
  'checks.maxMessageSize': 'Message size',
  'smtp.bareLineEndings': 'Bare CR/LF',
  'smtp.greetingDelayMs': 'Early talker',
  'smtp.maxConnections': 'Server connection limit',
  'relay.access': 'Relay access denied',
  'recipient.unknown': 'Unknown recipient (550)',
  protocol: 'Protocol error',
  storage: 'Storage (disk)',
};

export function ruleLabel(rule: string): string {
  return RULE_LABELS[rule] ?? rule;
}
