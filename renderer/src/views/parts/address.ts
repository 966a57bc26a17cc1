/**
 * Inline validation of a trusted-group address as the admin types it: the shared parser's verdict, the canonical
 * form the relay will store, how many addresses it covers, and whether the group already has it.
 * Pure, tested in Node (test/console-views-logic.test.ts).
 */
import { parseAddressSpec, type AddressSpec } from '../../../../shared/ip.ts';

export type AddressCheck =
  | { state: 'empty' }
  | { state: 'invalid'; error: string }
  | { state: 'ok'; text: string; covers: string; duplicate: boolean; spec: AddressSpec };

function covers(spec: AddressSpec): string {
  if (spec.kind === 'single') return 'one address';
  if (spec.family === 4) {
    const n = spec.last - spec.first + 1;
    return n === 1 ? 'one address' : `${n.toLocaleString('en-US')} addresses`;
  }
  if (spec.kind === 'cidr') {
    const bits = 128 - (spec.prefix ?? 128);
    return bits === 0 ? 'one address' : bits <= 20 ? `${(2 ** bits).toLocaleString('en-US')} addresses` : `an IPv6 /${spec.prefix} network`;
  }
  return 'an IPv6 range';
}

/** `existing`: the addresses already in the group (as stored). */
export function checkAddress(input: string, existing: readonly string[]): AddressCheck {
  if (input.trim() === '') return { state: 'empty' };
  const r = parseAddressSpec(input);
  if (!r.ok) return { state: 'invalid', error: r.error };
  const canon = (a: string) => {
    const x = parseAddressSpec(a);
    return x.ok ? x.spec.text : a.trim();
  };
  const duplicate = existing.some((a) => canon(a) === r.spec.text);
  return { state: 'ok', text: r.spec.text, covers: covers(r.spec), duplicate, spec: r.spec };
}
