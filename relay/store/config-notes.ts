/**
 * Notes on a config change that is valid but probably not what the admin meant, said in the log beside the change
 * (a tryout: entries accepted without a word that can never match, and the whole internet exempted from the limits):
 * - a group entry that is new (or changed) and has already expired: it matches nothing (a wrong year, a wrong zone);
 * - an entry that is every address (0.0.0.0/0, ::/0) in a group of limits.exemptGroups: no client is limited any more.
 *   (In a group of relay.allowGroups such an entry is refused: an open relay.)
 */
import type { Config } from '../../shared/config.ts';
import { coversEverything, parseAddressSpec } from '../../shared/ip.ts';

type Entry = Config['groups'][string][number];

const key = (e: Entry) => JSON.stringify(e);

export function configNotes(previous: Config, next: Config, now: number): string[] {
  const notes: string[] = [];
  for (const [group, entries] of Object.entries(next.groups)) {
    // (a set of the entries as they were: a group may hold 100,000, and every config change asks)
    const before = new Set((Object.hasOwn(previous.groups, group) ? previous.groups[group]! : []).map(key));
    const exempting = next.limits.exemptGroups.includes(group);
    const wasExempting = previous.limits.exemptGroups.includes(group);
    for (const e of entries) {
      const isNew = !before.has(key(e));
      if (isNew && e.expiresAt && Date.parse(e.expiresAt) <= now) {
        notes.push(`note: groups.${group} entry ${e.address} expired already (${e.expiresAt}): it matches no client`);
      }
      if ((isNew || !wasExempting) && exempting) {
        const r = parseAddressSpec(e.address);
        if (r.ok && coversEverything(r.spec) && (!e.expiresAt || Date.parse(e.expiresAt) > now)) {
          notes.push(`note: groups.${group} holds ${r.spec.text}, every ${r.spec.family === 4 ? 'IPv4' : 'IPv6'} address, and "${group}" is in limits.exemptGroups: no such client is held to the per-IP limits or the failed-login block any more`);
        }
      }
    }
  }
  return notes;
}
