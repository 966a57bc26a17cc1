/** Small hooks shared by the admin views. */
import { useEffect, useMemo, useState } from 'react';
import type { NotificationParams } from '../../../../shared/protocol.ts';
import { useApi, useRelayQuery } from '../../hooks.ts';
import { nextRefreshAt } from './address.ts';

type Stats = NotificationParams<'stats.tick'>;

/**
 * The relay's statistics as it last sent them: stats.get when the view opens, then each stats.tick (every second),
 * whichever is newer. `query` is the stats.get query (its series, its error).
 */
export function useLatestStats() {
  const api = useApi();
  const query = useRelayQuery('stats.get', {}, { staleTime: 0, refetchOnMount: 'always' });
  const [tick, setTick] = useState<Stats | null>(null);
  useEffect(() => api.onStats(setTick), [api]);
  const fetched = useMemo<Stats | null>(() => {
    if (!query.data) return null;
    const { series: _series, ...rest } = query.data;
    return rest;
  }, [query.data]);
  const latest = tick && (!fetched || tick.at >= fetched.at) ? tick : fetched;
  return { query, latest };
}

/**
 * The current time, refreshed every `everyMs` (for "expired 3 h ago" and countdowns that must move on their own) and
 * at each of `deadlines` (epoch ms, e.g. entries' expiry), so what turns on a deadline turns on time.
 */
export function useNow(everyMs = 30_000, deadlines: readonly number[] = []): number {
  // a new object each time, so every timer renders and sets the next one, even if the clock did not move
  const [tick, setTick] = useState(() => ({ now: Date.now() }));
  const at = nextRefreshAt(tick.now, deadlines, everyMs);
  useEffect(() => {
    // setTimeout's longest wait is about 24.8 days; a later deadline is reached by refreshing on the way.
    // A timer that fires a little early renders, sees the deadline still ahead, and waits for the rest.
    const t = setTimeout(() => setTick({ now: Date.now() }), Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
    return () => clearTimeout(t);
  }, [tick, at]);
  return tick.now;
}

/** Whether the page is visible (document.visibilityState), so polling can stop while the window is hidden. */
export function usePageVisible(): boolean {
  const [visible, setVisible] = useState(() => typeof document === 'undefined' || document.visibilityState !== 'hidden');
  useEffect(() => {
    const on = () => setVisible(document.visibilityState !== 'hidden');
    document.addEventListener('visibilitychange', on);
    return () => document.removeEventListener('visibilitychange', on);
  }, []);
  return visible;
}
