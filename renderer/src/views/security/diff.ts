/**
 * Config differences as a person reads them: words for a change's key and values (the diff itself is
 * shared/config-diff.ts, the same one the relay's audit log uses).
 * Used by the conflict dialog (what the other admin changed), the audit log and config history (each entry's diff),
 * and the restore confirmation (what a revert would undo).
 */
import type { ConfigChange } from '../../../../shared/protocol.ts';
import { fmtDateTime } from '../../components/format.ts';
import { FIELDS, displayValue, ruleOfField } from './model.ts';

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const FIELD_BY_ID = new Map(FIELDS.map((f) => [f.id, f]));

/** Words for a changed key: "Max messages per hour from one IP: Limit", "Trusted group: entry 192.0.2.5". */
export function describeKey(path: string): string {
  const g = /^groups\.([^[]+)\[(.+)\]$/.exec(path);
  if (g) return `Group "${g[1]}": entry ${g[2]}`;
  const whole = /^groups\.([^.[]+)$/.exec(path);
  if (whole) return `Group "${whole[1]}"`;
  const f = FIELD_BY_ID.get(path);
  if (f) {
    const rule = ruleOfField(f.id);
    if (!rule) return path;
    return rule.fields.length > 1 ? `${rule.title}: ${f.label.toLowerCase()}` : rule.title;
  }
  return path;
}

function entryText(v: unknown): string | null {
  if (!isObject(v) || typeof v.address !== 'string') return null;
  const bits: string[] = [];
  if (v.comment) bits.push(`"${String(v.comment)}"`);
  bits.push(v.expiresAt ? `until ${fmtDateTime(String(v.expiresAt))}` : 'no expiry');
  if (v.addedBy) bits.push(`added by ${String(v.addedBy)}`);
  return `${v.address} (${bits.join(', ')})`;
}

/** Words for a changed value, in the form's units where the key is a form field. */
export function describeValue(path: string, v: unknown): string {
  if (v === undefined) return '(none)';
  const f = FIELD_BY_ID.get(path);
  if (f) return displayValue(f, v);
  const e = entryText(v);
  if (e) return e;
  if (Array.isArray(v) && v.every((x) => isObject(x) && typeof x.address === 'string')) {
    return v.length ? v.map((x) => entryText(x)).join('; ') : '(empty)';
  }
  if (v === null) return 'null';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return v.toLocaleString('en-US');
  const s = JSON.stringify(v);
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

export interface ChangeLine {
  key: string;
  op: ConfigChange['op'];
  before: string;
  after: string;
  /** the raw config key, for a title */
  path: string;
}

export function describeChanges(changes: readonly ConfigChange[]): ChangeLine[] {
  return changes.map((c) => ({
    key: describeKey(c.path),
    op: c.op,
    before: c.op === 'add' ? '' : describeValue(c.path, c.before),
    after: c.op === 'remove' ? '' : describeValue(c.path, c.after),
    path: c.path,
  }));
}
