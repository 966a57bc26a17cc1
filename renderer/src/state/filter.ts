/**
 * The live table's filter: IP (an address, a CIDR or range, or the start of an address while typing), free text
 * (case-insensitive, over the summary and the IP), kind, rejections only. Compiled once into a predicate. Pure.
 */
import type { RelayEvent } from '../../../shared/events.ts';
import { normalizeIp, parseAddressSpec, parseIp, specContains } from '../../../shared/ip.ts';
import { summarize } from './summary.ts';

export interface LiveFilter {
  ip: string;
  text: string;
  /** '' = all kinds */
  kind: string;
  rejectionsOnly: boolean;
}

export const EMPTY_FILTER: LiveFilter = { ip: '', text: '', kind: '', rejectionsOnly: false };

export function isEmptyFilter(f: LiveFilter): boolean {
  return !f.ip.trim() && !f.text.trim() && !f.kind && !f.rejectionsOnly;
}

export function sameFilter(a: LiveFilter, b: LiveFilter): boolean {
  return a.ip === b.ip && a.text === b.text && a.kind === b.kind && a.rejectionsOnly === b.rejectionsOnly;
}

export type Predicate = (e: RelayEvent) => boolean;

function ipPredicate(raw: string): Predicate | null {
  const text = raw.trim();
  if (!text) return null;
  const single = normalizeIp(text);
  if (single) return (e) => e.ip !== null && (e.ip === single || normalizeIp(e.ip) === single);
  if (/[/-]/.test(text)) {
    const spec = parseAddressSpec(text);
    if (spec.ok) {
      const cache = new Map<string, boolean>();
      return (e) => {
        if (e.ip === null) return false;
        let hit = cache.get(e.ip);
        if (hit === undefined) {
          const p = parseIp(e.ip);
          hit = p !== null && specContains(spec.spec, p);
          if (cache.size > 10_000) cache.clear();
          cache.set(e.ip, hit);
        }
        return hit;
      };
    }
  }
  // half-typed: the start of an address
  const lower = text.toLowerCase();
  return (e) => e.ip !== null && e.ip.toLowerCase().startsWith(lower);
}

export function compileFilter(f: LiveFilter): Predicate | null {
  if (isEmptyFilter(f)) return null;
  const parts: Predicate[] = [];
  if (f.rejectionsOnly) parts.push((e) => e.kind === 'rejected');
  if (f.kind) {
    if (f.kind === 'monitor') parts.push((e) => e.kind === 'rejected' && !e.enforced);
    else parts.push((e) => e.kind === f.kind);
  }
  const ip = ipPredicate(f.ip);
  if (ip) parts.push(ip);
  const text = f.text.trim().toLowerCase();
  if (text) parts.push((e) => summarize(e).toLowerCase().includes(text) || (e.ip !== null && e.ip.includes(text)) || (e.sessionId !== null && e.sessionId === f.text.trim()));
  if (parts.length === 1) return parts[0]!;
  return (e) => {
    for (const p of parts) if (!p(e)) return false;
    return true;
  };
}
