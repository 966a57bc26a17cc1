/**
 * policy.simulate: replay the recorded traffic of the last hours through a candidate config's decisions.
 *
 * The replay uses the relay's own pure decisions (relay/policy/verdicts.ts) and its own counters (a private Anvil
 * driven by a replay clock), fed the facts the events recorded, in event-id order, which is the order the live relay
 * made its decisions in (every decision and its events happen synchronously). The counters follow the candidate:
 * a message the candidate would have refused does not count toward messagesPerHour, a block the candidate would
 * have set refuses that client's later connections. Replay starts before the window (warm-up: one hour plus the
 * longest block) so windows and blocks are primed, but only decisions inside the window are reported.
 *
 * Replayed: limits.messagesPerHour, limits.concurrentConnections, limits.unknownRecipients (limit and block),
 * limits.authFailures (limit and block; a block refuses new connections and the next AUTH, MAIL FROM or RCPT TO of the
 * client's sessions already open), the exempt groups and relay.allowGroups (with expiry at each event's time),
 * checks.maxRecipients, relay access and unknown-recipient classification (each recipient, passed or refused, is
 * classified under the candidate by the live routing), checks.maxMessageSize (the declared SIZE= at MAIL FROM and the
 * accepted sizes; a refusal at DATA stays refused unless the candidate turns the check off or to monitor),
 * smtp.bareLineEndings (recorded refusals only), the modes of every replayed rule, and checks.reverseDns /
 * checks.senderDomain from the DNS facts the events carry.
 * Not replayed (the recorded outcome stands, and the result's `notReplayed` says why): checks.maxFailedCommands (most
 * failed replies are in no event), smtp.maxConnections, the greeting delay, storage errors; and, for events recorded
 * before the relay kept the refused recipient / the declared SIZE, relay access, unknown recipients and declared SIZE.
 */
import type { Config } from '../../shared/config.ts';
import type { RelayEvent, Rule } from '../../shared/events.ts';
import { GroupMatcher, clientKey, parseIp, type ParsedIp } from '../../shared/ip.ts';
import type { SimulationNotReplayed, SimulationResult, SimulationRule } from '../../shared/protocol.ts';
import { Anvil } from '../clients/anvil.ts';
import type { ReverseDnsFact, SenderDomainFact } from '../dns/checks.ts';
import type { PruneMark } from '../store/history.ts';
import { classifyRecipient } from '../policy/routing.ts';
import * as policy from '../policy/verdicts.ts';

type Rejected = Extract<RelayEvent, { kind: 'rejected' }>;

/** `noFlush`: the replay waited for the history writer (written()) before its first read, so no read waits again. */
interface Reads {
  noFlush?: boolean;
}

export interface EventPages {
  page(from: number, to: number, after: { at: number; id: number } | null, kinds: readonly string[], limit: number, opts?: Reads): RelayEvent[];
  /**
   * The (skip + 1)th newest event of these kinds (null: any kind) in [from, to), in page() order, counting from just
   * below `before` when given; null when there are no more than `skip`. Its cost must follow `skip` (an index walk of
   * about that many entries): the cap's cut is found in steps of a bounded skip, a turn of the event loop each.
   */
  cutAfter?(
    from: number,
    to: number,
    kinds: readonly string[] | null,
    skip: number,
    opts?: Reads & { before?: { at: number; id: number } | null },
  ): { at: number; id: number } | null;
  /** resolves once everything recorded so far is readable, without blocking the event loop (EventHistory.written) */
  written?(): Promise<void>;
  /** what the retention prune has deleted so far (EventHistory.pruned): a replay reads across turns, a prune may run between */
  readonly pruned?: PruneMark;
}

export interface SimulateOptions {
  /** read at most this many events (default 2,000,000); past it the oldest are skipped and `truncated` is set */
  maxEvents?: number;
  pageSize?: number;
  /**
   * index entries of the replayed kinds the search for the cap's cut steps over per turn of the event loop (default
   * 10,000: a few ms); the check whether the window holds more than maxEvents events at all steps over five times as
   * many of any kind (the (at) index alone, cheaper per entry)
   */
  cutStep?: number;
  /**
   * the answer is no longer wanted (the calling session closed): checked after each pause, the replay then stops
   * before its next read with SimulationStopped
   */
  gone?: () => boolean;
  /**
   * awaited before each page, which is read right after it, so a long replay never holds the event loop. The relay
   * passes its history scans' scheduler (PageTurns in methods.ts: one page of all scans per turn of the event loop);
   * default: a setImmediate.
   */
  pause?: () => Promise<void>;
}

/** Thrown by simulate() when opts.gone() says its answer is no longer wanted: it read nothing more. */
export class SimulationStopped extends Error {
  constructor() {
    super('the replay stopped: its answer is no longer wanted (the session closed)');
  }
}

const KINDS = ['connect', 'disconnect', 'auth', 'mail', 'rcpt', 'accepted', 'rejected'] as const;

const UNIT: Partial<Record<Rule, SimulationRule['unit']>> = {
  'limits.messagesPerHour': 'message',
  'limits.concurrentConnections': 'connection',
  'limits.unknownRecipients': 'recipient',
  'limits.authFailures': 'session',
  'checks.senderDomain': 'message',
  'checks.reverseDns': 'message',
  'checks.maxRecipients': 'recipient',
  'checks.maxMessageSize': 'message',
  'smtp.bareLineEndings': 'message',
  'relay.access': 'recipient',
  'recipient.unknown': 'recipient',
};

/** Rules no recorded event lets the replay decide: the recorded outcome stands, and the candidate's value is not applied. */
const NOT_REPLAYED: [Rule, string][] = [
  [
    'checks.maxFailedCommands',
    'the limit counts every failed reply of a session, and most are in no event (smtp-server\'s own replies to unknown, ' +
      'malformed or out-of-sequence commands, 501 for a malformed recipient address, 538 for AUTH before STARTTLS, failed ' +
      'DNS lookups), so where a session would reach another limit cannot be told. A recorded closure stands; the ' +
      'candidate\'s limit is not applied to other sessions, nor to the refusals the candidate adds.',
  ],
  ['smtp.maxConnections', 'the relay-wide connection count includes connections that were refused before any event; a recorded refusal stands.'],
  ['smtp.greetingDelayMs', 'when a client spoke relative to the greeting is not recorded; a recorded early-talker refusal stands.'],
  ['storage', 'the state of the disk is not recorded; a recorded storage refusal stands.'],
];

/** Facts events carry only since the relay records them: older events keep their recorded outcome for these rules. */
const OLD_EVENTS: [Rule, string][] = [
  [
    'relay.access',
    'recipients refused before the relay recorded the refused address: the recorded relay-access refusal stands (and a ' +
      'recipient refused by checks.maxRecipients that would now pass is not checked for relay access or the recipient list).',
  ],
  ['recipient.unknown', 'recipients refused before the relay recorded the refused address: the recorded unknown-recipient refusal stands.'],
  [
    'checks.maxMessageSize',
    'MAIL FROM attempts recorded before the relay kept the declared SIZE=: the declared size was not checked (a recorded ' +
      'refusal stands; the stored size of an accepted message is still checked).',
  ],
];

const CONNECT_REPLAYED = new Set<Rule>(['limits.concurrentConnections', 'limits.unknownRecipients', 'limits.authFailures']);
const MAIL_REPLAYED = new Set<Rule>(['limits.messagesPerHour', 'checks.reverseDns', 'checks.senderDomain']);

interface Sess {
  ip: string;
  key: string;
  parsed: ParsedIp | null;
  /** the candidate closed this session: ignore what the client did after */
  dead: boolean;
  /** the candidate refused this transaction's MAIL FROM: ignore its RCPT and DATA */
  txnDead: boolean;
  /** this transaction's distinct recipients (smtp-server keeps one entry per address) */
  rcpts: Set<string>;
  authUser: string | null;
  /** a monitor-mode block refusal was recorded for this session's AUTH in progress: its auth event is not judged again */
  authBlockSeen?: boolean;
}

interface RuleTally {
  before: number;
  after: number;
  newlyRejected: number;
  newlyPassed: number;
  monitored: number;
  ips: Map<string, { newlyRejected: number; newlyPassed: number }>;
}

const HOUR = 3_600_000;

export async function simulate(history: EventPages, candidate: Config, hours: number, now: number, opts: SimulateOptions = {}): Promise<SimulationResult> {
  const c = candidate;
  const to = now + 1;
  const from = now - hours * HOUR;
  const warm = Math.min(24 * HOUR, HOUR + 60_000 * Math.max(c.limits.unknownRecipients.blockMinutes, c.limits.authFailures.blockMinutes, c.limits.authFailures.windowMinutes));
  const start = from - warm;
  const maxEvents = opts.maxEvents ?? 2_000_000;
  // 1,000: about 10 ms of reading and replaying on a loaded 2-core machine, the most an SMTP command waits for it (5,000
  // made every command of a session wait up to ~50 ms: the soak test saw 30 msg/s fall to 13 during a replay)
  const pageSize = opts.pageSize ?? 1000;
  const yieldTurn = opts.pause ?? (() => new Promise<void>((r) => setImmediate(r)));
  const gone = opts.gone ?? (() => false);
  /** a turn of the event loop before each read; a replay whose answer is no longer wanted stops there */
  const pause = async () => {
    await yieldTurn();
    if (gone()) throw new SimulationStopped();
  };
  const cutStep = Math.max(1, opts.cutStep ?? 10_000);
  let truncated = false;
  // what the retention had deleted when the replay began (see `pruned` below)
  const prunes = history.pruned?.prunes ?? 0;
  let pruned = false;
  // what was recorded before the call is read; waited for without holding the event loop (the reads then never wait)
  if (history.written) await history.written();
  if (gone()) throw new SimulationStopped();
  const reads: Reads = { noFlush: history.written !== undefined };
  /** where reading starts: after this event (the newest one the cap skips), or at `start` */
  let after: { at: number; id: number } | null = null;
  /**
   * The (maxEvents + 1)th newest event of these kinds (null: any kind) in [start, to), or null when there are no more
   * than maxEvents: a walk down the index from the newest, `step` entries at a time, a turn of the event loop before
   * each (a single OFFSET of up to maxEvents held the event loop for the whole walk, and sorted it).
   */
  const nthNewest = async (cutAfter: NonNullable<EventPages['cutAfter']>, kinds: readonly string[] | null, step: number) => {
    let at: { at: number; id: number } | null = null;
    for (let passed = 0; passed <= maxEvents; ) {
      await pause();
      const n = Math.min(step, maxEvents + 1 - passed);
      const found: { at: number; id: number } | null = cutAfter(start, to, kinds, n - 1, { ...reads, before: at });
      if (!found) return null;
      at = found;
      passed += n;
    }
    return at;
  };
  // Most windows hold fewer events than the cap, which the (at) index alone tells, cheaply. Otherwise the cut is found
  // among the kinds replayed (helo, delivery and admin events are never read, and the cap counts only those): the
  // (maxEvents + 1)th newest is the newest one skipped.
  const cutAfter = history.cutAfter?.bind(history);
  if (cutAfter && (await nthNewest(cutAfter, null, 5 * cutStep)) !== null) {
    after = await nthNewest(cutAfter, KINDS, cutStep);
    truncated = after !== null;
  }

  let clock = start;
  const anvil = new Anvil({ now: () => clock, authWindowMs: () => c.limits.authFailures.windowMinutes * 60_000 });
  const matcher = new GroupMatcher(c.groups);
  const sessions = new Map<string, Sess>();
  const tallies = new Map<Rule, RuleTally>();
  const newlyRejectedIps = new Set<string>();
  const newlyPassedIps = new Set<string>();
  const replayed = { events: 0, connections: 0, mailAttempts: 0, recipients: 0, messages: 0 };
  let assumedMessages = 0;
  let counting = false;

  const tally = (rule: Rule): RuleTally => {
    let t = tallies.get(rule);
    if (!t) {
      t = { before: 0, after: 0, newlyRejected: 0, newlyPassed: 0, monitored: 0, ips: new Map() };
      tallies.set(rule, t);
    }
    return t;
  };
  const ipTally = (t: RuleTally, ip: string) => {
    let x = t.ips.get(ip);
    if (!x) t.ips.set(ip, (x = { newlyRejected: 0, newlyPassed: 0 }));
    return x;
  };

  /** Record one decision: the rule that refused it in the recording and under the candidate (null: passed). */
  /**
   * `newlyBy`: for a refusal that stays a refusal under another rule, the rule whose coming or going is the change
   * (the unknown-recipient limit's 421 in place of a 550, or the other way round): newly rejected by it when it is the
   * candidate's, newly passed by it when it was the recorded one.
   */
  const compare = (s: Sess, recorded: Rule | null, cand: Rule | null, monitored: Rule[] = [], newlyBy?: Rule) => {
    if (!counting) return;
    if (recorded) tally(recorded).before++;
    if (cand) tally(cand).after++;
    for (const m of monitored) tally(m).monitored++;
    if (newlyBy !== undefined && recorded !== null && cand !== null && recorded !== cand) {
      const t = tally(newlyBy);
      if (newlyBy === cand) {
        t.newlyRejected++;
        ipTally(t, s.key).newlyRejected++;
        newlyRejectedIps.add(s.key);
      } else if (newlyBy === recorded) {
        t.newlyPassed++;
        ipTally(t, s.key).newlyPassed++;
        newlyPassedIps.add(s.key);
      }
    } else if (recorded === null && cand !== null) {
      const t = tally(cand);
      t.newlyRejected++;
      ipTally(t, s.key).newlyRejected++;
      newlyRejectedIps.add(s.key);
    } else if (recorded !== null && cand === null) {
      const t = tally(recorded);
      t.newlyPassed++;
      ipTally(t, s.key).newlyPassed++;
      newlyPassedIps.add(s.key);
    }
  };

  /** per rule: recorded decisions in the window whose outcome stood (see NOT_REPLAYED), or that lacked a fact (OLD_EVENTS) */
  const stood = new Map<Rule, number>();
  const stands = (rule: Rule) => {
    if (counting) stood.set(rule, (stood.get(rule) ?? 0) + 1);
  };
  const unjudged = stands;

  const sessionOf = (e: RelayEvent): Sess | null => {
    if (!e.sessionId || !e.ip) return null;
    let s = sessions.get(e.sessionId);
    if (!s) {
      const parsed = parseIp(e.ip);
      s = { ip: e.ip, key: parsed ? clientKey(parsed, c.limits.ipv6Prefix) : e.ip, parsed, dead: false, txnDead: false, rcpts: new Set(), authUser: null };
      sessions.set(e.sessionId, s);
    }
    return s;
  };
  const inGroups = (s: Sess, groups: readonly string[]) => (s.parsed ? matcher.inAny(s.parsed, groups, clock) : false);
  /** the first enforced verdict, the monitor ones before it */
  const firstEnforced = (vs: policy.Verdict[]) => {
    const monitored: Rule[] = [];
    for (const v of vs) {
      if (v.mode === 'enforce') return { verdict: v, monitored };
      monitored.push(v.rule);
    }
    return { verdict: null, monitored };
  };
  const block = (s: Sess, v: policy.Verdict) => {
    if (v.blockMinutes) anvil.block(s.key, policy.blockOf(v.rule, v.blockMinutes, clock));
  };

  // --- the reader: pages of events with a little lookahead ---------------------------------------------------------
  let buf: RelayEvent[] = [];
  let pos = 0;
  let eof = false;
  const fill = async () => {
    if (eof || buf.length - pos >= 64) return;
    // a turn of the event loop first, the page right after it (then this page's events are replayed in the same turn)
    await pause();
    // The retention pruned since the replay began, and may have deleted events it has not read yet: it deletes only
    // events at or before pruned.maxAt, so none is missing when that is before what is left to read (from `after`, or
    // from `start`). Events already read are replayed all the same.
    const m = history.pruned;
    if (!pruned && m && m.prunes !== prunes && m.maxAt >= (after?.at ?? start)) pruned = true;
    const page = history.page(start, to, after, KINDS, pageSize, reads);
    if (page.length < pageSize) eof = true;
    if (page.length) {
      const last = page[page.length - 1]!;
      after = { at: last.at, id: last.id };
    }
    buf = buf.slice(pos).concat(page);
    pos = 0;
  };
  /**
   * The refusals of one decision, from position `from` on: consecutive rejected events of this session at this
   * stage, monitor-mode ones first, ending with the first enforced one (the next enforced one is the client's next
   * attempt). At RCPT, in events of relays before one refusal per reply, an unknown recipient's 550 may be followed by the
   * unknown-recipient limit's 421 for the same recipient, which is the same decision.
   */
  const group = (sessionId: string, stage: string, from: number): Rejected[] => {
    const out: Rejected[] = [];
    for (let k = from; k < buf.length; k++) {
      const e = buf[k]!;
      if (e.kind !== 'rejected' || e.sessionId !== sessionId || e.stage !== stage) break;
      const last = out[out.length - 1];
      if (last?.enforced) {
        // (relays before one refusal per reply recorded a 550 and the limit's 421 for the same recipient; today's
        // 550 for one recipient and the 421 for the next, which reaches the limit, are two RCPTs)
        if (!(last.rule === 'recipient.unknown' && e.rule === 'limits.unknownRecipients' && last.to === e.to)) break;
        out.push(e);
        break;
      }
      out.push(e);
    }
    return out;
  };

  for (;;) {
    await fill();
    if (pos >= buf.length) break;
    const e = buf[pos]!;
    clock = Math.max(clock, e.at);
    counting = e.at >= from;
    if (counting) replayed.events++;
    const s = sessionOf(e);
    if (!s) {
      pos++;
      continue;
    }
    const sid = e.sessionId!;

    switch (e.kind) {
      case 'connect': {
        const rec = group(sid, 'connect', pos + 1);
        pos += 1 + rec.length;
        if (counting) replayed.connections++;
        const connections = anvil.connectionOpened(s.key);
        const recorded = rec.find((r) => r.enforced) ?? null;
        if (recorded && !CONNECT_REPLAYED.has(recorded.rule)) {
          stands(recorded.rule);
          compare(s, recorded.rule, recorded.rule);
          s.dead = true;
          break;
        }
        const { verdict, monitored } = firstEnforced(
          policy.atConnect(c, { ip: s.ip, exempt: inGroups(s, c.limits.exemptGroups), connections, block: anvil.blocked(s.key) }),
        );
        compare(s, recorded?.rule ?? null, verdict?.rule ?? null, monitored);
        if (verdict) s.dead = true;
        break;
      }

      case 'disconnect':
        pos++;
        anvil.connectionClosed(s.key);
        sessions.delete(sid);
        break;

      case 'auth': {
        const rec = group(sid, 'auth', pos + 1);
        pos += 1 + rec.length;
        if (s.dead) break;
        if (s.authBlockSeen) s.authBlockSeen = false;
        else if (blockedAt(s, 'auth', [])) break;
        if (e.success) {
          s.authUser = e.user;
          break;
        }
        const failures = anvil.authFailure(s.key);
        const { verdict, monitored } = firstEnforced(policy.authFailureLimit(c, { ip: s.ip, exempt: inGroups(s, c.limits.exemptGroups), failuresInWindow: failures }));
        const recorded = rec.find((r) => r.enforced && r.rule === 'limits.authFailures') ?? null;
        compare(s, recorded?.rule ?? null, verdict?.rule ?? null, monitored);
        if (verdict) {
          block(s, verdict);
          s.dead = true;
        }
        break;
      }

      case 'mail':
      case 'rejected': {
        if (e.kind === 'rejected' && e.stage === 'auth' && e.blocked) {
          // an AUTH refused by a block (before the password was checked: no auth event follows an enforced one)
          pos++;
          if (s.dead) break;
          if (!e.enforced) s.authBlockSeen = true;
          blockedAt(s, 'auth', [e]);
          break;
        }
        if (e.kind === 'rejected' && e.stage !== 'mail' && e.stage !== 'rcpt' && e.stage !== 'data') {
          // refusals we do not replay (failed commands, greeting, stray connect-stage ones): the recorded outcome stands
          pos++;
          if (!s.dead && e.enforced) {
            stands(e.rule);
            compare(s, e.rule, e.rule);
          }
          if (e.enforced && (e.rule === 'checks.maxFailedCommands' || e.stage === 'connect')) s.dead = true;
          break;
        }
        if (e.kind === 'rejected' && e.stage === 'rcpt') {
          pos = rcptAttempt(s, sid, pos);
          break;
        }
        if (e.kind === 'rejected' && e.stage === 'data') {
          const rec = group(sid, 'data', pos);
          pos += rec.length;
          dataRefused(s, rec);
          break;
        }
        // a MAIL FROM attempt: its monitor/enforced refusals, then the mail event if it passed
        const rec = e.kind === 'rejected' ? group(sid, 'mail', pos) : [];
        let next = pos + rec.length;
        let passedEvent: Extract<RelayEvent, { kind: 'mail' }> | null = null;
        const m = buf[next];
        if (m && m.kind === 'mail' && m.sessionId === sid && !rec.some((r) => r.enforced)) {
          passedEvent = m;
          next++;
        }
        pos = next;
        mailAttempt(s, rec, passedEvent);
        break;
      }

      case 'rcpt':
        pos = rcptAttempt(s, sid, pos);
        break;

      case 'accepted': {
        pos++;
        if (counting) replayed.messages++;
        if (s.dead || s.txnDead) {
          s.txnDead = false;
          s.rcpts.clear();
          break;
        }
        const { verdict, monitored } = firstEnforced(policy.messageTooBig(c.checks.maxMessageSize, e.size));
        compare(s, null, verdict?.rule ?? null, monitored);
        if (!verdict) anvil.messageAccepted(s.key);
        s.rcpts.clear();
        break;
      }

      default:
        pos++;
    }
  }

  /**
   * A block the candidate set while this session was open refuses and closes it at its next AUTH, MAIL FROM or RCPT
   * TO (policy.blockedNow, as the live relay does); `rec` holds the attempt's recorded refusals. True when the attempt
   * is decided here: the candidate closes the session, or the recording's block refused it and the candidate has no
   * block (what the attempt would have met next was never recorded: it is taken as passed).
   */
  function blockedAt(s: Sess, stage: 'auth' | 'mail' | 'rcpt', rec: readonly Rejected[]): boolean {
    const recorded = rec.find((r) => r.blocked && r.enforced) ?? null;
    const { verdict, monitored } = firstEnforced(
      policy.blockedNow(c, { ip: s.ip, exempt: inGroups(s, c.limits.exemptGroups), block: anvil.blocked(s.key) }, stage),
    );
    if (recorded || verdict || monitored.length) compare(s, recorded?.rule ?? null, verdict?.rule ?? null, monitored);
    if (verdict) {
      s.dead = true;
      return true;
    }
    return recorded !== null;
  }

  function mailAttempt(s: Sess, recAll: Rejected[], passed: Extract<RelayEvent, { kind: 'mail' }> | null): void {
    if (s.dead) return;
    if (counting) replayed.mailAttempts++;
    s.rcpts.clear();
    s.txnDead = false;
    if (blockedAt(s, 'mail', recAll)) {
      // closed by the candidate's block, or let through it with nothing recorded past the block: no message assumed
      s.txnDead = true;
      return;
    }
    const rec = recAll.filter((r) => !r.blocked);
    const recorded = rec.find((r) => r.enforced) ?? null;
    // the SIZE= the client declared (null: none); undefined: recorded before the relay kept it
    const declaredSize = passed?.declaredSize !== undefined ? passed.declaredSize : rec.find((r) => r.declaredSize !== undefined)?.declaredSize;
    if (declaredSize === undefined) unjudged('checks.maxMessageSize');
    if (recorded && !(MAIL_REPLAYED.has(recorded.rule) || (recorded.rule === 'checks.maxMessageSize' && declaredSize !== undefined))) {
      // storage, or a declared SIZE refused before the relay recorded it: the recorded outcome stands
      stands(recorded.rule);
      compare(s, recorded.rule, recorded.rule);
      s.txnDead = true;
      return;
    }
    let reverseDnsFact: ReverseDnsFact | null = null;
    let senderDomainFact: SenderDomainFact | null = null;
    for (const r of rec) {
      if (r.rule === 'checks.reverseDns') reverseDnsFact = r.code >= 500 ? { result: 'none' } : { result: 'temperror', reason: 'recorded' };
      if (r.rule === 'checks.senderDomain') {
        senderDomainFact = r.code >= 500 ? (r.text.includes('null MX') ? { result: 'nullmx' } : { result: 'nodomain' }) : { result: 'temperror', reason: 'recorded' };
      }
    }
    const dnsExempt = s.authUser !== null || inGroups(s, c.relay.allowGroups);
    const from = passed?.from ?? '';
    const at = from.lastIndexOf('@');
    const senderDomain = at >= 0 ? from.slice(at + 1) : null;
    const needs = policy.mailNeeds(c, { dnsExempt, senderDomain: senderDomain ?? 'recorded' });
    const { verdict, monitored } = firstEnforced(
      policy.atMailFrom(c, {
        ip: s.ip,
        exempt: inGroups(s, c.limits.exemptGroups),
        dnsExempt,
        messagesLastHour: anvil.messagesLastHour(s.key),
        declaredSize: declaredSize ?? null,
        senderDomain,
        senderDomainFact: needs.senderDomain ? senderDomainFact : null,
        reverseDnsFact: needs.reverseDns ? reverseDnsFact : null,
      }),
    );
    compare(s, recorded?.rule ?? null, verdict?.rule ?? null, monitored);
    if (verdict) {
      s.txnDead = true;
    } else if (recorded) {
      // newly passes: its recipients and data were never recorded; assume it would have been accepted
      anvil.messageAccepted(s.key);
      if (counting) assumedMessages++;
      s.txnDead = true;
    }
  }

  /**
   * One RCPT TO: its refusals (possibly none) and the rcpt event if it passed. Returns the new position. The recipient
   * is the passing rcpt event's address or the one its refusal recorded; it is classified under the candidate by the
   * live relay's own routing (local domain and recipient list, relay access) in the live relay's order.
   */
  function rcptAttempt(s: Sess, sid: string, at: number): number {
    const recAll = group(sid, 'rcpt', at);
    let next = at + recAll.length;
    const r = buf[next];
    let passed: Extract<RelayEvent, { kind: 'rcpt' }> | null = null;
    if (r && r.kind === 'rcpt' && r.sessionId === sid && !recAll.some((x) => x.enforced)) {
      passed = r;
      next++;
    }
    if (s.dead || s.txnDead) return next;
    if (counting) replayed.recipients++;
    // (a recipient let through a recorded block has nothing recorded past it: it is not added to the transaction)
    if (blockedAt(s, 'rcpt', recAll)) return next;
    const rec = recAll.filter((x) => !x.blocked);
    const recordedTooMany = rec.find((x) => x.enforced && x.rule === 'checks.maxRecipients') ?? null;
    const tooMany = firstEnforced(policy.tooManyRecipients(c, s.rcpts.size));
    compare(s, recordedTooMany?.rule ?? null, tooMany.verdict?.rule ?? null, tooMany.monitored);
    if (tooMany.verdict) return next;
    const recordedRoute = rec.find((x) => x.enforced && (x.rule === 'relay.access' || x.rule === 'recipient.unknown')) ?? null;
    const recordedLimit = rec.find((x) => x.enforced && x.rule === 'limits.unknownRecipients') ?? null;
    // the refusal this recipient got: one reply each, the limit's 421 for the one that reached the unknown-recipient
    // limit (recorded alone; relays before that recorded a 550 with it), else its route's
    const recorded: Rule | null = recordedLimit ? recordedLimit.rule : (recordedRoute?.rule ?? null);
    const address = passed?.to ?? rec.find((x) => x.to !== undefined)?.to ?? null;
    if (address === null) {
      // a refusal recorded before the relay kept the refused recipient: its classification stands
      if (recordedRoute) stands(recordedRoute.rule);
      else if (recordedTooMany) unjudged('relay.access');
      if (recordedRoute?.rule === 'relay.access') {
        compare(s, 'relay.access', 'relay.access');
        return next;
      }
      if (recordedRoute?.rule === 'recipient.unknown' || recordedLimit) {
        unknownRecipient(s, recorded);
        return next;
      }
      s.rcpts.add(`#${s.rcpts.size}`);
      return next;
    }
    const route = classifyRecipient(c, address);
    if (route.kind === 'invalid') {
      // only a domainless postmaster under a candidate without local domains: refused with 501, not by a rule
      return next;
    }
    const mayRelay = s.authUser !== null || inGroups(s, c.relay.allowGroups);
    if ((route.kind === 'relay' || route.kind === 'trick') && !mayRelay) {
      compare(s, recorded, 'relay.access');
      return next;
    }
    if (route.kind === 'local' && !route.known) {
      unknownRecipient(s, recorded);
      return next;
    }
    compare(s, recorded, null);
    s.rcpts.add(address.toLowerCase());
    return next;
  }

  /**
   * An unknown recipient under the candidate: refused with 550 (recipient.unknown), or, when it reaches the
   * unknown-recipient limit, with the limit's 421 instead (as the relay answers and records it), which sets the block.
   */
  function unknownRecipient(s: Sess, recorded: Rule | null): void {
    const exempt = inGroups(s, c.limits.exemptGroups);
    const unknownLastHour = exempt ? 0 : anvil.unknownRecipient(s.key);
    const lim = firstEnforced(policy.unknownRecipientLimit(c, { ip: s.ip, exempt, unknownLastHour }));
    compare(s, recorded, lim.verdict ? lim.verdict.rule : 'recipient.unknown', lim.monitored, 'limits.unknownRecipients');
    if (lim.verdict) {
      block(s, lim.verdict);
      s.dead = true;
    }
  }

  function dataRefused(s: Sess, rec: Rejected[]): void {
    const recorded = rec.find((r) => r.enforced) ?? null;
    // monitor-mode reports only: the message went on to be accepted, and the accepted event ends the transaction
    if (!recorded) return;
    if (s.dead || s.txnDead) {
      s.txnDead = false;
      s.rcpts.clear();
      return;
    }
    let cand: Rule | null = recorded.rule;
    if (recorded.rule === 'checks.maxMessageSize' && c.checks.maxMessageSize.mode !== 'enforce') cand = null;
    if (recorded.rule === 'smtp.bareLineEndings' && c.smtp.bareLineEndings !== 'reject') cand = null;
    if (recorded.rule === 'storage') stands('storage');
    compare(s, recorded.rule, cand, cand === null && recorded.rule === 'checks.maxMessageSize' && c.checks.maxMessageSize.mode === 'monitor' ? [recorded.rule] : []);
    if (cand === null) {
      anvil.messageAccepted(s.key);
      if (counting) assumedMessages++;
    }
    s.rcpts.clear();
  }

  const rules: SimulationRule[] = [...tallies.entries()]
    .filter(([, t]) => t.before || t.after || t.newlyPassed || t.newlyRejected || t.monitored)
    .map(([rule, t]) => ({
      rule,
      unit: UNIT[rule] ?? 'session',
      before: t.before,
      after: t.after,
      newlyRejected: t.newlyRejected,
      newlyPassed: t.newlyPassed,
      monitored: t.monitored,
      ips: [...t.ips.entries()]
        .map(([ip, x]) => ({ ip, ...x }))
        .sort((a, b) => b.newlyRejected + b.newlyPassed - (a.newlyRejected + a.newlyPassed))
        .slice(0, 100),
    }))
    .sort((a, b) => b.newlyRejected + b.newlyPassed - (a.newlyRejected + a.newlyPassed) || b.after - a.after);

  const notReplayed: SimulationNotReplayed[] = [
    ...NOT_REPLAYED.map(([rule, why]) => ({ rule, decisions: stood.get(rule) ?? 0, why })),
    ...OLD_EVENTS.filter(([rule]) => stood.get(rule)).map(([rule, why]) => ({ rule, decisions: stood.get(rule)!, why })),
  ];
  const caveats = [
    'DNS checks: a client that passed is assumed to pass again; only recorded refusals (and monitor-mode reports) carry DNS facts.',
    'Message sizes are the stored sizes (with the Received header the relay adds).',
    ...notReplayed.map((n) => `Not replayed: ${n.rule} (${n.decisions} recorded decision(s) in the window): ${n.why}`),
  ];
  if (assumedMessages > 0) {
    caveats.push(`${assumedMessages} refused message(s) that would newly pass are assumed to have been accepted (their recipients and data were never sent).`);
  }
  if (truncated) caveats.push(`The window held more than ${maxEvents} events; the oldest were skipped.`);
  if (pruned) {
    caveats.push(
      'The retention (events.retentionDays, or the history size bound) deleted stored events while the replay read ' +
        'them, before it had read them: the oldest events of the window (or of the warm-up before it) may be missing ' +
        'from the replay.',
    );
  }

  return {
    from,
    to: now,
    replayed,
    rules,
    newlyRejectedIps: [...newlyRejectedIps].sort(),
    newlyPassedIps: [...newlyPassedIps].sort(),
    caveats,
    notReplayed,
    truncated,
    ...(pruned ? { pruned: true } : {}),
  };
}
