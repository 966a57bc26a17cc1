/**
 * The relay's decisions: pure functions of (config snapshot, facts) -> verdicts. No I/O, no clock reads.
 * Each security option of SPEC section 1 is one small function; a stage asks the ones hooked to it, in order.
 * A verdict with mode "monitor" is reported ("would have rejected") and the stage goes on;
 * the first "enforce" verdict is the reply.
 */
import type { Config, Mode } from '../../shared/config.ts';
import type { Rule, Stage } from '../../shared/events.ts';
import type { ReverseDnsFact, SenderDomainFact } from '../dns/checks.ts';

export interface Verdict {
  rule: Rule;
  stage: Stage;
  code: number;
  /** the reply text, starting with the enhanced status code ("4.7.1 Too much mail ...") */
  text: string;
  mode: Exclude<Mode, 'off'>;
  /** close the session after the reply */
  close?: boolean;
  /** block the client for this many minutes */
  blockMinutes?: number;
  /** a DNS failure as the relay saw it (servers asked, tries): recorded in the event for the admin, not in the reply */
  dns?: string;
  /** refused by a block an earlier refusal of `rule` set (not by the rule's limit now): recorded in the event */
  blocked?: true;
}

const v = (rule: Rule, stage: Stage, mode: Mode, code: number, text: string, extra: Partial<Verdict> = {}): Verdict[] =>
  mode === 'off' ? [] : [{ rule, stage, code, text, mode, ...extra }];

export const plural = (n: number, one: string, many = one + 's') => `${n} ${n === 1 ? one : many}`;

export function formatUntil(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// --- connect -------------------------------------------------------------------------------
export interface ConnectFacts {
  ip: string;
  /** in one of limits.exemptGroups */
  exempt: boolean;
  /** this client's open connections, this one included */
  connections: number;
  /** an active block from an earlier rule (unknown recipients, AUTH failures) */
  block: { rule: Rule; until: number; reason: string } | null;
}

export function atConnect(c: Config, f: ConnectFacts): Verdict[] {
  if (f.exempt) return [];
  const out: Verdict[] = blockedNow(c, f, 'connect');
  const cc = c.limits.concurrentConnections;
  if (f.connections > cc.max) {
    out.push(
      ...v('limits.concurrentConnections', 'connect', cc.mode, 421,
        `4.7.0 Too many connections from ${f.ip}: ${f.connections} open (limit ${cc.max}). Close some and try again.`, { close: true }),
    );
  }
  return out;
}

/** The block a verdict of `rule` with blockMinutes `minutes` sets, beginning `now` (the live relay and policy.simulate alike). */
export function blockOf(rule: Rule, minutes: number, now: number): { rule: Rule; since: number; until: number; reason: string } {
  return { rule, since: now, until: now + minutes * 60_000, reason: rule === 'limits.authFailures' ? 'too many failed logins' : 'too many unknown recipients' };
}

/**
 * A client under a block (set by a refusal of limits.unknownRecipients or limits.authFailures): refused and closed.
 * At connect for a new connection; at AUTH, MAIL FROM and RCPT TO for a session that was already open when another
 * of the client's sessions set the block, so parallel sessions cannot go on guessing passwords or recipients until
 * they end.
 */
export function blockedNow(c: Config, f: { ip: string; exempt: boolean; block: ConnectFacts['block'] }, stage: Stage): Verdict[] {
  if (f.exempt || !f.block) return [];
  const mode = f.block.rule === 'limits.authFailures' ? c.limits.authFailures.mode : c.limits.unknownRecipients.mode;
  return v(f.block.rule, stage, mode, 421, `4.7.0 ${f.ip} is blocked until ${formatUntil(f.block.until)}: ${f.block.reason}. Try again later.`, { close: true, blocked: true });
}

// --- MAIL FROM -----------------------------------------------------------------------------
export interface MailFacts {
  ip: string;
  exempt: boolean;
  /** authenticated, or in relay.allowGroups: DNS checks do not apply */
  dnsExempt: boolean;
  messagesLastHour: number;
  declaredSize: number | null;
  senderDomain: string | null;
  senderDomainFact: SenderDomainFact | null;
  reverseDnsFact: ReverseDnsFact | null;
}

/** Which DNS facts MAIL FROM needs for this client (so the SMTP front looks up only those). */
export function mailNeeds(c: Config, f: { dnsExempt: boolean; senderDomain: string | null }): { reverseDns: boolean; senderDomain: boolean } {
  return {
    reverseDns: !f.dnsExempt && c.checks.reverseDns.mode !== 'off',
    senderDomain: !f.dnsExempt && f.senderDomain !== null && c.checks.senderDomain.mode !== 'off',
  };
}

export function atMailFrom(c: Config, f: MailFacts): Verdict[] {
  const out: Verdict[] = [];
  const mph = c.limits.messagesPerHour;
  if (!f.exempt && f.messagesLastHour >= mph.max) {
    out.push(...v('limits.messagesPerHour', 'mail', mph.mode, 450,
      `4.7.1 Too much mail from ${f.ip}: ${plural(f.messagesLastHour, 'message')} in the last hour (limit ${mph.max}). Try again later.`));
  }
  const size = c.checks.maxMessageSize;
  if (f.declaredSize !== null && f.declaredSize > size.maxBytes) {
    out.push(...v('checks.maxMessageSize', 'mail', size.mode, 552,
      // (a SIZE= beyond 2^53 is no longer the number the client wrote once read: said as what it is)
      `5.3.4 Message too big: declared SIZE=${Number.isSafeInteger(f.declaredSize) ? f.declaredSize : `more than ${Number.MAX_SAFE_INTEGER}`} bytes, the limit is ${size.maxBytes} bytes. Send a smaller message.`));
  }
  const rd = f.reverseDnsFact;
  if (rd && rd.result !== 'ok') {
    const mode = c.checks.reverseDns.mode;
    out.push(...(rd.result === 'none'
      ? v('checks.reverseDns', 'mail', mode, 550, `5.7.25 Client address ${f.ip} has no reverse DNS (PTR) record. Ask its provider for one, or authenticate first.`)
      : v('checks.reverseDns', 'mail', mode, 450, `4.7.25 Could not look up reverse DNS for ${f.ip} (${rd.brief ?? rd.reason}). Try again later.`, { dns: rd.reason })));
  }
  const sd = f.senderDomainFact;
  if (sd && sd.result !== 'ok') {
    const mode = c.checks.senderDomain.mode;
    const d = f.senderDomain;
    out.push(...(sd.result === 'nodomain'
      ? v('checks.senderDomain', 'mail', mode, 550, `5.1.8 Sender domain ${d} does not exist in DNS (no MX, A or AAAA record). Use a real sender address.`)
      : sd.result === 'nullmx'
        ? v('checks.senderDomain', 'mail', mode, 550, `5.1.8 Sender domain ${d} publishes a null MX: it sends and receives no mail. Use a real sender address.`)
        : v('checks.senderDomain', 'mail', mode, 451, `4.4.3 Could not check sender domain ${d} in DNS (${sd.brief ?? sd.reason}). Try again later.`, { dns: sd.reason })));
  }
  return out;
}

// --- RCPT TO -------------------------------------------------------------------------------
export function tooManyRecipients(c: Config, recipientsSoFar: number): Verdict[] {
  const mr = c.checks.maxRecipients;
  if (recipientsSoFar < mr.max) return [];
  return v('checks.maxRecipients', 'rcpt', mr.mode, 452,
    `4.5.3 Too many recipients: this message already has ${recipientsSoFar} (limit ${mr.max}). Send the rest in another message.`);
}

export function unknownRecipientLimit(c: Config, f: { ip: string; exempt: boolean; unknownLastHour: number }): Verdict[] {
  const ur = c.limits.unknownRecipients;
  if (f.exempt || f.unknownLastHour < ur.max) return [];
  return v('limits.unknownRecipients', 'rcpt', ur.mode, 421,
    `4.7.0 Too many unknown recipients from ${f.ip}: ${f.unknownLastHour} in the last hour (limit ${ur.max}). Blocked for ${plural(ur.blockMinutes, 'minute')}.`,
    { close: true, blockMinutes: ur.blockMinutes });
}

// --- AUTH ----------------------------------------------------------------------------------
export function authFailureLimit(c: Config, f: { ip: string; exempt: boolean; failuresInWindow: number }): Verdict[] {
  const af = c.limits.authFailures;
  if (f.exempt || f.failuresInWindow < af.max) return [];
  return v('limits.authFailures', 'auth', af.mode, 421,
    `4.7.0 Too many failed logins from ${f.ip}: ${f.failuresInWindow} in ${plural(af.windowMinutes, 'minute')} (limit ${af.max}). Blocked for ${plural(af.blockMinutes, 'minute')}.`,
    { close: true, blockMinutes: af.blockMinutes });
}

// --- any command ---------------------------------------------------------------------------
/**
 * `junk`: what reached the limit is a NOOP, RSET, VRFY or HELP past the front's junk-command limit (JUNK_COMMAND_LIMIT,
 * as Postfix's smtpd_junk_command_limit), a command that did nothing rather than one that failed: said so.
 */
export function failedCommandLimit(c: Config, failed: number, junk?: { limit: number }): Verdict[] {
  const mf = c.checks.maxFailedCommands;
  if (failed < mf.max) return [];
  return v('checks.maxFailedCommands', 'command', mf.mode, 421, junk
    ? `4.7.0 Too many commands without a message in this session: ${failed} past ${junk.limit} NOOP, RSET, VRFY or HELP, or failed (limit ${mf.max}). Closing the connection.`
    : `4.7.0 Too many failed commands in this session: ${failed} (limit ${mf.max}). Closing the connection; check the client's commands before reconnecting.`, { close: true });
}

// --- DATA ----------------------------------------------------------------------------------
/** The size rule as it stood when DATA began (a message is judged by the limit it was sent under). */
export function messageTooBig(rule: Config['checks']['maxMessageSize'], size: number): Verdict[] {
  if (size <= rule.maxBytes) return [];
  return v('checks.maxMessageSize', 'data', rule.mode, 552, `5.3.4 Message too big: more than ${rule.maxBytes} bytes (the limit). Send a smaller message.`);
}

export function bareLineEnding(c: Config): Verdict[] {
  if (c.smtp.bareLineEndings !== 'reject') return [];
  return v('smtp.bareLineEndings', 'data', 'enforce', 550,
    '5.5.2 Message refused: it contains a bare CR or LF. Every line must end with CRLF (RFC 5321 section 2.3.8).');
}
