/**
 * Event filters (events.subscribe, events.query): by IP (an address, a CIDR or a range), kinds, rejections only,
 * and text. Compiled once per subscription into one predicate that is cheap per event.
 */
import type { RelayEvent } from '../../shared/events.ts';
import { parseAddressSpec, parseIp, specContains, type AddressSpec } from '../../shared/ip.ts';
import { ErrorCode, RpcError, type EventFilter } from '../../shared/protocol.ts';
import { eventJson, type RowTest } from '../store/history.ts';

export interface CompiledFilter {
  test(e: RelayEvent): boolean;
  /** the exact address when the IP filter is a single address (the history index can serve it) */
  exactIp: string | null;
  /** a CIDR or range: matched in code */
  spec: AddressSpec | null;
  /** the kinds an event must have (rejectionsOnly: `rejected`), or null for any (the history can test them per row) */
  kinds: readonly string[] | null;
  /**
   * The IP and text parts tested on a stored row before its JSON is parsed (null when the filter has neither): false
   * only for rows whose event test() would refuse, since the row's ip column is the event's ip and its JSON string is
   * the event's eventJson (relay/store/history.ts, parseRows). Scans parse only the rows it keeps.
   */
  rowTest: RowTest | null;
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
  const ipMatches = (ip: string | null): boolean => {
    if (!spec) return true;
    if (ip === null) return false;
    if (exactIp !== null) return ip === exactIp;
    const p = parseIp(ip);
    return p !== null && specContains(spec, p);
  };
  const test = (e: RelayEvent): boolean => {
    if (kinds && !kinds.has(e.kind)) return false;
    if (!ipMatches(e.ip)) return false;
    if (text !== null && !eventJson(e).toLowerCase().includes(text)) return false;
    return true;
  };
  const rowTest: RowTest | null =
    spec === null && text === null ? null : (row) => ipMatches(row.ip) && (text === null || row.json.toLowerCase().includes(text));
  return { test, exactIp, spec: exactIp === null ? spec : null, kinds: kinds ? [...kinds] : null, rowTest };
}
