/**
 * Words for one event: the kind label and a one-line summary (rule, recipient, code and text for rejections); and the
 * words and logic of "Trust this IP" (what trusting does with a given config, whether an address is trusted now, the
 * toast after it). Pure, tested in Node (test/console-live-trust.test.ts); state/trust.ts holds the action itself.
 */
import type { RelayEvent } from '../../../shared/events.ts';
import { GroupMatcher, parseIp, type GroupEntryInput } from '../../../shared/ip.ts';
import { fmtDateTime, fmtTime } from '../components/format.ts';

export function kindLabel(e: RelayEvent): string {
  if (e.kind === 'rejected') return e.enforced ? 'rejected' : 'would reject';
  if (e.kind === 'config-changed') return 'config';
  return e.kind;
}

/** a CSS class suffix for the kind badge */
export function kindClass(e: RelayEvent): string {
  if (e.kind === 'rejected') return e.enforced ? 'k-rejected' : 'k-monitor';
  return `k-${e.kind}`;
}

const list = (xs: string[]) => (xs.length <= 2 ? xs.join(', ') : `${xs.slice(0, 2).join(', ')} +${xs.length - 2}`);

/** "to <someone@elsewhere.test>" for a rejection of one recipient (stage rcpt carries it), else '' */
export function refusedTo(e: RelayEvent): string {
  return e.kind === 'rejected' && e.to ? `to <${e.to}>` : '';
}

export function summarize(e: RelayEvent): string {
  switch (e.kind) {
    case 'connect':
      // the relay does not look the name up at connect (the reverse DNS check runs at MAIL FROM, and not for every
      // client), so a connect event without a hostname says nothing about reverse DNS: no claim either way
      return e.hostname ? `connected from ${e.hostname}` : 'connected';
    case 'disconnect':
      return e.messages !== undefined ? `disconnected after ${e.messages} message${e.messages === 1 ? '' : 's'}` : 'disconnected';
    case 'helo':
      return `HELO ${e.name}`;
    case 'auth':
      return `${e.success ? 'logged in' : 'login failed'} as ${e.user}${e.method ? ` (${e.method})` : ''}`;
    case 'mail':
      return `MAIL FROM <${e.from}>`;
    case 'rcpt':
      return `RCPT TO <${e.to}>${e.local ? '' : ' (relay)'}`;
    case 'accepted':
      return `accepted ${e.queueId}: <${e.from}> → ${list(e.to)} (${e.size} bytes)`;
    case 'rejected':
      return `${e.rule}${refusedTo(e) ? ` · ${refusedTo(e)}` : ''} · ${e.code} ${e.text}`;
    case 'delivered':
      return `delivered ${e.queueId} to ${list(e.to)} via ${e.host}${e.tls ? ' (TLS)' : ''}`;
    case 'deferred':
      return `deferred ${e.queueId}: ${e.reason}`;
    case 'bounced':
      return `bounced ${e.queueId}: ${e.reason}`;
    case 'deleted':
      return `deleted ${e.queueId}${e.by ? ` by ${e.by}` : ''}: ${e.to.length > 0 ? `not delivered to ${list(e.to)}` : 'every recipient had been delivered'}`;
    case 'config-changed':
      return `configuration revision ${e.revision} by ${e.by} (${e.source})`;
    case 'trusted':
      return `${e.address} added to "${e.group}" by ${e.by}`;
    default:
      return '';
  }
}

/** The parts of the config that decide what trusting an address does. */
export interface TrustConfig {
  limits: { exemptGroups: readonly string[] };
  relay: { allowGroups: readonly string[] };
  checks: { reverseDns: { mode: string }; senderDomain: { mode: string } };
  groups: Record<string, readonly GroupEntryInput[]>;
}

export interface TrustEffects {
  /** the group clients.trust adds the address to (the first of limits.exemptGroups); null: there is none, trusting is refused */
  group: string | null;
  /** that group is in relay.allowGroups too: a trusted address may relay mail to any domain */
  relays: boolean;
  /** the DNS checks (switched on) that no longer apply to an address allowed to relay */
  dnsChecks: string[];
}

/** What clients.trust would do with this config. */
export function trustEffects(cfg: TrustConfig): TrustEffects {
  const group = cfg.limits.exemptGroups[0] ?? null;
  const relays = group !== null && cfg.relay.allowGroups.includes(group);
  const dnsChecks: string[] = [];
  if (relays) {
    if (cfg.checks.reverseDns.mode !== 'off') dnsChecks.push('reverse DNS');
    if (cfg.checks.senderDomain.mode !== 'off') dnsChecks.push('sender domain');
  }
  return { group, relays, dnsChecks };
}

// short: it is read in a narrow panel, before a click; Security options lists the limits
const LIMITS = 'the per-IP limits';

/** What trusting `ip` will do, said before the click (the panel, the Clients dialog, the button's tooltip). */
export function trustWarning(ip: string, eff: TrustEffects): string {
  if (eff.group === null) return `${ip} cannot be trusted: no group is exempt from the limits (limits.exemptGroups is empty). Pick one in Security options first.`;
  let s = `Trusting adds ${ip} to "${eff.group}": it skips ${LIMITS}.`;
  if (eff.relays) {
    s += ` "${eff.group}" is also allowed to relay (relay.allowGroups), so ${ip} may send mail through this relay to any domain`;
    if (eff.dnsChecks.length > 0) s += `, and the ${eff.dnsChecks.join(' and ')} check${eff.dnsChecks.length === 1 ? '' : 's'} no longer appl${eff.dnsChecks.length === 1 ? 'ies' : 'y'} to it`;
    s += '.';
  }
  return s;
}

// --- trusting an address ------------------------------------------------------------------------------------------
// clients.trust adds the address to the first of limits.exemptGroups, so it skips the per-IP limits; when that group
// is in relay.allowGroups too (the default: "Trusted" is in both), the address may also relay mail to any domain, and
// the relay skips the DNS checks for it (relay/smtp/front.ts: dnsExempt is mayRelay).

/**
 * The rejections trusting the IP can do something about: the per-IP limits and the greeting delay (an exempt group
 * skips them), relaying and the DNS checks (a group in relay.allowGroups skips them). Not an unknown mailbox, a message
 * too big, too many recipients or failed commands, bare line endings, the server's own connection cap or storage:
 * trust changes none of them, so it is not offered there.
 */
const TRUST_HELPS: ReadonlySet<string> = new Set([
  'limits.messagesPerHour', 'limits.concurrentConnections', 'limits.unknownRecipients', 'limits.authFailures',
  'smtp.greetingDelayMs', 'relay.access', 'checks.reverseDns', 'checks.senderDomain',
]);
export function trustHelps(e: RelayEvent): boolean {
  return e.kind === 'rejected' && TRUST_HELPS.has(e.rule);
}

/**
 * A "Relay access denied" rejection: trusting the address is what would let it relay (or, when the trust group may
 * not relay, would not help at all), so the console asks first rather than trusting in one click.
 */
export function asksBeforeTrust(e: RelayEvent): boolean {
  return e.kind === 'rejected' && e.rule === 'relay.access';
}

/** The expiry a trust from a relay-access rejection starts with: bounded, whatever "Trust lasts" says (the user may pick forever). */
export const RELAY_TRUST_DEFAULT = '1d' as const;

/** The toast after a trust: what was done, relaying included. `relays` null: the config could not be read. */
/** clients.trust's answer, as far as the console reads it (`updated`/`previous`: relays before them leave them out) */
export interface TrustReply {
  group: string;
  entry: { address: string; comment?: string | null; expiresAt?: string | null };
  alreadyTrusted: boolean;
  unblocked: boolean;
  updated?: boolean;
  previous?: { address: string; comment?: string | null; expiresAt?: string | null } | null;
}

export function trustedMessage(ip: string, r: TrustReply, relays: boolean | null): string {
  const cleared = r.unblocked ? ' Its block was cleared.' : '';
  const until = r.entry.expiresAt ? ` until ${fmtDateTime(r.entry.expiresAt)}` : ' with no expiry';
  if (r.updated && r.previous && r.alreadyTrusted) {
    // trusted already, for less long: lengthened (trusting never shortens an entry or changes its comment)
    const was = r.previous.expiresAt ? fmtDateTime(r.previous.expiresAt) : 'no expiry';
    return `${ip} was trusted until ${was}; now${until} (group "${r.group}", entry ${r.entry.address}, its comment kept).${cleared}`;
  }
  if (r.alreadyTrusted) return `${ip} is already trusted (group "${r.group}", entry ${r.entry.address}).${cleared}`;
  const what =
    relays === true
      ? `from its next command it skips the per-IP limits and may relay mail to any domain ("${r.group}" is in relay.allowGroups).`
      : relays === false
        ? `from its next command it skips the per-IP limits (it may not relay: "${r.group}" is not in relay.allowGroups).`
        : `from its next command it skips the per-IP limits; see Trusted IP groups for whether "${r.group}" may relay.`;
  return `Trusted ${ip} in "${r.group}"${until}: ${what} Its counters were reset.${cleared}`;
}

/**
 * What Undo in the toast after a trust does, if anything: an entry that was added is removed; one that was lengthened
 * (or brought back from expired) gets its old expiry and comment back, as it was before the click (removing it would
 * lose its record); nothing changed, nothing to undo.
 */
export function trustUndo(r: TrustReply): { method: 'groups.removeEntry'; params: { group: string; address: string } } | { method: 'groups.addEntry'; params: { group: string; address: string; comment: string | null; expiresAt: string | null } } | null {
  if (r.updated && r.previous) {
    return { method: 'groups.addEntry', params: { group: r.group, address: r.previous.address, comment: r.previous.comment ?? null, expiresAt: r.previous.expiresAt ?? null } };
  }
  if (r.alreadyTrusted) return null;
  return { method: 'groups.removeEntry', params: { group: r.group, address: r.entry.address } };
}

/** The exempt-group entry that trusts `ip` at `now`, or null (also for an address that does not parse). */
export function trustedEntry(matcher: GroupMatcher | null, cfg: TrustConfig | undefined, ip: string | null, now: number): { group: string; entry: GroupEntryInput } | null {
  if (!matcher || !cfg || !ip) return null;
  const parsed = parseIp(ip);
  if (!parsed) return null;
  const m = matcher.findEntry(parsed, cfg.limits.exemptGroups, now);
  return m ? { group: m.group, entry: m.entry } : null;
}

/** A matcher of the config's groups (null when a group does not compile: the relay would have refused that config). */
export function groupMatcher(cfg: TrustConfig | undefined): GroupMatcher | null {
  if (!cfg) return null;
  try {
    return new GroupMatcher(cfg.groups);
  } catch {
    return null;
  }
}

/**
 * The line under a session's rejection about the client now. clients.trust resets the address's counters, so right
 * after a trust "0 messages in the last hour" would contradict the rejection above it; the line says why.
 */
export function clientNowLine(
  info: { ip: string; messagesLastHour: number; connections: number },
  trustedAt: number | null,
  eventAt: number,
): string {
  const msgs = `${info.messagesLastHour} message${info.messagesLastHour === 1 ? '' : 's'} in the last hour`;
  const conns = `${info.connections} open connection${info.connections === 1 ? '' : 's'}`;
  const reset = trustedAt !== null && trustedAt >= eventAt ? ` (counted since it was trusted at ${fmtTime(trustedAt)}: trusting resets the counters)` : '';
  return `${info.ip} now: ${msgs}${reset}, ${conns}`;
}

