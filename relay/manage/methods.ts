/**
 * The JSON-RPC methods. Each handler gets its params already validated against shared/protocol.ts (defaults filled)
 * and the caller's context; it returns the result or throws an RpcError. Roles are checked before a handler runs.
 * Config changes go through ConfigRevisions (conflict check, history, diff) and fill ctx.change for the audit log.
 */
import type { Config } from '../../shared/config.ts';
import type { RelayEvent } from '../../shared/events.ts';
import { GroupMatcher, clientKey, parseAddressSpec, parseIp, parseIsoInstant, specContains, type ParsedIp } from '../../shared/ip.ts';
import {
  ErrorCode,
  PROTOCOL_VERSION,
  RpcError,
  type ClientInfo,
  type MethodName,
  type QueueSummary,
  type ParsedParams,
  type Result,
} from '../../shared/protocol.ts';
import type { Anvil } from '../clients/anvil.ts';
import type { EventBus } from '../events/bus.ts';
import type { AuditLog } from '../store/audit.ts';
import type { ConfigStore } from '../store/config-store.ts';
import type { EventHistory } from '../store/history.ts';
import { LastAdminError, type TokenStore } from '../store/tokens.ts';
import { PASSWORD_NOT_KEPT, type ConfigRevisions, type Recorded } from './config-revisions.ts';
import { hideSecrets } from './diff.ts';
import { compileFilter, ipSpec, type CompiledFilter } from './filter.ts';
import type { Session } from './session.ts';
import type { Removal } from '../queue/spool.ts';
import { Subscription } from './session.ts';
import { SimulationStopped, simulate } from './simulate.ts';
import type { StatsCollector } from './stats.ts';

/** What a delete or return asked of the queue did: the queue's own type (a type import only). */
export type QueueRemoval = Removal;

/** What the management channel needs of the queue (relay/queue/spool.ts's Queue). */
export interface QueueLike {
  /** one page, oldest first, of every message or of those waiting for `destination`, and how many there are */
  page(offset: number, limit: number, destination?: string): { items: Result<'queue.list'>['items']; total: number };
  retry(id: string): boolean;
  /** every queued message (or every one waiting for `destination`) made due now, as a manual retry; ones being delivered are counted and left alone */
  retryAll(filter?: { destination?: string }): { scheduled: number; delivering: number; heldBack?: number; down?: { destination: string; messages: number; heldBack: number }[] };
  /** the queue at a glance (cheap: stats.tick asks for it every second) */
  summary(): QueueSummary;
  delete(id: string, by?: string | null): Promise<QueueRemoval>;
  bounce(id: string): Promise<QueueRemoval>;
  readonly size: number;
  readonly acceptingMail: boolean;
  readonly activeDeliveries?: number;
}

export interface MethodDeps {
  config: ConfigStore;
  revisions: ConfigRevisions;
  bus: EventBus;
  anvil: Anvil;
  queue: QueueLike;
  tokens: TokenStore;
  history: EventHistory;
  audit: AuditLog;
  stats: StatsCollector;
  /** the relay's clock */
  now: () => number;
  info: () => { hostname: string; smtp: string; fingerprint256: string; startedAt: number };
  /** the server's view of its sessions */
  sessions: () => Iterable<Session>;
  limits: { subscriberBufferEvents: number; maxSubscriptionsPerSession: number; backlogMax: number; backlogScanMax: number };
}

export interface CallContext {
  session: Session;
  /** set by handlers that changed the config (for the audit log) */
  change?: Recorded;
  /** run once the reply has been sent (or, for a request without id, once it is done) */
  afterReply: (() => void)[];
}

type Handler<M extends MethodName> = (params: ParsedParams<M>, ctx: CallContext) => Result<M> | Promise<Result<M>>;
export type Handlers = { [M in MethodName]: M extends 'auth.login' ? null : Handler<M> };

const notFound = (message: string) => new RpcError(ErrorCode.NotFound, message);

const matchers = new WeakMap<Config, GroupMatcher>();
function matcherFor(c: Config): GroupMatcher {
  let m = matchers.get(c);
  if (!m) matchers.set(c, (m = new GroupMatcher(c.groups)));
  return m;
}

/** The first address of a client key ("192.0.2.5", or "2001:db8:1:2::/64" for an IPv6 network). */
function keyAddress(key: string): ParsedIp | null {
  return parseIp(key.includes('/') ? key.slice(0, key.indexOf('/')) : key);
}

function canonical(address: string): string {
  const r = parseAddressSpec(address);
  return r.ok ? r.spec.text : address.trim();
}

/**
 * Rows of stored history read per page by a scan (events.subscribe's backlog: a span of this many ids; events.query:
 * this many rows). A page is read and matched in one go on the thread that runs the SMTP sessions; between pages the
 * scan gives the event loop back (PageTurns). Measured (small events, 2,500 rows): about 3 to 10 ms when every row is
 * parsed, about 2 ms when a text or CIDR prefilter skips them.
 */
const SCAN_PAGE_ROWS = 2500;
/** events.query with a CIDR or range reads at most this many rows per call (`more` says to go on) */
const QUERY_SCAN_MAX = 200_000;

/**
 * Turns of the event loop for history scans (events.subscribe's backlog, events.query, policy.simulate's replay): a
 * scan awaits next() before each page and reads that page right after, synchronously. Pages of all scans run one per turn of the event loop (a setImmediate each), in the order asked, so
 * SMTP sessions and sockets get a turn between any two pages however many scans run at once (N scans each yielding
 * with their own setImmediate would run N pages back to back in one turn).
 */
export class PageTurns {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) this.schedule();
    });
  }

  private schedule(): void {
    this.scheduled = true;
    setImmediate(() => {
      // the continuation of the awaiting scan runs as a microtask right after this callback, before the next
      // immediate; the next page is scheduled for the next turn
      const go = this.waiting.shift();
      if (go) {
        go();
        this.schedule();
      } else this.scheduled = false;
    });
  }
}

/**
 * events.subscribe's backlog: the newest `backlogMax` events matching `filter` with id > sinceId and id <= lastId
 * (the bus's last id when the subscription was registered: later events reach the subscription itself), oldest
 * first, in one piece, so a console that is told `truncated` knows everything it lacks lies between sinceId and
 * backlog[0]. The bus's memory (`mem`, taken with lastId) holds the newest events and counts first; older ones come
 * from the history, read newest first from just below the memory down towards sinceId, a page of ids at a time and
 * a turn of the event loop each, until one more than fits is found (which is how `truncated` is known without reading
 * further). A filter that matches little must not make one call read the whole history: after `backlogScanMax`
 * stored ids the reading stops, and the backlog, short of the oldest part, says `truncated` too. The IP and text parts
 * of the filter are tested on each stored row before its JSON is parsed (filter.rowTest). `gone()` says the answer is
 * no longer wanted (the session closed, the subscription went): the scan stops at the next page.
 */
async function subscribeBacklog(
  d: MethodDeps,
  turns: PageTurns,
  sinceId: number,
  mem: RelayEvent[],
  lastId: number,
  filter: CompiledFilter,
  gone: () => boolean,
): Promise<{ backlog: RelayEvent[]; truncated: boolean }> {
  const max = d.limits.backlogMax;
  const recent = mem.filter((e) => filter.test(e));
  if (recent.length > max) return { backlog: recent.slice(-max), truncated: true };
  // one more than still fits: finding it means the backlog is cut
  const want = max - recent.length + 1;
  const older: RelayEvent[] = []; // newest first
  let hi = (mem[0]?.id ?? lastId + 1) - 1;
  if (hi <= sinceId) return { backlog: recent, truncated: false };
  // waits for the history writer, without holding the event loop: everything up to lastId is stored from here on, so
  // the pages need not wait again
  await d.history.written();
  if (gone()) return { backlog: [], truncated: true };
  const oldestStored = d.history.oldestId({ noFlush: true });
  let floor = oldestStored === null ? hi : Math.max(sinceId, oldestStored - 1);
  // what the retention had deleted when the stored part of the backlog was known (see below)
  const prunes = d.history.pruned.prunes;
  const scanMax = Math.max(d.limits.backlogScanMax, max + 1);
  let scanned = 0;
  let truncated = false;
  const where = { kinds: filter.kinds, ip: filter.exactIp, rowTest: filter.rowTest, noFlush: true };
  while (hi > floor && older.length < want) {
    if (scanned >= scanMax) {
      truncated = true;
      break;
    }
    await turns.next();
    if (gone()) return { backlog: [], truncated: true };
    // The retention pruned while this scan waited for its turn: rows stored when it began and not read yet may be
    // gone (every deleted id is at most pruned.maxId). The backlog must stay in one piece, so the scan reads on only
    // above the highest deleted id, and says `truncated`: what is missing lies between sinceId and backlog[0].
    const pruned = d.history.pruned;
    if (pruned.prunes !== prunes && pruned.maxId > floor) {
      floor = pruned.maxId;
      truncated = true;
      if (hi <= floor) break;
    }
    const lo = Math.max(floor, hi - Math.min(SCAN_PAGE_ROWS, scanMax - scanned));
    for (const e of d.history.rangeDesc(lo, hi, SCAN_PAGE_ROWS, where)) {
      if (!filter.test(e)) continue;
      older.push(e);
      if (older.length === want) break;
    }
    scanned += hi - lo;
    hi = lo;
  }
  if (older.length === want) {
    older.pop();
    truncated = true;
  }
  return { backlog: [...older.reverse(), ...recent], truncated };
}

export function createHandlers(d: MethodDeps): Handlers {
  let simulating: Promise<unknown> = Promise.resolve();
  const turns = new PageTurns();

  const iso = (ms: number) => new Date(ms).toISOString();
  const liveAt = (entry: { expiresAt?: string | null }, now: number) => !entry.expiresAt || Date.parse(entry.expiresAt) > now;

  /** The anvil keys an address spec names: its client key for a single address, else every tracked key inside it. */
  const keysOf = (text: string, c: Config): string[] => {
    const r = parseAddressSpec(text);
    if (!r.ok) return [];
    if (r.spec.kind === 'single') return [clientKey(parseIp(r.spec.text)!, c.limits.ipv6Prefix)];
    const out: string[] = [];
    for (const key of d.anvil.keys()) {
      const a = keyAddress(key);
      if (key === r.spec.text || (a && specContains(r.spec, a))) out.push(key);
    }
    return out;
  };

  const clientInfo = (s: ReturnType<Anvil['list']>[number], c: Config, now: number): ClientInfo => {
    const a = keyAddress(s.key);
    const m = a ? matcherFor(c).findEntry(a, c.limits.exemptGroups, now) : null;
    return {
      ip: s.key,
      connections: s.connections,
      messagesLastHour: s.messagesLastHour,
      unknownRecipientsLastHour: s.unknownRecipientsLastHour,
      authFailuresInWindow: s.authFailuresInWindow,
      blockedUntil: s.blocked?.until ?? null,
      blockedRule: s.blocked?.rule ?? null,
      blockReason: s.blocked?.reason ?? null,
      trusted: m !== null,
      trustedBy: m ? { group: m.group, address: canonical(m.entry.address), expiresAt: m.entry.expiresAt ?? null } : null,
      lastSeen: s.lastSeen,
      recentRejections: s.recentRejections.map((r) => ({ at: r.at, rule: r.rule, code: r.code, text: r.text, enforced: r.enforced })),
    };
  };

  const meta = (ctx: CallContext, source: string, baseRevision?: number) => ({
    by: ctx.session.auth!.name,
    source,
    remoteIp: ctx.session.ip,
    baseRevision,
  });

  const handlers: Handlers = {
    'auth.login': null,

    // --- config ------------------------------------------------------------------------------------------------
    'config.get': (p, ctx) => {
      const revision = p.revision ?? d.revisions.current;
      const config = d.revisions.get(revision);
      if (!config) throw notFound(`config revision ${revision} is not in the history (the relay keeps the last 1000)`);
      return { revision, config: ctx.session.auth!.role === 'admin' ? config : hideSecrets(config) };
    },

    'config.update': (p, ctx) => {
      const r = d.revisions.update(p.config, meta(ctx, 'config.update', p.baseRevision));
      ctx.change = r;
      return { revision: r.revision, changes: r.changes };
    },

    'config.history': (p) => ({ current: d.revisions.current, revisions: d.revisions.list(p.limit, p.beforeRevision) }),

    'config.revert': (p, ctx) => {
      const config = d.revisions.get(p.revision);
      if (!config) throw notFound(`config revision ${p.revision} is not in the history (the relay keeps the last 1000)`);
      if (config.delivery.smarthost.password === PASSWORD_NOT_KEPT) {
        throw new RpcError(
          ErrorCode.InvalidConfig,
          `revision ${p.revision} used a smarthost password, which the history does not keep, and none is set now: set delivery.smarthost.password along with the rest of that revision with config.update`,
          { issues: [{ path: ['delivery', 'smarthost', 'password'], message: 'not kept in the history; set it again', code: 'custom' }] },
        );
      }
      const r = d.revisions.update(config, meta(ctx, `config.revert to ${p.revision}`, p.baseRevision));
      ctx.change = r;
      return { revision: r.revision, changes: r.changes };
    },

    // --- groups ------------------------------------------------------------------------------------------------
    'groups.addEntry': (p, ctx) => {
      const spec = ipSpec(p.address, ['address']);
      let created = false;
      let updated = false;
      let entry: Config['groups'][string][number] | null = null;
      let previous: Config['groups'][string][number] | null = null;
      const r = d.revisions.modify((draft) => {
        let list = Object.hasOwn(draft.groups, p.group) ? draft.groups[p.group] : undefined;
        if (!list) {
          list = draft.groups[p.group] = [];
          created = true;
        }
        const existing = list.find((e) => canonical(e.address) === spec.text);
        if (existing) {
          previous = structuredClone(existing);
          if (p.comment !== undefined) existing.comment = p.comment;
          if (p.expiresAt !== undefined) existing.expiresAt = p.expiresAt;
          updated = true;
          entry = existing;
        } else {
          entry = { address: spec.text, comment: p.comment ?? null, expiresAt: p.expiresAt ?? null, addedBy: ctx.session.auth!.name, addedAt: iso(d.now()) };
          list.push(entry);
        }
      }, meta(ctx, 'groups.addEntry', p.baseRevision));
      ctx.change = r;
      return { revision: r.revision, group: p.group, entry: structuredClone(entry!), created, updated, previous };
    },

    'groups.removeEntry': (p, ctx) => {
      const want = canonical(p.address);
      const list = Object.hasOwn(d.config.current.groups, p.group) ? d.config.current.groups[p.group] : undefined;
      if (!list) throw notFound(`there is no group "${p.group}"`);
      const found = list.find((e) => canonical(e.address) === want);
      if (!found) throw notFound(`group "${p.group}" has no entry ${want}`);
      const r = d.revisions.modify((draft) => {
        draft.groups[p.group] = draft.groups[p.group]!.filter((e) => canonical(e.address) !== want);
      }, meta(ctx, 'groups.removeEntry', p.baseRevision));
      ctx.change = r;
      return { revision: r.revision, group: p.group, removed: structuredClone(found) };
    },

    // --- clients -----------------------------------------------------------------------------------------------
    'clients.list': (p) => {
      const c = d.config.current;
      const now = d.now();
      const spec = p.ip !== undefined ? ipSpec(p.ip, ['ip']) : null;
      // newest first without sorting: the anvil keeps its clients in last-seen order (up to MAX_CLIENTS of them)
      const { clients, total } = d.anvil.recent(p.limit, (key, blocked) => {
        if (p.blockedOnly && !blocked) return false;
        if (!spec || key === spec.text) return true;
        const a = keyAddress(key);
        return a !== null && specContains(spec, a);
      });
      return { clients: clients.map((s) => clientInfo(s, c, now)), total };
    },

    'clients.trust': (p, ctx) => {
      const spec = ipSpec(p.ip, ['ip']);
      const c = d.config.current;
      const group = c.limits.exemptGroups[0];
      if (group === undefined) {
        throw new RpcError(ErrorCode.InvalidConfig, 'limits.exemptGroups is empty, so there is no group to trust an address in; add a group to it first', {
          issues: [{ path: ['limits', 'exemptGroups'], message: 'is empty', code: 'custom' }],
        });
      }
      // Trusting never takes trust away: no entry is shortened, none loses its comment (groups.addEntry edits entries).
      // An entry of the group that holds the whole of `ip` and lasts at least as long as asked (expiresAt; left out or
      // null: for ever) is enough: nothing is written (alreadyTrusted). Else an entry for exactly `ip` is lengthened to
      // the expiry asked (updated, previous: what it was; a comment is only filled in where it had none), or, when
      // there is none, one is added (a network holding `ip` that ends sooner is left as it is).
      const now = d.now();
      const end = (at: string | null | undefined) => (at ? (parseIsoInstant(at) ?? Date.parse(at)) : Infinity);
      const asked = end(p.expiresAt);
      const endOf = (e: { expiresAt?: string | null }) => end(e.expiresAt);
      const lo = spec.family === 4 ? { family: 4 as const, v4: spec.first } : { family: 6 as const, v6: spec.first };
      const hi = spec.family === 4 ? { family: 4 as const, v4: spec.last } : { family: 6 as const, v6: spec.last };
      const holds = (e: { address: string }) => {
        const r = parseAddressSpec(e.address);
        return r.ok && specContains(r.spec, lo) && specContains(r.spec, hi);
      };
      const list = (Object.hasOwn(c.groups, group) ? c.groups[group] : undefined) ?? [];
      const isExact = (e: { address: string }) => canonical(e.address) === spec.text;
      const lasting = list.filter((e) => liveAt(e, now) && endOf(e) >= asked && holds(e));
      type Entry = Config['groups'][string][number];
      let entry: Entry | null = lasting.find(isExact) ?? lasting[0] ?? null;
      let alreadyTrusted = entry !== null;
      let updated = false;
      let previous: Entry | null = null;
      let revision = d.revisions.current;
      let written = false;
      const exact = list.find(isExact);
      // an exact entry that is lengthened (or whose empty comment is filled in) trusted the address already if it was live
      const lengthen = exact !== undefined && endOf(exact) < asked;
      const fill = exact !== undefined && !exact.comment && !!p.comment;
      if (entry === null && exact !== undefined && !lengthen && !fill) {
        // (an expired entry asked to last until a moment before it ended: nothing to write)
        entry = exact;
      } else if (entry === null) {
        alreadyTrusted = exact !== undefined && liveAt(exact, now);
        const r = d.revisions.modify((draft) => {
          const l = Object.hasOwn(draft.groups, group) ? draft.groups[group]! : (draft.groups[group] = []);
          const ex = l.find(isExact);
          if (ex) {
            previous = structuredClone(ex);
            if (endOf(ex) < asked) ex.expiresAt = p.expiresAt ?? null;
            if (!ex.comment && p.comment) ex.comment = p.comment;
            updated = true;
            entry = ex;
          } else {
            entry = { address: spec.text, comment: p.comment ?? null, expiresAt: p.expiresAt ?? null, addedBy: ctx.session.auth!.name, addedAt: iso(now) };
            l.push(entry);
          }
        }, meta(ctx, 'clients.trust'));
        ctx.change = r;
        revision = r.revision;
        written = true;
      }
      // clear its block and counters: the next command from it is judged afresh
      let unblocked = false;
      for (const key of keysOf(spec.text, d.config.current)) {
        if (d.anvil.blocked(key)) unblocked = true;
        d.anvil.forgive(key);
      }
      if (written) d.bus.emit({ kind: 'trusted', sessionId: null, ip: spec.kind === 'single' ? spec.text : null, address: spec.text, group, by: ctx.session.auth!.name });
      return { revision, group, entry: structuredClone(entry!), alreadyTrusted, unblocked, updated, previous };
    },

    'clients.unblock': (p) => {
      const spec = ipSpec(p.ip, ['ip']);
      let unblocked = false;
      for (const key of keysOf(spec.text, d.config.current)) if (d.anvil.unblock(key)) unblocked = true;
      return { unblocked };
    },

    // --- events ------------------------------------------------------------------------------------------------
    'events.subscribe': async (p, ctx) => {
      const s = ctx.session;
      if (s.subscriptions.size >= d.limits.maxSubscriptionsPerSession) {
        throw new RpcError(ErrorCode.RateLimited, `this session has ${s.subscriptions.size} subscriptions (the most allowed); unsubscribe one first`, { retryAfterMs: 0 });
      }
      const filter = compileFilter(p.filter);
      // Contiguity with the live stream: the subscription is registered now, before the backlog is read (which
      // yields to the event loop between pages, while SMTP sessions go on emitting). Every event after `lastId`
      // reaches the subscription through the bus; the backlog is made of what lies at or below `lastId` (the bus's
      // memory taken in this same step, then the history below it). The subscription is held (it sends nothing)
      // until this answer has gone out, so its first events.batch follows the backlog and starts at lastId + 1.
      // The limit is checked and the subscription added in one step, so subscribes racing on a session cannot
      // pass it together.
      const lastId = d.bus.lastId;
      const mem = p.sinceId !== undefined ? d.bus.since(p.sinceId) : [];
      const sub = new Subscription(s.newSubscriptionId(), filter, d.limits.subscriberBufferEvents);
      sub.held = true;
      s.subscriptions.set(sub.id, sub);
      ctx.afterReply.push(() => {
        sub.held = false;
      });
      // the session closed (its close clears its subscriptions) or this subscription was unsubscribed meanwhile
      const gone = () => s.closed || s.subscriptions.get(sub.id) !== sub;
      let r: { backlog: RelayEvent[]; truncated: boolean } = { backlog: [], truncated: false };
      try {
        if (p.sinceId !== undefined) r = await subscribeBacklog(d, turns, p.sinceId, mem, lastId, filter, gone);
      } catch (err) {
        s.subscriptions.delete(sub.id);
        throw err;
      }
      return { subscriptionId: sub.id, backlog: r.backlog, truncated: r.truncated, lastId, backlogMax: d.limits.backlogMax };
    },

    'events.unsubscribe': (p, ctx) => ({ ok: ctx.session.subscriptions.delete(p.subscriptionId) }),

    'events.query': async (p, ctx) => {
      const s = ctx.session;
      const filter = compileFilter({ ip: p.ip, kinds: p.kinds, rejectionsOnly: p.rejectionsOnly }, []);
      const base = { from: p.from, to: p.to, kinds: p.kinds, rejectionsOnly: p.rejectionsOnly, sessionId: p.sessionId, order: p.order };
      // Read in pages of at most SCAN_PAGE_ROWS rows, a turn of the event loop each (PageTurns), once the history
      // writer has stored everything recorded before this call (waited for without holding the event loop).
      const out: RelayEvent[] = [];
      let cursor = p.cursor;
      // The retention may prune between two pages and delete rows of the range this call has not read yet: the answer
      // then says `pruned`. What a prune deletes is at or before pruned.maxAt: it can only be missing here if that
      // reaches into [from, to) and, oldest first, is not all behind the last event read (newest first, what is left
      // to read is the oldest part, where deletes happen).
      const prunes = d.history.pruned.prunes;
      let pruned = false;
      const checkPruned = () => {
        const m = d.history.pruned;
        if (pruned || m.prunes === prunes) return;
        if (p.from !== undefined && m.maxAt < p.from) return;
        const last = out[out.length - 1];
        if (p.order === 'asc' && last !== undefined && m.maxAt < last.at) return;
        pruned = true;
      };
      const answer = (more: boolean, nextCursor: number | null): Result<'events.query'> =>
        pruned ? { events: out, more, nextCursor, pruned: true } : { events: out, more, nextCursor };
      await d.history.written();
      if (filter.spec === null) {
        // the index serves the whole filter: every row read is a result
        for (;;) {
          await turns.next();
          if (s.closed) break;
          checkPruned();
          const r = d.history.query({ ...base, ip: filter.exactIp ?? undefined, cursor, limit: Math.min(SCAN_PAGE_ROWS, p.limit - out.length) }, { noFlush: true });
          out.push(...r.events);
          if (r.events.length > 0) cursor = r.events[r.events.length - 1]!.id;
          if (!r.more) return answer(false, null);
          if (out.length >= p.limit) return answer(true, cursor ?? null);
        }
        return answer(true, cursor ?? null);
      }
      // a CIDR or range: scan pages and match in code, the address tested on each row before its JSON is parsed
      // (at most QUERY_SCAN_MAX rows per call; `more` says to go on)
      let scanned = 0;
      while (out.length < p.limit && scanned < QUERY_SCAN_MAX) {
        await turns.next();
        if (s.closed) break;
        checkPruned();
        const r = d.history.query({ ...base, cursor, limit: SCAN_PAGE_ROWS }, { rowTest: filter.rowTest, noFlush: true });
        let i = 0;
        for (; i < r.events.length; i++) {
          const e = r.events[i]!;
          if (!filter.test(e)) continue;
          out.push(e);
          if (out.length === p.limit) {
            // stop here: the rest of this page is read again from this event on
            cursor = e.id;
            i++;
            break;
          }
        }
        if (i >= r.events.length) {
          // the whole page was read
          if (!r.more) return answer(false, null);
          cursor = r.lastRowId ?? cursor;
          scanned += SCAN_PAGE_ROWS;
        }
      }
      return answer(true, cursor ?? null);
    },

    // --- stats -------------------------------------------------------------------------------------------------
    'stats.get': () => ({ ...d.stats.snapshot(), series: d.stats.seriesPoints() }),

    // --- queue -------------------------------------------------------------------------------------------------
    'queue.list': (p) => {
      // (only the page is built: the whole list took ~170 ms of the event loop with 100,000 queued messages)
      return d.queue.page(p.offset, p.limit, p.destination);
    },
    'queue.retry': (p) => {
      // every message (or every one for a destination) in one call: one action, one audit line
      if (p.all === true) {
        const r = d.queue.retryAll(p.destination === undefined ? undefined : { destination: p.destination });
        // (heldBack, down: a destination that is down takes one message now, its probe; the others wait for its answer)
        return { ok: true, scheduled: r.scheduled, delivering: r.delivering, ...(r.down ? { heldBack: r.heldBack, down: r.down } : {}) };
      }
      if (!d.queue.retry(p.id)) throw notFound(`no message ${p.id} in the queue (delivered, bounced or deleted already?)`);
      return { ok: true };
    },
    'queue.delete': async (p, ctx) => {
      // a message being delivered is not cut: the delete or return is pending until the attempt ends (pending: true)
      const r = p.bounce ? await d.queue.bounce(p.id) : await d.queue.delete(p.id, ctx.session.auth!.name);
      const what = p.bounce ? 'return' : 'deletion';
      switch (r.result) {
        case 'removed':
          // (returned: whether its sender got a bounce; with bounce only)
          return { ok: true, pending: false, ...(p.bounce ? { returned: r.returned ?? true } : {}) };
        case 'pending':
          return { ok: true, pending: true };
        case 'not-found':
          throw notFound(`no message ${p.id} in the queue (delivered, bounced or deleted already?)`);
        case 'conflict':
          throw new RpcError(
            ErrorCode.Conflict,
            r.removal === 'delete'
              ? `message ${p.id} is being deleted already (without a bounce): it leaves the queue when its delivery attempt ends; it cannot be returned to its sender now`
              : `message ${p.id} is being returned to its sender already: it leaves the queue when its delivery attempt ends; it cannot be deleted without a bounce now`,
          );
        case 'failed':
          throw new RpcError(
            ErrorCode.InternalError,
            r.what === 'bounce'
              ? `the bounce for ${p.id} could not be stored (${r.reason}); nothing changed: the message stays queued`
              : r.what === 'record'
                ? `the ${what} of ${p.id} could not be recorded on disk (${r.reason}); nothing changed: the message stays queued, and a delivery under way goes on`
                : `the ${what} of ${p.id} failed (${r.reason}; see the relay's log); the message stays queued`,
          );
        case 'unrecorded':
          throw new RpcError(
            ErrorCode.InternalError,
            `${p.id} has left the queue${p.bounce ? (r.returned === false ? ' (no bounce was sent)' : ' and its bounce is stored') : ''}, but its removal could not be recorded on disk (${r.reason}): after a restart of the relay it may be queued again`,
          );
      }
    },

    // --- tokens ------------------------------------------------------------------------------------------------
    'tokens.list': () => {
      const counts = new Map<string, number>();
      for (const s of d.sessions()) if (s.auth && !s.closed) counts.set(s.auth.name, (counts.get(s.auth.name) ?? 0) + 1);
      return { tokens: d.tokens.list().map((t) => ({ name: t.name, role: t.role, createdAt: t.createdAt, sessions: counts.get(t.name) ?? 0 })) };
    },
    'tokens.create': (p) => {
      if (d.tokens.list().some((t) => t.name === p.name)) {
        throw new RpcError(ErrorCode.Conflict, `a token named "${p.name}" exists already; revoke it first or pick another name`);
      }
      const token = d.tokens.create(p.name, p.role);
      return { name: p.name, role: p.role, token };
    },
    'tokens.revoke': (p, ctx) => {
      let n = 0;
      for (const s of d.sessions()) if (s.auth?.name === p.name && !s.closed) n++;
      // The last admin token is not revoked over the channel: nobody could change the relay from a console after it
      // (only the command line on the relay's host could make another). The command line may still do it, and warns.
      // (judged by the store under its lock, on tokens.json as it is now)
      let revoked: boolean;
      try {
        revoked = d.tokens.revoke(p.name, { keepLastAdmin: true });
      } catch (err) {
        if (!(err instanceof LastAdminError)) throw err;
        throw new RpcError(
          ErrorCode.InvalidConfig,
          `"${p.name}" is the last admin token: without it nobody could change the relay from a console. Create another admin token first (tokens.create with role "admin", or \`token create --name NAME --role admin\` on the relay's host), log in with it, then revoke this one`,
          { issues: [{ path: ['name'], message: 'is the last admin token; create another admin token first', code: 'custom' }] },
        );
      }
      if (!revoked) throw notFound(`there is no token "${p.name}"`);
      void ctx;
      return { closedSessions: n };
    },

    // --- audit -------------------------------------------------------------------------------------------------
    'audit.list': (p) => ({ entries: d.audit.tail(p.limit, p.beforeSeq) }),

    // --- policy ------------------------------------------------------------------------------------------------
    'policy.simulate': async (p, ctx) => {
      const s = ctx.session;
      // One replay at a time: a second caller waits for the first. Its pages take their turns of the event loop with
      // the other history scans' (events.subscribe, events.query): one page of any of them per turn. A replay whose
      // session has closed (while it ran, or while it waited for its turn) stops before its next read, and the next
      // caller's starts.
      const run = simulating.then(() => simulate(d.history, p.config, p.hours, Math.min(p.until ?? Infinity, d.now()), { pause: () => turns.next(), gone: () => s.closed }));
      simulating = run.catch(() => {});
      try {
        return await run;
      } catch (err) {
        // no one to answer: the reply to a closed session is not sent
        if (err instanceof SimulationStopped) throw new RpcError(ErrorCode.InternalError, err.message);
        throw err;
      }
    },
  };
  return handlers;
}

export const loginInfo = (d: MethodDeps, name: string, role: 'admin' | 'viewer'): Result<'auth.login'> => ({
  name,
  role,
  protocolVersion: PROTOCOL_VERSION,
  relay: d.info(),
  configRevision: d.revisions.current,
  lastEventId: d.bus.lastId,
  historyId: d.history.historyId,
  serverTime: d.now(),
});
