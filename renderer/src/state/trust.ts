/**
 * The one-click "Trust this IP" action: clients.trust with an optional expiry, then a toast whose Undo removes the
 * entry that was added (groups.removeEntry). If the IP was trusted already, nothing was added and there is no Undo.
 *
 * What trusting does depends on the config, and the console says it before the click and in the toast: the relay adds
 * the address to the first of limits.exemptGroups, so it skips the per-IP limits; when that group is in
 * relay.allowGroups too (the default: "Trusted" is in both), the address may also relay mail to any domain, and the
 * relay skips the DNS checks for it (relay/smtp/front.ts: mayRelay is dnsExempt). Trusting from a "Relay access
 * denied" rejection is the case where the click grants relaying itself, so it asks first, with a bounded expiry.
 */
import { useQueryClient } from '@tanstack/react-query';
import { useCallback, useState } from 'react';
import { useToast } from '../components/Toast.tsx';
import { callOnProfile, useApi, useConnection } from '../hooks.ts';
import { refetchRelayState } from './refetch.ts';
import { trustedMessage, trustUndo, type TrustEffects } from './summary.ts';
import { fmtDateTime } from '../components/format.ts';

// the words and the pure logic of trusting live in summary.ts (tested in Node without React); the views import them from here
export { RELAY_TRUST_DEFAULT, asksBeforeTrust, trustHelps, clientNowLine, groupMatcher, trustEffects, trustWarning, trustedEntry, trustedMessage, trustUndo } from './summary.ts';
export type { TrustConfig, TrustEffects, TrustReply } from './summary.ts';

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

export function useTrustIp(): {
  trust: (ip: string, expiry: TrustExpiry, why?: string, effects?: TrustEffects | null) => Promise<void>;
  pending: string | null;
} {
  const api = useApi();
  const conn = useConnection();
  const toast = useToast();
  const qc = useQueryClient();
  const [pending, setPending] = useState<string | null>(null);
  const refresh = useCallback(() => refetchRelayState(qc), [qc]);
  const trust = useCallback(
    async (ip: string, expiry: TrustExpiry, why?: string, effects?: TrustEffects | null) => {
      setPending(ip);
      const on = { profile: conn?.profileId ?? null, name: conn?.profileName ?? null };
      try {
        const expiresAt = expiryToIso(expiry);
        const r = await api.call('clients.trust', { ip, expiresAt, comment: why ? `Trusted from Live traffic (${why})` : 'Trusted from Live traffic' });
        refresh();
        // whether the group it landed in may relay: from the config the warning was made from, or read now
        let relays: boolean | null = effects && effects.group === r.group ? effects.relays : null;
        if (relays === null) relays = await api.call('config.get', {}).then((c) => c.config.relay.allowGroups.includes(r.group), () => null);
        const message = trustedMessage(ip, r, relays);
        const undo = trustUndo(r);
        if (!undo) {
          toast.show({ kind: 'info', message });
          return;
        }
        toast.show({
          kind: r.alreadyTrusted ? 'info' : relays === false ? 'success' : 'warning',
          message,
          undo: async () => {
            // to the relay the IP was trusted on: refused if the console has moved to another one since
            await callOnProfile(on.profile, on.name, async (): Promise<unknown> =>
              undo.method === 'groups.addEntry' ? api.call('groups.addEntry', undo.params) : api.call('groups.removeEntry', undo.params),
            );
            refresh();
          },
          undoneMessage:
            undo.method === 'groups.addEntry'
              ? `${ip}'s entry is back as it was (${undo.params.expiresAt ? `until ${fmtDateTime(undo.params.expiresAt)}` : 'no expiry'}).`
              : `${ip} is no longer trusted. Its counters stay reset: they count again from now.`,
        });
      } catch (err) {
        toast.error(err, `Could not trust ${ip}`);
      } finally {
        setPending(null);
      }
    },
    [api, toast, refresh, conn],
  );
  return { trust, pending };
}
