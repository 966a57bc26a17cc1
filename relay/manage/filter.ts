/**
 * Event filters (events.subscribe, events.query): by IP (an address, a CIDR or a range), kinds, rejections only,
 * and text. Compiled once per subscription into one predicate that is cheap per event.
 */
import type { RelayEvent } from '../../shared/events.ts';
import { parseAddressSpec, parseIp, specContains, type AddressSpec } from '../../shared/ip.ts';
import { ErrorCode, RpcError, type EventFilter } from '../../shared/protocol.ts';
import { eventJson } from '../store/history.ts';

export interface CompiledFilter {
  test(e: RelayEvent): boolean;
  /** the exact address when the IP filter is a single address (the history index can serve it) */
  exactIp: string | null;
  /** a CIDR or range: matched in code */
  spec: AddressSpec | null;
  /** the kinds an event must have (rejectionsOnly: `rejected`), or null for any (the history can test them per row) */
  kinds: readonly string[] | null;
}

/** Parse the IP part of a filter; a bad one is -32602 naming it. */
export function ipSpec(ip: string, path: (string | number)[]): AddressSpec {
  const r = parseAddressSpec(ip);
  if (!r.ok) throw new RpcError(ErrorCode.InvalidParams, `invalid params: ${r.error}`, { issues: [{ path, message: r.error, code: 'custom' }] });
  return r.spec;
}

export function compileFilter(f: EventFilter | undefined, path: (string | number)[] = ['filter']): CompiledFilter {
  const spec = f?.ip !== undefined ? ipSpec(f.ip, [...path, 'ip']) : null;
  const exactIp = spec?.kind === 'single' ? spec.text : null;
  const kinds = f?.rejectionsOnly ? new Set(['rejected']) : f?.kinds ? new Set<string>(f.kinds) : null;
  const text = f?.text?.toLowerCase() ?? null;
  const test = (e: RelayEvent): boolean => {
    if (kinds && !kinds.has(e.kind)) return false;
    if (spec) {
      if (e.ip === null) return false;
      if (exactIp !== null) {
        if (e.ip !== exactIp) return false;
      } else {
        const p = parseIp(e.ip);
        if (!p || !specContains(spec, p)) return false;
      }
    }
    if (text !== null && !eventJson(e).toLowerCase().includes(text)) return false;
    return true;
  };
  return { test, exactIp, spec: exactIp === null ? spec : null, kinds: kinds ? [...kinds] : null };
}
