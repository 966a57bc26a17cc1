/**
 * What a change on the relay can make stale, refetched after every change made here (a mutation, a trust and its
 * Undo), when the relay reports one (config.changed) and after a reconnect: the config and its history, the clients
 * (trust, blocks), the audit log, the queue and the counters. The one list: views name a narrower one only for a
 * change that cannot touch the config (a queue action, an unblock). Query keys are [method, params, { profile }]
 * (state/relayKey.ts); the [method] prefix matches them for every profile (only the connected one's are on screen).
 */
import type { QueryClient } from '@tanstack/react-query';
import type { MethodName } from '../../../shared/protocol.ts';

export const RELAY_STATE_QUERIES = ['config.get', 'config.history', 'clients.list', 'audit.list', 'queue.list', 'stats.get'] as const satisfies readonly MethodName[];

/** Mark these relay queries stale (whatever their params); the ones on screen refetch at once. */
export function refetchRelayState(qc: QueryClient, methods: readonly MethodName[] = RELAY_STATE_QUERIES): void {
  for (const m of methods) void qc.invalidateQueries({ queryKey: [m] });
}
