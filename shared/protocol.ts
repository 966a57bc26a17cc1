/**
 * The management protocol: JSON-RPC 2.0 over wss, one object per text frame.
 *
 * This file is the contract between the relay (relay/manage/) and every console. It holds the zod schema of every
 * method's params and result, of every notification, the envelope, the error codes and the WebSocket close codes.
 * The relay validates every request with these schemas; a client types its calls with them:
 *
 *   call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>>
 *
 * Pure: imports only zod and the other shared schemas (no Node-only or DOM-only API), so the browser console can use it.
 * Times are milliseconds since the epoch unless a field says ISO (group entries keep the config's ISO strings).
 */
import { z } from 'zod';
import { ConfigSchema, GroupEntry, withNullWording } from './config.ts';
import { EVENT_KINDS, RelayEvent, Rule, type EventKind as EventKindName } from './events.ts';

export const PROTOCOL_VERSION = 1;
/** Largest text frame the relay reads; a larger one closes the socket with 1009. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** The first request must be auth.login, within this time, or the socket closes (CloseCode.LoginTimeout). */
export const LOGIN_TIMEOUT_MS = 10_000;
/** events.batch notifications come at most this often per subscription. */
export const BATCH_INTERVAL_MS = 100;
/** stats.tick comes this often. */
export const STATS_TICK_MS = 1000;
/** Failed logins from one IP within LOGIN_FAILURE_WINDOW_MS before that IP is locked out for LOGIN_LOCKOUT_MS. */
export const LOGIN_MAX_FAILURES = 5;
export const LOGIN_FAILURE_WINDOW_MS = 60_000;
export const LOGIN_LOCKOUT_MS = 5 * 60_000;

// -----------------------------------------------------------------------------------------------------------------
// Error codes (JSON-RPC error.code) and WebSocket close codes

export const ErrorCode = {
  /** the frame is not JSON */
  ParseError: -32700,
  /** JSON, but not a JSON-RPC 2.0 request */
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  /** params do not match the method's schema; error.data is InvalidParamsData (the zod issues) */
  InvalidParams: -32602,
  InternalError: -32603,
  /** not logged in (or a wrong token on auth.login) */
  Unauthenticated: 4001,
  /** this token's role may not call this method (a viewer on an admin method) */
  Forbidden: 4003,
  /** the thing named does not exist (queue id, group entry, config revision, token) */
  NotFound: 4004,
  /** baseRevision is stale: someone else changed the config; error.data is ConflictData */
  Conflict: 4009,
  /** the config that would result is invalid (e.g. a group entry clashes); error.data is InvalidParamsData */
  InvalidConfig: 4022,
  /** too many requests on this connection, or too many failed logins from this IP; error.data is RateLimitedData */
  RateLimited: 4029,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Why the relay closed the socket (WebSocket close codes). */
export const CloseCode = {
  Normal: 1000,
  /** the relay is shutting down */
  GoingAway: 1001,
  /** a binary frame: the protocol is text only */
  UnsupportedData: 1003,
  /** a frame over MAX_FRAME_BYTES (sent by ws itself) */
  MessageTooBig: 1009,
  /** no successful auth.login within LOGIN_TIMEOUT_MS */
  LoginTimeout: 4001,
  /** the session's token was revoked */
  TokenRevoked: 4003,
  /** the console did not read its events for too long (its buffer stayed full) */
  Stalled: 4008,
  /** the IP is locked out after failed logins, or the connection kept flooding requests */
  RateLimited: 4029,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const Issue = z.object({
  path: z.array(z.union([z.string(), z.number()])),
  message: z.string(),
  code: z.string(),
});
export type Issue = z.infer<typeof Issue>;
export const InvalidParamsData = z.object({ issues: z.array(Issue) });
export type InvalidParamsData = z.infer<typeof InvalidParamsData>;
export const ConflictData = z.object({ baseRevision: z.int(), currentRevision: z.int() });
export type ConflictData = z.infer<typeof ConflictData>;
export const RateLimitedData = z.object({ retryAfterMs: z.int().nonnegative() });
export type RateLimitedData = z.infer<typeof RateLimitedData>;

// -----------------------------------------------------------------------------------------------------------------
// The JSON-RPC 2.0 envelope

export const RequestId = z.union([z.string().max(200), z.int(), z.null()]);
export type RequestId = z.infer<typeof RequestId>;

/** A request (with id) or a client notification (without; the relay answers none). Params by name only. */
export const JsonRpcRequest = z.strictObject({
  jsonrpc: z.literal('2.0'),
  id: RequestId.optional(),
  method: z.string().min(1).max(100),
  params: z.record(z.string(), z.unknown()).optional(),
});
export type JsonRpcRequest = z.infer<typeof JsonRpcRequest>;

export const JsonRpcError = z.object({ code: z.int(), message: z.string(), data: z.unknown().optional() });
export type JsonRpcError = z.infer<typeof JsonRpcError>;

export const JsonRpcSuccess = z.object({ jsonrpc: z.literal('2.0'), id: RequestId, result: z.unknown() });
export const JsonRpcFailure = z.object({ jsonrpc: z.literal('2.0'), id: RequestId, error: JsonRpcError });
export const JsonRpcNotificationMsg = z.object({ jsonrpc: z.literal('2.0'), method: z.string(), params: z.unknown() });
/** Anything the relay sends: a response (result or error) or a notification. */
export const ServerMessage = z.union([JsonRpcSuccess, JsonRpcFailure, JsonRpcNotificationMsg]);
export type JsonRpcSuccess = z.infer<typeof JsonRpcSuccess>;
export type JsonRpcFailure = z.infer<typeof JsonRpcFailure>;
export type ServerMessage = z.infer<typeof ServerMessage>;

// -----------------------------------------------------------------------------------------------------------------
// Building blocks

export const Role = z.enum(['admin', 'viewer']);
export type Role = z.infer<typeof Role>;
/** who may call a method: "public" (auth.login only), any logged-in token ("viewer"), or admins only */
export type Access = 'public' | Role;

const Millis = z.number().describe('milliseconds since the epoch');
const IpText = z.string().min(1).max(100).describe('an IPv4 or IPv6 address');
const Revision = z.int().min(1);
const TokenName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'token names are 1-64 letters, digits, ".", "_" or "-"');
const GroupName = z.string().min(1).max(64);
const isoInstant = GroupEntry.shape.expiresAt;
const Empty = z.strictObject({});

export const EventKind = z.enum(EVENT_KINDS as [EventKindName, ...EventKindName[]]);

/** One changed leaf of the config, e.g. { path: "limits.messagesPerHour.max", before: 100, after: 20 }. Secrets read "(secret)". */
export const ConfigChange = z.object({
  path: z.string(),
  op: z.enum(['add', 'remove', 'change']),
  before: z.unknown().optional(),
  after: z.unknown().optional(),
});
export type ConfigChange = z.infer<typeof ConfigChange>;

export const RevisionInfo = z.object({
  revision: Revision,
  at: Millis,
  /** token name, "file" (SIGHUP), "cli", "relay" (first start) */
  by: z.string(),
  /** method or cause: "config.update", "clients.trust", "SIGHUP", "start" ... */
  source: z.string(),
  remoteIp: z.string().nullable(),
  /** what changed from the revision before (empty for the first one we know) */
  changes: z.array(ConfigChange),
});
export type RevisionInfo = z.infer<typeof RevisionInfo>;

export const EventFilter = z.strictObject({
  /** an address (exact) or a CIDR/range spec */
  ip: z.string().min(1).max(100).optional(),
  kinds: z.array(EventKind).max(EVENT_KINDS.length).optional(),
  rejectionsOnly: z.boolean().optional(),
  /** case-insensitive substring of the event's text fields (reply text, addresses, reason) */
  text: z.string().min(1).max(200).optional(),
});
export type EventFilter = z.infer<typeof EventFilter>;

export const RecentRejection = z.object({ at: Millis, rule: Rule, code: z.int(), text: z.string(), enforced: z.boolean() });

export const ClientInfo = z.object({
  /** the counting key: an IPv4 address or an IPv6 network (limits.ipv6Prefix) */
  ip: z.string(),
  connections: z.int().nonnegative(),
  messagesLastHour: z.int().nonnegative(),
  unknownRecipientsLastHour: z.int().nonnegative(),
  authFailuresInWindow: z.int().nonnegative(),
  blockedUntil: Millis.nullable(),
  blockedRule: Rule.nullable(),
  blockReason: z.string().nullable(),
  /** in one of limits.exemptGroups right now */
  trusted: z.boolean(),
  /** the group entry that makes it trusted */
  trustedBy: z.object({ group: z.string(), address: z.string(), expiresAt: z.string().nullable() }).nullable(),
  lastSeen: Millis,
  recentRejections: z.array(RecentRejection),
});
export type ClientInfo = z.infer<typeof ClientInfo>;

export const QueueItem = z.object({
  id: z.string(),
  from: z.string(),
  /** recipients still to deliver */
  to: z.array(z.string()),
  done: z.array(z.object({ to: z.string(), status: z.enum(['delivered', 'bounced']) })),
  size: z.int().nonnegative(),
  receivedAt: Millis,
  kind: z.enum(['message', 'dsn']),
  status: z.enum(['queued', 'delivering', 'deferred']),
  attempts: z.int().nonnegative(),
  nextAttemptAt: Millis,
  lastError: z.string().nullable(),
  /**
   * a queue.delete not done yet: 'delete' or 'bounce' (a return to the sender) asked for while the message was being
   * delivered (it leaves the queue when that attempt ends), or a return whose bounce could not be stored yet (tried
   * again at nextAttemptAt, never delivered meanwhile); null: none. Relays older than this field leave it out.
   */
  removal: z.enum(['delete', 'bounce']).nullable().optional(),
  /**
   * the destinations its waiting recipients go to, as the queue names them (the keys of `Stats.queue.destinations`,
   * `queue.list {destination}` and `queue.retry {all: true, destination}`). Relays older than this field leave it out.
   */
  destinations: z.array(z.string()).optional(),
});
export type QueueItem = z.infer<typeof QueueItem>;

/** A destination (a key of the relay's queue, e.g. "mx:corp.example", "local:10.0.0.5:25", "smarthost:smtp.isp.example:587"). */
const DestinationKey = z.string().min(1).max(300).regex(/^\S+$/, 'a destination is written without spaces, as queue.list shows it (e.g. mx:example.com, local:10.0.0.5:25)');

/** One destination of the queue: the messages waiting for it and how its last attempts went. */
export const QueueDestination = z.object({
  destination: z.string(),
  /** queued messages with a recipient waiting for it */
  messages: z.int().nonnegative(),
  /** its last attempt failed at the connection level (no answer, refused, timeout, a 421 greeting): it is probed, one connection at a time */
  down: z.boolean(),
  /** why its last attempt failed (one line), or null */
  lastError: z.string().nullable(),
  /**
   * when it is tried next: for one that is down, its next probe; else the earliest next attempt of a message waiting
   * for it; null when none is scheduled (all being delivered)
   */
  nextAttemptAt: Millis.nullable(),
  /** delivery connections open to it now (relays before it leave it out) */
  connections: z.int().nonnegative().optional(),
  /** deliveries to it that are due and wait for a free delivery connection (relays before it leave it out) */
  waitingForConnection: z.int().nonnegative().optional(),
  /**
   * its messages whose next attempt is still to come (not being delivered, not due yet): what a retry of it brings
   * forward. 0 with down false: a retry changes nothing (relays before it leave it out)
   */
  scheduledLater: z.int().nonnegative().optional(),
});
export type QueueDestination = z.infer<typeof QueueDestination>;

/** The queue at a glance (the relay's Queue.summary()). */
export const QueueSummary = z.object({
  messages: z.int().nonnegative(),
  /**
   * messages (not recipients, not attempts) that failed at least once and are not being delivered now (one deferred
   * without a connection because its destination is down counts too)
   */
  deferred: z.int().nonnegative(),
  /** when the oldest queued message was received, or null when the queue is empty */
  oldestReceivedAt: Millis.nullable(),
  /** the destinations with the most waiting messages (at most 10), most first */
  destinations: z.array(QueueDestination),
});
export type QueueSummary = z.infer<typeof QueueSummary>;

const RuleCounts = z.record(z.string(), z.int().nonnegative()).describe('rule id -> count');

export const StatsPoint = z.object({
  /** start of the second */
  at: Millis,
  accepted: z.int().nonnegative(),
  /** enforced rejections */
  rejected: z.int().nonnegative(),
  /** monitor-mode "would have rejected" */
  monitored: z.int().nonnegative(),
  connections: z.int().nonnegative(),
  events: z.int().nonnegative(),
  /** messages with a delivery in this second (a message delivered to two destinations in one second counts once) */
  delivered: z.int().nonnegative().optional(),
  /** messages whose delivery attempt ended deferred in this second (one per message, however many recipients and destinations) */
  deferred: z.int().nonnegative().optional(),
});
export type StatsPoint = z.infer<typeof StatsPoint>;

export const Stats = z.object({
  at: Millis,
  startedAt: Millis,
  /** since the relay started */
  totals: z.object({
    connections: z.int().nonnegative(),
    accepted: z.int().nonnegative(),
    rejected: z.int().nonnegative(),
    monitored: z.int().nonnegative(),
    delivered: z.int().nonnegative(),
    deferred: z.int().nonnegative(),
    bounced: z.int().nonnegative(),
    events: z.int().nonnegative(),
    /** enforced rejections per rule */
    rejectedByRule: RuleCounts,
    /** monitor-mode would-have-rejections per rule */
    monitoredByRule: RuleCounts,
  }),
  /** the last complete second */
  perSecond: StatsPoint,
  /** enforced rejections per rule over the last 15 minutes */
  rejectedByRule15m: RuleCounts,
  /** SMTP connections open now */
  openConnections: z.int().nonnegative(),
  /** clients by messages in the last hour (at most 10) */
  topTalkers: z.array(z.object({ ip: z.string(), messagesLastHour: z.int().nonnegative(), connections: z.int().nonnegative() })),
  /**
   * size, activeDeliveries and acceptingMail; then the figures of the queue's summary (QueueSummary: messages, deferred,
   * oldestReceivedAt, destinations), which relays older than them leave out
   */
  queue: z.object({
    size: z.int().nonnegative(),
    activeDeliveries: z.int().nonnegative(),
    acceptingMail: z.boolean(),
    ...QueueSummary.partial().shape,
  }),
  manage: z.object({ sessions: z.int().nonnegative(), subscriptions: z.int().nonnegative(), droppedEvents: z.int().nonnegative() }),
  history: z.object({ storedEvents: z.int().nonnegative(), oldestAt: Millis.nullable(), bytes: z.int().nonnegative() }),
  lastEventId: z.int().nonnegative(),
  configRevision: Revision,
});
export type Stats = z.infer<typeof Stats>;

/** stats.tick carries the same object as stats.get without the series. */
export const StatsGetResult = Stats.extend({
  /** one point per second, oldest first, up to the last 15 minutes (for the dashboard chart) */
  series: z.array(StatsPoint),
});

export const SimulationIp = z.object({
  ip: z.string(),
  newlyRejected: z.int().nonnegative(),
  newlyPassed: z.int().nonnegative(),
});
export const SimulationRule = z.object({
  rule: Rule,
  /** what one count is: a MAIL FROM attempt, a connection, a recipient, or a message (DATA) */
  unit: z.enum(['message', 'connection', 'recipient', 'session']),
  /** enforced rejections by this rule in the recorded traffic */
  before: z.int().nonnegative(),
  /** enforced rejections by this rule under the candidate config */
  after: z.int().nonnegative(),
  newlyRejected: z.int().nonnegative(),
  newlyPassed: z.int().nonnegative(),
  /** monitor mode in the candidate: would-have-rejections that it would report but not enforce */
  monitored: z.int().nonnegative(),
  ips: z.array(SimulationIp),
});
export type SimulationRule = z.infer<typeof SimulationRule>;

/** A rule policy.simulate could not replay from the recorded events: its recorded outcome stands. */
export const SimulationNotReplayed = z.object({
  rule: Rule,
  /** the recorded decisions in the window this applies to (refusals that stood, or attempts that lacked the fact) */
  decisions: z.int().nonnegative(),
  /** what the events do not tell, and what the simulation did instead */
  why: z.string(),
});
export type SimulationNotReplayed = z.infer<typeof SimulationNotReplayed>;

export const SimulationResult = z.object({
  from: Millis,
  to: Millis,
  replayed: z.object({
    events: z.int().nonnegative(),
    connections: z.int().nonnegative(),
    mailAttempts: z.int().nonnegative(),
    recipients: z.int().nonnegative(),
    messages: z.int().nonnegative(),
  }),
  /** only rules with a difference or a rejection either way */
  rules: z.array(SimulationRule),
  /** IPs with at least one newly rejected / newly passing attempt */
  newlyRejectedIps: z.array(z.string()),
  newlyPassedIps: z.array(z.string()),
  /** what could not be replayed and why (e.g. DNS checks of clients that passed) */
  caveats: z.array(z.string()),
  /**
   * The rules the events cannot replay, always listed (checks.maxFailedCommands, smtp.maxConnections,
   * smtp.greetingDelayMs, storage), and the ones some older events lacked a fact for (relay.access and
   * recipient.unknown without the refused address, checks.maxMessageSize without the declared SIZE=), with why.
   * The caveats repeat them in words. (Empty from a relay older than this field.)
   */
  notReplayed: z.array(SimulationNotReplayed).default([]),
  /** the window held more events than the simulation reads; the oldest were skipped */
  truncated: z.boolean(),
  /**
   * true when the retention (events.retentionDays, or the size bound) deleted stored events of the replayed span
   * (the window and its warm-up) while the replay read it in pages, before it had read them: the oldest events may be
   * missing from the replay (a caveat says so too). Absent otherwise, and from relays older than this field
   */
  pruned: z.boolean().optional(),
});
export type SimulationResult = z.infer<typeof SimulationResult>;

export const TokenInfo = z.object({
  name: z.string(),
  role: Role,
  createdAt: z.string(),
  /** sessions logged in with it right now */
  sessions: z.int().nonnegative(),
});

const GroupEntryOut = GroupEntry;

/** One line of DIR/audit.jsonl (an admin action). */
export const AuditEntry = z.object({
  seq: z.int().positive(),
  /** ISO 8601 */
  time: z.string(),
  at: Millis,
  /** token name */
  by: z.string(),
  role: z.string(),
  remoteIp: z.string().nullable(),
  method: z.string(),
  /** params with secrets replaced by "(secret)" and whole configs by "(see changes)" */
  params: z.record(z.string(), z.unknown()),
  ok: z.boolean(),
  error: z.object({ code: z.int(), message: z.string() }).optional(),
  /** the config revision this action made */
  revision: z.int().optional(),
  changes: z.array(ConfigChange).optional(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

// -----------------------------------------------------------------------------------------------------------------
// queue.retry: one message, or all of them (a strict union: the wrong mix of keys is refused, saying what is wrong)

const RETRY_BOTH = 'give either id (one message) or all: true (every queued message), not both';

/** queue.retry's params: `{id}` or `{all: true, destination?}`; the wrong mix is refused with words that name it. */
function QueueRetryParams() {
  const one = z.strictObject(
    {
      /** (never given: it tells the two forms apart) */
      all: z.undefined().optional(),
      id: z.string({ error: (iss) => (iss.input === undefined ? 'give id (one queued message) or all: true (every queued message)' : undefined) }).min(1).max(100),
    },
    {
      error: (iss) =>
        iss.code === 'unrecognized_keys' && iss.keys.includes('destination') ? 'destination goes with all: true (every message waiting for that destination), not with id' : undefined,
    },
  );
  const all = z.strictObject(
    {
      all: z.literal(true),
      /** only the messages with a recipient waiting for this destination */
      destination: DestinationKey.optional(),
    },
    { error: (iss) => (iss.code === 'unrecognized_keys' && iss.keys.includes('id') ? RETRY_BOTH : undefined) },
  );
  return z.discriminatedUnion('all', [one, all], {
    error: (iss) => (iss.code === 'invalid_union' ? 'all must be true (every queued message); to retry one message, give its id instead' : undefined),
  });
}

/** `{ok: true}` for one message; for all: how many were made due now, and how many were being delivered already (left alone). */
const QueueRetryResult = z.union([
  z.object({
    ok: z.literal(true),
    /** messages made due now */
    scheduled: z.int().nonnegative(),
    /** messages being delivered right now: left as they are (not counted in scheduled) */
    delivering: z.int().nonnegative(),
    /**
     * of the scheduled, how many are not tried now: every destination they wait for is down, and takes one connection
     * (a probe) until it answers; they follow as soon as it does. Absent from relays older than this field.
     */
    heldBack: z.int().nonnegative().optional(),
    /** the destinations that are down (the first 10 by messages): the retried messages waiting for each, and how many of those wait for its probe */
    down: z
      .array(z.object({ destination: z.string(), messages: z.int().nonnegative(), heldBack: z.int().nonnegative() }))
      .max(10)
      .optional(),
  }),
  // (strict: a bulk answer that lost a count must not pass as the one-message answer)
  z.strictObject({ ok: z.literal(true) }),
]);

// -----------------------------------------------------------------------------------------------------------------
// Methods

const method = <P extends z.ZodType, R extends z.ZodType>(access: Access, params: P, result: R, doc: string) => ({ access, params, result, doc });

export const Methods = {
  'auth.login': method(
    'public',
    z.strictObject({ token: z.string().min(1).max(200), client: z.string().max(200).optional() }),
    z.object({
      name: z.string(),
      role: Role,
      protocolVersion: z.int(),
      relay: z.object({
        hostname: z.string(),
        smtp: z.string(),
        fingerprint256: z.string(),
        startedAt: Millis,
      }),
      configRevision: Revision,
      lastEventId: z.int().nonnegative(),
      /** identifies the relay's event history (history.sqlite): event ids only grow within one historyId; another one means a fresh history */
      historyId: z.string().min(1),
      serverTime: Millis,
    }),
    'Log in with a token; must be the first request, within 10 s. Wrong token: 4001; 5 failures a minute from one IP: 4029 and a 5-minute lockout.',
  ),

  'config.get': method(
    'viewer',
    z.strictObject({ revision: Revision.optional() }),
    z.object({ revision: Revision, config: ConfigSchema }),
    'The current config (or an older revision kept in the history). Secrets are hidden from viewers.',
  ),
  'config.update': method(
    'admin',
    z.strictObject({ baseRevision: Revision, config: ConfigSchema }),
    z.object({ revision: Revision, changes: z.array(ConfigChange) }),
    'Replace the whole config. A stale baseRevision is 4009 (reload, reapply). Takes effect at once.',
  ),
  'config.history': method(
    'viewer',
    z.strictObject({ limit: z.int().min(1).max(1000).default(100), beforeRevision: Revision.optional() }),
    z.object({ current: Revision, revisions: z.array(RevisionInfo) }),
    'Config revisions, newest first, each with who, when, from where and what changed.',
  ),
  'config.revert': method(
    'admin',
    z.strictObject({ revision: Revision, baseRevision: Revision.optional() }),
    z.object({ revision: Revision, changes: z.array(ConfigChange) }),
    'Make the config as it was at `revision` again (a new revision). Unknown revision: 4004.',
  ),

  'groups.addEntry': method(
    'admin',
    z.strictObject({
      group: GroupName,
      address: z.string().min(1).max(100),
      comment: z.string().max(500).nullable().optional(),
      expiresAt: isoInstant,
      baseRevision: Revision.optional(),
    }),
    z.object({
      revision: Revision,
      group: z.string(),
      entry: GroupEntryOut,
      created: z.boolean(),
      updated: z.boolean(),
      /** the entry as it was before this call updated it (null when it was added), for an exact undo */
      previous: GroupEntryOut.nullable().optional(),
    }),
    'Add an address, CIDR or range to a group (the group is created if missing). An existing identical address is updated, not duplicated; `previous` is what it was.',
  ),
  'groups.removeEntry': method(
    'admin',
    z.strictObject({ group: GroupName, address: z.string().min(1).max(100), baseRevision: Revision.optional() }),
    z.object({ revision: Revision, group: z.string(), removed: GroupEntryOut }),
    'Remove an entry (matched by its canonical address). Not there: 4004.',
  ),

  'clients.list': method(
    'viewer',
    z.strictObject({
      ip: z.string().min(1).max(100).optional(),
      blockedOnly: z.boolean().optional(),
      limit: z.int().min(1).max(10_000).default(1000),
    }),
    z.object({ clients: z.array(ClientInfo), total: z.int().nonnegative() }),
    'Per-IP state from the relay counters, most recently seen first.',
  ),
  'clients.trust': method(
    'admin',
    z.strictObject({ ip: IpText, comment: z.string().max(500).nullable().optional(), expiresAt: isoInstant }),
    z.object({
      revision: Revision,
      group: z.string(),
      entry: GroupEntryOut,
      /** a live entry of that group trusted it already (nothing was added; see `updated` for a lengthened one) */
      alreadyTrusted: z.boolean(),
      /** a block was cleared */
      unblocked: z.boolean(),
      /**
       * the entry for exactly this address was lengthened to the expiry asked (its comment filled in if it had none);
       * never shortened. Relays before it leave it out
       */
      updated: z.boolean().optional(),
      /** that entry as it was before this call (null when nothing was updated), for an exact undo; relays before it leave it out */
      previous: GroupEntryOut.nullable().optional(),
    }),
    'One click: add the IP to the first of limits.exemptGroups (never shortening or rewording an entry there; an exact entry ending sooner than asked is lengthened), clear its block and counters. Idempotent. Effective for the next SMTP command.',
  ),
  'clients.unblock': method(
    'admin',
    z.strictObject({ ip: IpText }),
    z.object({ unblocked: z.boolean() }),
    'Clear the IP\'s block and the counters that lead to blocks.',
  ),

  'events.subscribe': method(
    'viewer',
    z.strictObject({ sinceId: z.int().nonnegative().optional(), filter: EventFilter.optional() }),
    z.object({
      subscriptionId: z.string(),
      /**
       * the newest matching events with id > sinceId, oldest first, in one piece up to lastId (from the history, then
       * memory); at most backlogMax
       */
      backlog: z.array(RelayEvent),
      /**
       * the backlog was cut: matching events between sinceId and backlog[0] are missing (query them with
       * events.query). Either more than backlogMax matched, or the relay stopped reading its history for a filter
       * that matched little (it reads at most 200,000 stored events below its memory per subscribe), or the retention
       * deleted stored events it had not read yet while it read the backlog (those are no longer stored)
       */
      truncated: z.boolean(),
      /**
       * the relay's last event id when the subscription was registered, before the backlog was read: the backlog ends
       * at or below it, and the subscription's events.batch notifications carry the matching events after it
       */
      lastId: z.int().nonnegative(),
      /** the most events this relay sends as a backlog (10,000 by default); absent from relays older than this field */
      backlogMax: z.int().positive().optional(),
    }),
    'Start a live stream: the backlog now, then events.batch notifications at most every 100 ms.',
  ),
  'events.unsubscribe': method(
    'viewer',
    z.strictObject({ subscriptionId: z.string() }),
    z.object({ ok: z.boolean() }),
    'Stop a stream.',
  ),
  'events.query': method(
    'viewer',
    z.strictObject({
      from: Millis.optional(),
      to: Millis.optional(),
      ip: z.string().min(1).max(100).optional(),
      kinds: z.array(EventKind).max(EVENT_KINDS.length).optional(),
      rejectionsOnly: z.boolean().optional(),
      sessionId: z.string().max(100).optional(),
      /** page: events with id below this (order desc) or above it (order asc) */
      cursor: z.int().nonnegative().optional(),
      order: z.enum(['asc', 'desc']).default('desc'),
      limit: z.int().min(1).max(10_000).default(500),
    }),
    z.object({
      events: z.array(RelayEvent),
      more: z.boolean(),
      nextCursor: z.int().nullable(),
      /**
       * true when the retention (events.retentionDays, or the size bound) deleted stored events of the range while this
       * call was reading it (it reads in pages) before it had read them: matching events may be missing from `events`
       * (older ones; they are no longer stored). Absent otherwise, and from relays older than this field
       */
      pruned: z.boolean().optional(),
    }),
    'Stored history (retention events.retentionDays) by time range [from, to), IP, kinds, session.',
  ),

  'stats.get': method('viewer', Empty, StatsGetResult, 'Counters now and the per-second series of the last 15 minutes.'),

  'queue.list': method(
    'viewer',
    z.strictObject({
      limit: z.int().min(1).max(10_000).default(1000),
      offset: z.int().nonnegative().default(0),
      /** only the messages with a recipient waiting for this destination (a key of Stats.queue.destinations) */
      destination: DestinationKey.optional(),
    }),
    z.object({ items: z.array(QueueItem), total: z.int().nonnegative() }),
    'Queued messages, oldest first; with destination, only those with a recipient waiting for it (total counts those).',
  ),
  'queue.retry': method('admin', QueueRetryParams(), QueueRetryResult, 'Try a queued message now ({id}; unknown id: 4004), or every queued message ({all: true}), or every one waiting for a destination ({all: true, destination}): one action, one audit line.'),
  'queue.delete': method(
    'admin',
    z.strictObject({ id: z.string().min(1).max(100), bounce: z.boolean().default(false) }),
    z.object({
      ok: z.literal(true),
      /**
       * false: the message has left the queue (with bounce: its DSN is stored). true: it is being delivered right now;
       * the attempt is not cut, and the message leaves the queue when it ends (recipients it delivered stay delivered,
       * the others are deleted or returned). Relays older than this field leave it out (their ok meant either).
       */
      pending: z.boolean().optional(),
      /**
       * with bounce: true and pending: false, whether the sender was sent a bounce (its DSN stored): false when the
       * delivery attempt that was under way delivered every recipient (nothing left to return) or the sender is null
       * (a bounce is never bounced). Left out otherwise, and by relays older than this field (their ok meant it was).
       */
      returned: z.boolean().optional(),
    }),
    'Delete a queued message (bounce: true returns it to its sender with a DSN); one being delivered goes when its attempt ends (pending: true). Unknown id: 4004; the other kind of removal pending already: 4009.',
  ),

  'tokens.list': method('admin', Empty, z.object({ tokens: z.array(TokenInfo) }), 'Tokens (never their secrets).'),
  'tokens.create': method(
    'admin',
    z.strictObject({ name: TokenName, role: Role }),
    z.object({ name: z.string(), role: Role, token: z.string().describe('shown only this once') }),
    'Create a token; the secret is in the reply only.',
  ),
  'tokens.revoke': method(
    'admin',
    z.strictObject({ name: TokenName }),
    z.object({ closedSessions: z.int().nonnegative() }),
    'Revoke a token; its sessions close at once. Unknown name: 4004.',
  ),

  'audit.list': method(
    'viewer',
    z.strictObject({ limit: z.int().min(1).max(1000).default(100), beforeSeq: z.int().positive().optional() }),
    z.object({ entries: z.array(AuditEntry) }),
    'The audit log (admin actions), newest first; page with beforeSeq = the last entry\'s seq.',
  ),

  'policy.simulate': method(
    'viewer',
    z.strictObject({
      config: ConfigSchema,
      hours: z.number().positive().max(24 * 31).default(24),
      /** the window ends here (the `to` of an earlier answer) instead of now, so two replays see the same traffic; later than now is now */
      until: Millis.optional(),
    }),
    SimulationResult,
    'Replay the recorded traffic of the last hours (before `until`, default now) through the candidate config: what would newly be rejected or pass, per rule; notReplayed lists the rules the events cannot replay (their recorded outcome stands) and why (docs/protocol.md).',
  ),
} as const;

export type Methods = typeof Methods;
export type MethodName = keyof Methods;
export const METHOD_NAMES = Object.keys(Methods) as MethodName[];
/** What a client sends (defaults may be left out). */
export type Params<M extends MethodName> = z.input<Methods[M]['params']>;
/** What the relay works with after validation (defaults filled in). */
export type ParsedParams<M extends MethodName> = z.output<Methods[M]['params']>;
export type Result<M extends MethodName> = z.output<Methods[M]['result']>;

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(Methods, name);
}

// -----------------------------------------------------------------------------------------------------------------
// Notifications (relay -> console)

export const Notifications = {
  /** live events of one subscription; dropped = events lost for this subscriber since the last batch (its buffer was full) */
  'events.batch': z.object({
    subscriptionId: z.string(),
    events: z.array(RelayEvent),
    dropped: z.int().positive().optional(),
  }),
  /** every second, to every logged-in session */
  'stats.tick': Stats,
  /** the config changed (any source): refetch config.get */
  'config.changed': z.object({ revision: Revision, by: z.string(), source: z.string() }),
  /** the relay is about to close this session, and why */
  'session.closed': z.object({
    reason: z.enum(['revoked', 'stalled', 'shutdown', 'locked-out', 'login-timeout', 'flood']),
    message: z.string(),
    /** locked-out: how long the address stays locked out, so a console waits that long before it connects again */
    retryAfterMs: z.int().nonnegative().optional(),
  }),
} as const;
export type Notifications = typeof Notifications;
export type NotificationName = keyof Notifications;
export type NotificationParams<N extends NotificationName> = z.infer<Notifications[N]>;

/** Turn zod issues into the plain, JSON-safe form carried in InvalidParams data; given the params schema, a wrong type at a key that may be null says so. */
export function toIssues(error: z.ZodError, schema?: z.ZodType): Issue[] {
  return error.issues.map((i) => ({
    path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
    message: schema ? withNullWording(schema, i) : i.message,
    code: i.code,
  }));
}

/** A notification as a discriminated union, for a client's switch on `method`. */
export type ServerNotification = { [N in NotificationName]: { jsonrpc: '2.0'; method: N; params: NotificationParams<N> } }[NotificationName];

/** A typed error from a call (what a client's call() should reject with). */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/** the words of -32602 for params given by position (an array): the methods take them by name (relay and console alike) */
export const POSITIONAL_PARAMS = 'must be an object of named params ({"name": value, ...}); it is an array (params by position are not taken)';
