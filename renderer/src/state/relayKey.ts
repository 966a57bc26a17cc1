/**
 * Relay query keys. One react-query cache serves every relay the console manages, so each relay query is keyed by
 * the server profile it was asked of: [method, params, { profile }]. Another relay's groups, clients, queue, audit
 * log or config then never answer for this one (a switch from A to B starts B's queries empty, "Loading…", instead
 * of showing A's data under B's name). The method comes first, so refetchRelayState's [method] prefix still matches
 * the queries of every profile.
 *
 * Pure functions (no React), tested in plain Node.
 */

/** The third element of a relay query key: whose data it is. */
export interface RelayScope {
  profile: string | null;
}

export type RelayQueryKey = readonly [method: string, params: unknown, scope: RelayScope];

export function relayQueryKey(method: string, params: unknown, profile: string | null): RelayQueryKey {
  return [method, params, { profile }];
}

/** The profile a relay query key names; undefined for a key without one (not a relay query, or none at all). */
export function keyProfile(key: readonly unknown[] | undefined): string | null | undefined {
  const scope = key?.[2];
  if (scope === null || typeof scope !== 'object' || !('profile' in scope)) return undefined;
  const p = (scope as { profile: unknown }).profile;
  return typeof p === 'string' || p === null ? p : undefined;
}

/**
 * A placeholderData function for a query of `profile`: the caller's own (e.g. keep the previous page on screen while
 * the next one loads), but given the previous data only when the previous query was of this same profile. Data of
 * another relay, or of a query that names none, is never offered as a placeholder.
 */
export function sameProfilePlaceholder<T, Q extends { queryKey: readonly unknown[] }>(
  profile: string | null,
  placeholder: (previousData: T | undefined, previousQuery: Q | undefined) => T | undefined,
): (previousData: T | undefined, previousQuery: Q | undefined) => T | undefined {
  return (previousData, previousQuery) => {
    if (previousQuery === undefined) return placeholder(undefined, undefined);
    return keyProfile(previousQuery.queryKey) === profile ? placeholder(previousData, previousQuery) : placeholder(undefined, undefined);
  };
}

