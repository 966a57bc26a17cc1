/**
 * The console's own API between its main process and its renderer (window.api): the shapes that cross the
 * preload bridge. Pure (zod + types), so the renderer, the preload and the main-process core share it.
 */
import { z } from 'zod';
import type { RelayEvent } from './events.ts';
import { normalizeIp } from './ip.ts';
import type { MethodName, NotificationParams, Params, Result } from './protocol.ts';

const HOST = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\d{1,3}(\.\d{1,3}){3}$|^\[?[0-9A-Fa-f:.]+\]?$/;

export const ProfileInput = z.strictObject({
  /** absent: a new profile */
  id: z.string().min(1).max(64).optional(),
  name: z.string().trim().min(1, 'give the server a name').max(100),
  host: z
    .string()
    .trim()
    .min(1, 'enter the relay host name or address')
    .max(253)
    .regex(HOST, 'not a host name or IP address')
    // the pattern lets any run of hex digits, colons and brackets through: an IPv6 address must really be one
    .refine((h) => !h.includes(':') || normalizeIp(h.replace(/^\[(.*)\]$/, '$1')) !== null, 'not a valid IPv6 address (e.g. ::1 or [2001:db8::5])'),
  port: z.coerce.number().int('the port is a whole number').min(1, 'ports are 1-65535').max(65535, 'ports are 1-65535'),
  /** absent on edit: keep the stored token */
  token: z.string().trim().min(1, 'paste the token from the relay (admin-token file or "token create")').max(200).optional(),
});
export type ProfileInput = z.input<typeof ProfileInput>;

export interface ProfileView {
  id: string;
  name: string;
  host: string;
  port: number;
  hasToken: boolean;
  /** the pinned certificate fingerprint, if accepted before */
  fingerprint256: string | null;
}

/**
 * What saving a profile did about the console's connection (profiles.save's `connection`), so the renderer says what
 * happened instead of guessing from the state after it:
 * - 'reconnecting': the console is on this profile (connected, trying, refused, asking for the fingerprint, or stopped
 *   on it) and the save changed what the connection uses (its host or port; a new token; while not connected, any
 *   token pasted, the same one too): a new attempt with the saved settings has started, now.
 * - 'unchanged': the console is on this profile, but the save changed nothing the connection uses (only the name, or
 *   the token it is already connected with): the connection was left as it is (the state shows the new name).
 * - 'after-lockout': a new token for an address the relay has locked out: the pending retry, at the lockout's end,
 *   uses it (an earlier attempt would only meet the refusal again).
 * - 'not-current': the console is not on this profile (another one, none, or a profile just added): the connection
 *   is not concerned.
 */
export type ProfileSaveConnection = 'reconnecting' | 'unchanged' | 'after-lockout' | 'not-current';

/** profiles.save's answer: the profile as saved, and what the save did about the connection. */
export interface ProfileSaved extends ProfileView {
  connection: ProfileSaveConnection;
}

export interface CertificateInfo {
  fingerprint256: string;
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
}

export type ConnectionStatus =
  | 'disconnected'
  | 'connecting'
  /** first connection: the user must accept the fingerprint */
  | 'fingerprint-unknown'
  /** the certificate changed: hard stop */
  | 'fingerprint-mismatch'
  | 'authenticating'
  | 'connected'
  /** lost; retrying with backoff */
  | 'reconnecting'
  /** the token was refused or revoked: no automatic retry */
  | 'auth-failed';

export interface ConnectionState {
  status: ConnectionStatus;
  profileId: string | null;
  profileName: string | null;
  /** words for a person: what happened and what to do */
  message: string;
  role: 'admin' | 'viewer' | null;
  tokenName: string | null;
  certificate: CertificateInfo | null;
  /** on mismatch: the fingerprint accepted before */
  pinnedFingerprint: string | null;
  attempt: number;
  /** when the next reconnect attempt starts (ms since epoch) */
  retryAt: number | null;
  relay: { hostname: string; smtp: string } | null;
  since: number;
}

export interface EventBatch {
  events: RelayEvent[];
  dropped?: number;
  /**
   * true when this batch is the backlog replayed at a (re)connect: on a stream the views already hold, the events the
   * relay logged while the console was away (the live view says how many it caught up)
   */
  resync?: boolean;
  /**
   * true when this batch starts another stream than the events sent before came from: the relay restarted with a
   * fresh history (its historyId at login changed), or the console now follows another relay. Drop what is held and
   * start over with this batch. Without it, a batch continues the stream (ids only grow within one).
   */
  reset?: boolean;
  /**
   * on a resync batch whose backlog the relay cut (events.subscribe's `truncated`: it sends at most its newest
   * `backlogMax` events since the console's last id): the stretches of the stream this batch leaves out, oldest first. Their events
   * are in the relay's event history, not in the live view. Absent when nothing was left out.
   */
  gaps?: EventGap[];
  /**
   * on the resync batch of a reconnect to the same relay and history: the console was not connected from `from` to
   * `to` (the connection ended, it is back), and `restartedAt` is when the relay started again when it did meanwhile
   * (auth.login's relay.startedAt changed: its per-IP counters, blocks and statistics started afresh); null when it
   * did not. The live view marks the break, so the admin sees why counts and blocks are gone.
   */
  away?: { from: number; to: number; restartedAt: number | null };
}

/**
 * Events a (re)connect's backlog left out: those with ids in (afterId, beforeId), logged between `from` and `to`.
 * Within one history the ids of an unfiltered stream follow one another, so a jump is a gap.
 */
export interface EventGap {
  /** the event before the gap (the last the console had, or one in the backlog); 0 when there is none */
  afterId: number;
  /**
   * the time of the last event the console had before the gap (ms since the epoch). Null when the console had no event of this stream before (a first
   * connection, another relay, a fresh history): the gap is then everything older than `to` the relay still stores
   */
  from: number | null;
  /** the first event after the gap (in the batch) */
  beforeId: number;
  /** its time */
  to: number;
  /**
   * the most events the relay said it sends as a backlog (events.subscribe's `backlogMax`), which is why this gap is
   * there; absent when the relay did not say (a relay older than that field: 10,000)
   */
  backlogMax?: number;
}

export type Unsubscribe = () => void;

/** window.api, as the renderer sees it. */
export interface ConsoleApi {
  profiles: {
    list(): Promise<ProfileView[]>;
    /** saves (a new profile, or an edit); says whether the connection reconnected with it */
    save(input: ProfileInput): Promise<ProfileSaved>;
    remove(id: string): Promise<void>;
    /** a warning to show when tokens cannot be stored encrypted, else null */
    storageWarning(): Promise<string | null>;
  };
  connection: {
    connect(profileId: string): Promise<ConnectionState>;
    disconnect(): Promise<void>;
    /** accept the fingerprint shown in the fingerprint-unknown state and go on */
    acceptFingerprint(profileId: string, fingerprint256: string): Promise<ConnectionState>;
    /** after a deliberate certificate change on the relay: forget the old pin (the next connect asks again) */
    forgetFingerprint(profileId: string): Promise<void>;
    state(): Promise<ConnectionState>;
    onState(cb: (s: ConnectionState) => void): Unsubscribe;
  };
  /** any relay method, typed by the shared protocol; rejects with {code, message, data} */
  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>>;
  onEvents(cb: (batch: EventBatch) => void): Unsubscribe;
  onStats(cb: (s: NotificationParams<'stats.tick'>) => void): Unsubscribe;
  onConfigChanged(cb: (c: NotificationParams<'config.changed'>) => void): Unsubscribe;
  /** desktop notification (the app shows one on a rejection spike); no-op in a browser */
  notify(title: string, body: string): Promise<void>;
}

export { BRIDGE_OPS, BRIDGE_CHANNELS, type BridgeOp, type BridgeChannel } from './bridge.ts';

/** An error that crosses the bridge as plain data. */
export interface BridgeError {
  code: number | string;
  message: string;
  data?: unknown;
}
