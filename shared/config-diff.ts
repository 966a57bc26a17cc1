/**
 * What changed between two configs, leaf by leaf: the relay's audit log and config.history, and the console's
 * conflict dialog and restore preview, all speak this one diff. Group entries are compared by address (so
 * removing the first entry is one change, not a shift of every index); other arrays are one value. Secrets
 * (users' password hashes, the smarthost password) never appear: they read "(secret)". Pure.
 */
import type { ConfigChange } from './protocol.ts';

const SECRET = '(secret)';

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const fmt = (path: string[]) => path.join('.');

function isSecretPath(path: string[]): boolean {
  return (path[0] === 'users' && path[2] === 'passwordHash') || (path[0] === 'delivery' && path[1] === 'smarthost' && path[2] === 'password');
}

/** A copy of value with every secret under path replaced. */
function redact(value: unknown, path: string[]): unknown {
  if (isSecretPath(path)) return value === null || value === undefined ? value : SECRET;
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, [...path, k])]));
  return value;
}

/** What changed from `before` to `after`; group entries by address ("groups.Trusted[192.0.2.5]"). */
export function diffConfigs(before: unknown, after: unknown): ConfigChange[] {
  const out: ConfigChange[] = [];
  walk(before, after, [], out);
  return out;
}

function walk(a: unknown, b: unknown, path: string[], out: ConfigChange[]): void {
  if (same(a, b)) return;
  if (path.length === 2 && path[0] === 'groups' && Array.isArray(a) && Array.isArray(b)) {
    groupDiff(a, b, path, out);
    return;
  }
  if (isObject(a) && isObject(b)) {
    for (const k of Object.keys(a)) {
      if (!Object.hasOwn(b, k)) out.push({ path: fmt([...path, k]), op: 'remove', before: redact(a[k], [...path, k]) });
      else walk(a[k], b[k], [...path, k], out);
    }
    for (const k of Object.keys(b)) if (!Object.hasOwn(a, k)) out.push({ path: fmt([...path, k]), op: 'add', after: redact(b[k], [...path, k]) });
    return;
  }
  out.push({ path: fmt(path), op: 'change', before: redact(a, path), after: redact(b, path) });
}

function groupDiff(a: unknown[], b: unknown[], path: string[], out: ConfigChange[]): void {
  const key = (e: unknown) => String((e as { address?: unknown })?.address ?? '').replace(/\s+/g, '');
  const before = new Map(a.map((e) => [key(e), e]));
  const after = new Map(b.map((e) => [key(e), e]));
  for (const [k, e] of before) {
    const n = after.get(k);
    if (n === undefined) out.push({ path: `${fmt(path)}[${k}]`, op: 'remove', before: e });
    else if (!same(e, n)) out.push({ path: `${fmt(path)}[${k}]`, op: 'change', before: e, after: n });
  }
  for (const [k, e] of after) if (!before.has(k)) out.push({ path: `${fmt(path)}[${k}]`, op: 'add', after: e });
}
