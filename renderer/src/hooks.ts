/**
 * The hooks every view uses: the API, the live connection state, relay queries and mutations through
 * react-query (refetched when the relay says the config changed, and after a reconnect).
 */
import { useEffect, useState, useSyncExternalStore } from 'react';
import { useMutation, useQuery, useQueryClient, type UseQueryOptions } from '@tanstack/react-query';
import type { ConnectionState, ConsoleApi } from '../../shared/console-api.ts';
import type { MethodName, Params, Result } from '../../shared/protocol.ts';
import { ApiError, getApi } from './api.ts';
import { refetchRelayState } from './state/refetch.ts';

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

/** Query keys are [method, params]; config-dependent data is invalidated on config.changed. */
export function useRelayQuery<M extends MethodName>(
  method: M,
  params: Params<M>,
  opts: Partial<UseQueryOptions<Result<M>, ApiError>> = {},
) {
  const api = useApi();
  const connected = useConnected();
  return useQuery<Result<M>, ApiError>({
    queryKey: [method, params],
    queryFn: () => api.call(method, params),
    ...opts,
    // after the spread: a caller's `enabled: true` must not run a query while disconnected
    enabled: connected && (opts.enabled ?? true),
  });
}

/** A relay method that changes something; when it settles, RELAY_STATE_QUERIES (or `invalidate`) are refetched. */
export function useRelayMutation<M extends MethodName>(method: M, opts: { invalidate?: readonly MethodName[] } = {}) {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation<Result<M>, ApiError, Params<M>>({
    mutationFn: (params) => api.call(method, params),
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
    case 4009:
      return 'Someone else changed the configuration since you loaded it. Review their change, then apply yours again.';
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
