/**
 * The console's relay query keys (renderer/src/state/relayKey.ts): one react-query cache serves every relay the
 * console manages, so a query is keyed by the server profile too, and a placeholder never carries one relay's data
 * over to another. Checked against a real QueryClient and QueryObserver (react-query's own placeholder semantics).
 */
import { QueryClient, QueryObserver } from '@tanstack/react-query';
import { describe, expect, it } from 'vitest';
import { RELAY_STATE_QUERIES, refetchRelayState } from '../renderer/src/state/refetch.ts';
import { keyProfile, relayQueryKey, sameProfilePlaceholder, type RelayQueryKey } from '../renderer/src/state/relayKey.ts';

const keep = <T,>(prev: T | undefined) => prev;
const never = () => new Promise<never>(() => {});

describe('relay query keys', () => {
  it('are [method, params, { profile }], and name their profile', () => {
    expect(relayQueryKey('config.get', {}, 'p-a')).toEqual(['config.get', {}, { profile: 'p-a' }]);
    expect(keyProfile(relayQueryKey('audit.list', { limit: 50 }, 'p-b'))).toBe('p-b');
    expect(keyProfile(relayQueryKey('config.get', {}, null))).toBeNull();
    // keys that are not relay queries name none
    expect(keyProfile(['config.get', {}])).toBeUndefined();
    expect(keyProfile(['profiles'])).toBeUndefined();
    expect(keyProfile(['x', {}, { config: 1 }])).toBeUndefined();
    expect(keyProfile(undefined)).toBeUndefined();
  });

  it("keep each relay's answers apart in the one cache, and refetchRelayState still reaches every profile's", () => {
    const qc = new QueryClient();
    qc.setQueryData(relayQueryKey('config.get', {}, 'p-a'), { revision: 7 });
    expect(qc.getQueryData(relayQueryKey('config.get', {}, 'p-b'))).toBeUndefined();
    expect(qc.getQueryData(relayQueryKey('config.get', {}, 'p-a'))).toEqual({ revision: 7 });
    qc.setQueryData(relayQueryKey('config.get', {}, 'p-b'), { revision: 2 });
    qc.setQueryData(relayQueryKey('clients.list', { limit: 500 }, 'p-b'), { clients: [] });
    qc.setQueryData(['profiles'], []);
    refetchRelayState(qc);
    const invalidated = (key: readonly unknown[]) => qc.getQueryState(key)?.isInvalidated;
    expect(invalidated(relayQueryKey('config.get', {}, 'p-a'))).toBe(true);
    expect(invalidated(relayQueryKey('config.get', {}, 'p-b'))).toBe(true);
    expect(invalidated(relayQueryKey('clients.list', { limit: 500 }, 'p-b'))).toBe(true);
    expect(invalidated(['profiles'])).toBe(false);
    expect(RELAY_STATE_QUERIES).toContain('clients.list');
  });
});

describe('sameProfilePlaceholder', () => {
  const q = (key: readonly unknown[]) => ({ queryKey: key });

  it("passes the previous data on only when it was the same profile's", () => {
    const ph = sameProfilePlaceholder<string, { queryKey: readonly unknown[] }>('p-a', keep);
    expect(ph('page 1 of A', q(relayQueryKey('audit.list', {}, 'p-a')))).toBe('page 1 of A');
    expect(ph('page 1 of B', q(relayQueryKey('audit.list', {}, 'p-b')))).toBeUndefined();
    expect(ph('unscoped', q(['audit.list', {}]))).toBeUndefined();
    expect(ph(undefined, undefined)).toBeUndefined();
    // a placeholder of its own (not the previous data) is still the caller's to give
    const fixed = sameProfilePlaceholder<string, { queryKey: readonly unknown[] }>('p-a', (prev) => prev ?? 'empty page');
    expect(fixed('page 1 of B', q(relayQueryKey('audit.list', {}, 'p-b')))).toBe('empty page');
  });

  it('in a real QueryObserver: the next page of the same relay keeps the previous one on screen; another relay starts empty', async () => {
    const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    const first = relayQueryKey('queue.list', { offset: 0 }, 'p-a');
    qc.setQueryData(first, { items: ['a-1'] });
    const opts = (key: RelayQueryKey) => ({
      queryKey: key,
      queryFn: never,
      placeholderData: sameProfilePlaceholder(keyProfile(key) ?? null, keep<{ items: string[] }>),
    });
    const obs = new QueryObserver<{ items: string[] }, Error, { items: string[] }, { items: string[] }, RelayQueryKey>(qc, opts(first));
    const off = obs.subscribe(() => {});
    try {
      expect(obs.getCurrentResult().data).toEqual({ items: ['a-1'] });
      // the same relay's next page, still loading: the previous page is shown as a placeholder
      obs.setOptions(opts(relayQueryKey('queue.list', { offset: 100 }, 'p-a')));
      expect(obs.getCurrentResult()).toMatchObject({ data: { items: ['a-1'] }, isPlaceholderData: true });
      // the same page of another relay, loading: nothing of A's
      obs.setOptions(opts(relayQueryKey('queue.list', { offset: 100 }, 'p-b')));
      expect(obs.getCurrentResult()).toMatchObject({ data: undefined, isPending: true, isPlaceholderData: false });

      // what the views did before: the bare (prev) => prev hands A's page to B
      obs.setOptions({ ...opts(relayQueryKey('queue.list', { offset: 200 }, 'p-b')), placeholderData: keep<{ items: string[] }> });
      expect(obs.getCurrentResult().data).toEqual({ items: ['a-1'] });
    } finally {
      off();
      qc.clear();
    }
  });
});
