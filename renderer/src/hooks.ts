/**
 * The hooks every view uses: the API, the live connection state, relay queries and mutations through
 * react-query (refetched when the relay says the config changed, and after a reconnect). Relay queries are keyed by
 * the server profile too, and mutations bound to it: the one cache serves every relay the console manages.
 */
import { useEffect, useState, useSyncExternalStore } from 'react';
import { useMutation, useQuery, useQueryClient, type QueryClient, type QueryKey, type UseQueryOptions } from '@tanstack/react-query';
import type { ConnectionState, ConsoleApi } from '../../shared/console-api.ts';
import type { MethodName, Params, Result } from '../../shared/protocol.ts';
import { ApiError, getApi } from './api.ts';
import { refetchRelayState } from './state/refetch.ts';
import { relayQueryKey, sameProfilePlaceholder, type RelayQueryKey } from './state/relayKey.ts';

export function useApi(): ConsoleApi {
  return getApi();
}

// --- connection state: one external store fed by the bridge -------------------------------------
let current: ConnectionState | null = null;
const stateListeners = new Set<() => void>();
let stateWired = false;
function wireState(): void {
  if (stateWired) return;
  stateWired = true;
  const api = getApi();
  api.connection.onState((s) => {
    current = s;
    for (const l of stateListeners) l();
  });
  void api.connection.state().then(
    (s) => {
      current = s;
      for (const l of stateListeners) l();
    },
    // the bridge failed: the next state push (onState) still brings the state
    (err: unknown) => console.error(`reading the connection state failed: ${(err as Error)?.message ?? String(err)}`),
  );
}

export function useConnection(): ConnectionState | null {
  wireState();
  return useSyncExternalStore(
    (cb) => {
      stateListeners.add(cb);
      return () => stateListeners.delete(cb);
    },
    () => current,
  );
}

/**
 * The connection stopped by itself on its profile (an address where no relay answers, such as the relay's SMTP port):
 * "disconnected" still naming the profile. A disconnect the user asked for names none.
 */
export function isStopped(s: ConnectionState): boolean {
  return s.status === 'disconnected' && s.profileId !== null;
}

/** Whole seconds from `now` until `at` (never below 0), or null without a time. */
export function secondsUntil(at: number | null, now: number): number | null {
  return at === null ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** Seconds until `at`, live (re-rendered a few times a second while `at` is set): the one countdown every view shows. */
export function useSecondsUntil(at: number | null): number | null {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (at === null) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [at]);
  return secondsUntil(at, now);
}

/**
 * A countdown's seconds in words: "13 s" up to 90 s, then minutes and seconds ("4 min 57 s", "5 min"), since "297 s"
 * after a lockout makes the admin do the division to know how long to wait.
 */
export function countdownWords(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s <= 90) return `${s} s`;
  const min = Math.floor(s / 60);
  const rest = s % 60;
  return rest === 0 ? `${min} min` : `${min} min ${rest} s`;
}

/** The next automatic attempt in words, for a live countdown ("Trying again in 13 s (attempt 6)."); null when none is due. */
export function retryWords(s: ConnectionState, seconds: number | null): string | null {
  if (s.status !== 'reconnecting' || seconds === null) return null;
  return seconds > 0 ? `Trying again in ${countdownWords(seconds)} (attempt ${s.attempt}).` : `Trying again now (attempt ${s.attempt}).`;
}

/**
 * What the button that leaves the current state does, in its words (null: there is nothing to leave). "Disconnect"
 * only while connected: a console that is trying stops trying, a certificate prompt is cancelled, and a refusal or a
 * changed certificate (nothing going on any more) is dismissed.
 */
export function leaveLabel(status: ConnectionState['status']): string | null {
  switch (status) {
    case 'connected':
      return 'Disconnect';
    case 'connecting':
    case 'authenticating':
    case 'reconnecting':
      return 'Stop trying';
    case 'fingerprint-unknown':
      return 'Cancel';
    case 'auth-failed':
    case 'fingerprint-mismatch':
      return 'Dismiss';
    case 'disconnected':
      return null;
  }
}

/**
 * The server profile the console is on ('' when none): the views key their inner component by it, so what they hold
 * locally (a page cursor, a filter, an open dialog about one client) starts afresh on another relay.
 */
export function useProfileKey(): string {
  return useConnection()?.profileId ?? '';
}

export function useConnected(): boolean {
  return useConnection()?.status === 'connected';
}

/** Whether this token may change things; when not, `why` says so in words for the disabled control's title. */
export function useCanEdit(): { canEdit: boolean; why: string | null } {
  const s = useConnection();
  if (!s || s.status !== 'connected') return { canEdit: false, why: 'Not connected to a relay.' };
  if (s.role !== 'admin') return { canEdit: false, why: `Your token "${s.tokenName}" is a viewer token: it can see everything but change nothing. Ask for an admin token.` };
  return { canEdit: true, why: null };
}

/** The server profile the console is on now (connected or not), outside React: what a relay answer belongs to. */
function profileNow(): string | null {
  return current?.profileId ?? null;
}

/** Code of the ApiError for a call or an answer meant for another profile than the console is on now. */
export const OTHER_RELAY = 'other-relay';

/**
 * The function of a relay query of `profile` (whose key names that profile): `run` makes the calls, and they go to
 * whatever relay the console is connected to. So an answer is stored only while the console is still on `profile`:
 * a query asked, or answered, after the console moved to another relay (before its view re-rendered, or while the
 * call was under way) keeps the data it held, or fails when it held none, rather than storing the other relay's
 * answer under this profile's key.
 */
export function profileQueryFn<T>(profile: string | null, run: () => Promise<T>): (ctx: { client: QueryClient; queryKey: QueryKey }) => Promise<T> {
  return async ({ client, queryKey }) => {
    const notOurs = (): T => {
      const kept = client.getQueryData<T>(queryKey);
      if (kept !== undefined) return kept;
      throw new ApiError({ code: OTHER_RELAY, message: 'The console left this server (another one, or none) before its answer came.' });
    };
    if (profileNow() !== profile) return notOurs();
    const answer = await run();
    return profileNow() === profile ? answer : notOurs();
  };
}

/** What a view may set on a relay query: everything but its key and function, which name the profile. */
export type RelayQueryOptions<M extends MethodName> = Omit<Partial<UseQueryOptions<Result<M>, ApiError, Result<M>, RelayQueryKey>>, 'queryKey' | 'queryFn'>;

/**
 * A relay query: keyed [method, params, { profile }] (state/relayKey.ts), so the cache every relay shares never gives
 * one relay's data to another: after a switch the view has no data for the new relay until it answers, and says so.
 * The key is not the caller's to set. A `placeholderData` function is given the previous data only when it was this
 * same profile's. Config-dependent data is refetched on config.changed (refetchRelayState, by the [method] prefix).
 */
export function useRelayQuery<M extends MethodName>(method: M, params: Params<M>, opts: RelayQueryOptions<M> = {}) {
  const api = useApi();
  const conn = useConnection();
  const connected = conn?.status === 'connected';
  const profile = conn?.profileId ?? null;
  const { placeholderData, ...rest } = opts;
  return useQuery<Result<M>, ApiError, Result<M>, RelayQueryKey>({
    ...rest,
    queryKey: relayQueryKey(method, params, profile),
    queryFn: profileQueryFn(profile, () => api.call(method, params)),
    ...(placeholderData === undefined ? {} : { placeholderData: typeof placeholderData === 'function' ? sameProfilePlaceholder(profile, placeholderData) : placeholderData }),
    // after the spread: a caller's `enabled: true` must not run a query while disconnected
    enabled: connected && (opts.enabled ?? true),
  });
}

/**
 * Makes a change meant for the relay of `profile` (named `name`), but only while the console is still on it: a change
 * asked once the console is on another relay (an Undo in a toast that outlived the switch, a click racing it) is
 * refused, never sent to the other relay. On no server at all, the call itself fails in the words for that ('closed').
 */
export function callOnProfile<T>(profile: string | null, name: string | null, run: () => Promise<T>): Promise<T> {
  const now = profileNow();
  if (now !== null && now !== profile) {
    const meant = name ? `"${name}"` : 'the server shown before';
    return Promise.reject(new ApiError({ code: OTHER_RELAY, message: `This change was meant for ${meant}, but the console is now on another server. Nothing was sent.` }));
  }
  return run();
}

/**
 * A relay method that changes something; when it settles, RELAY_STATE_QUERIES (or `invalidate`) are refetched. It is
 * bound to the profile the view was rendered for: a change asked once the console is on another relay (an Undo in a
 * toast that outlived the switch, a click racing it) is refused, never sent to the other relay.
 */
export function useRelayMutation<M extends MethodName>(method: M, opts: { invalidate?: readonly MethodName[] } = {}) {
  const api = useApi();
  const qc = useQueryClient();
  const conn = useConnection();
  const profile = conn?.profileId ?? null;
  const name = conn?.profileName ?? null;
  return useMutation<Result<M>, ApiError, Params<M>>({
    mutationFn: (params) => callOnProfile(profile, name, () => api.call(method, params)),
    onSettled: () => refetchRelayState(qc, opts.invalidate),
  });
}

/** Refetch what depends on the config when the relay reports a change (or after a reconnect). */
export function useConfigChangeInvalidation(): void {
  const api = useApi();
  const qc = useQueryClient();
  useEffect(() => api.onConfigChanged(() => refetchRelayState(qc)), [api, qc]);
}

/** Words for a person from an API error: what happened and what to do. */
export function explainError(err: unknown): string {
  if (!(err instanceof ApiError)) return (err as Error)?.message ?? String(err);
  switch (err.code) {
    case 4001:
      return 'The relay no longer accepts this token. Edit the server and paste a valid token.';
    case 4003:
      return 'Your token is a viewer token: it cannot change anything. Ask for an admin token.';
    case 4009: {
      // a stale config (its data names the revisions); other conflicts (a token name taken, a queue removal already
      // pending) say what they are in the relay's own words
      const d = err.data as { baseRevision?: unknown } | undefined;
      if (d && typeof d.baseRevision === 'number') return 'Someone else changed the configuration since you loaded it. Review their change, then apply yours again.';
      return err.message ? err.message.charAt(0).toUpperCase() + err.message.slice(1) : 'The relay refused this: it conflicts with something that happened meanwhile.';
    }
    case 4029:
      return 'The relay is rate-limiting this console. Wait a moment and try again.';
    case -32602: {
      const issues = (err.data as { issues?: { path: (string | number)[]; message: string }[] } | undefined)?.issues ?? [];
      return issues.length ? issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ') : err.message;
    }
    case 'closed':
      return 'Not connected to the relay. The console reconnects by itself; try again in a moment.';
    case 'timeout':
      return 'The relay did not answer in time. It may be overloaded; try again.';
    default:
      return err.message;
  }
}
