/**
 * The one-click "Trust this IP" action: clients.trust with an optional expiry, then a toast whose Undo removes the
 * entry that was added (groups.removeEntry). If the IP was trusted already, nothing was added and there is no Undo.
 */
import { useQueryClient } from '@tanstack/react-query';
import { useCallback, useState } from 'react';
import { useToast } from '../components/Toast.tsx';
import { fmtDateTime } from '../components/format.ts';
import { useApi } from '../hooks.ts';
import { refetchRelayState } from './refetch.ts';

export type TrustExpiry = 'forever' | '1h' | '1d';
export const TRUST_EXPIRIES: { value: TrustExpiry; label: string }[] = [
  { value: 'forever', label: 'forever' },
  { value: '1h', label: 'for 1 hour' },
  { value: '1d', label: 'for 1 day' },
];

export function expiryToIso(e: TrustExpiry, now = Date.now()): string | null {
  if (e === '1h') return new Date(now + 3600_000).toISOString();
  if (e === '1d') return new Date(now + 86_400_000).toISOString();
  return null;
}

export function useTrustIp(): { trust: (ip: string, expiry: TrustExpiry, why?: string) => Promise<void>; pending: string | null } {
  const api = useApi();
  const toast = useToast();
  const qc = useQueryClient();
  const [pending, setPending] = useState<string | null>(null);
  const refresh = useCallback(() => refetchRelayState(qc), [qc]);
  const trust = useCallback(
    async (ip: string, expiry: TrustExpiry, why?: string) => {
      setPending(ip);
      try {
        const expiresAt = expiryToIso(expiry);
        const r = await api.call('clients.trust', { ip, expiresAt, comment: why ? `Trusted from Live traffic (${why})` : 'Trusted from Live traffic' });
        refresh();
        if (r.alreadyTrusted) {
          toast.show({ kind: 'info', message: `${ip} is already trusted (group "${r.group}", entry ${r.entry.address}).${r.unblocked ? ' Its block was cleared.' : ''}` });
          return;
        }
        const until = r.entry.expiresAt ? ` until ${fmtDateTime(r.entry.expiresAt)}` : '';
        toast.show({
          kind: 'success',
          message: `Trusted ${ip} in "${r.group}"${until}: its next message skips the per-IP limits.${r.unblocked ? ' Its block was cleared.' : ''}`,
          undo: async () => {
            await api.call('groups.removeEntry', { group: r.group, address: r.entry.address });
            refresh();
          },
          undoneMessage: `${ip} is no longer trusted.`,
        });
      } catch (err) {
        toast.error(err, `Could not trust ${ip}`);
      } finally {
        setPending(null);
      }
    },
    [api, toast, refresh],
  );
  return { trust, pending };
}
