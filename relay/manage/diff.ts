/**
 * What changed between two configs, leaf by leaf, for the audit log and config.history. Group entries are compared
 * by address (so removing the first entry is one change, not a shift of every index); other arrays are one value.
 * Secrets (users' password hashes, the smarthost password) never appear: they read "(secret)".
 */
import type { Config } from '../../shared/config.ts';
import type { ConfigChange } from '../../shared/protocol.ts';

const SECRET = '(secret)';

function isSecretPath(path: string[]): boolean {
  return (path[0] === 'users' && path[2] === 'passwordHash') || (path[0] === 'delivery' && path[1] === 'smarthost' && path[2] === 'password');
}

/** A copy of value with every secret under path replaced. */
function redact(value: unknown, path: string[]): unknown {
  if (isSecretPath(path)) return value === null || value === undefined ? value : SECRET;
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redact(v, [...path, k]);
    return out;
  }
  return value;
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const fmt = (path: string[]) => path.join('.');

export function diffConfig(before: Config | null, after: Config): ConfigChange[] {
  if (before === null) return [];
  const out: ConfigChange[] = [];
  walk(before, after, [], out);
  return out;
}

function walk(a: unknown, b: unknown, path: string[], out: ConfigChange[]): void {
  if (same(a, b)) return;
  if (path.length === 2 && path[0] === 'groups' && Array.isArray(a) && Array.isArray(b)) {
    groupDiff(a as { address: string }[], b as { address: string }[], path, out);
    return;
  }
  if (isObject(a) && isObject(b)) {
    for (const k of Object.keys(a)) {
      if (!(k in b)) out.push({ path: fmt([...path, k]), op: 'remove', before: redact(a[k], [...path, k]) });
      else walk(a[k], b[k], [...path, k], out);
    }
    for (const k of Object.keys(b)) if (!(k in a)) out.push({ path: fmt([...path, k]), op: 'add', after: redact(b[k], [...path, k]) });
    return;
  }
  out.push({ path: fmt(path), op: 'change', before: redact(a, path), after: redact(b, path) });
}

function groupDiff(a: { address: string }[], b: { address: string }[], path: string[], out: ConfigChange[]): void {
  const key = (e: { address: string }) => e.address.replace(/\s+/g, '');
  const before = new Map(a.map((e) => [key(e), e]));
  const after = new Map(b.map((e) => [key(e), e]));
  for (const [k, e] of before) {
    const n = after.get(k);
    if (!n) out.push({ path: `${fmt(path)}[${k}]`, op: 'remove', before: e });
    else if (!same(e, n)) out.push({ path: `${fmt(path)}[${k}]`, op: 'change', before: e, after: n });
  }
  for (const [k, e] of after) if (!before.has(k)) out.push({ path: `${fmt(path)}[${k}]`, op: 'add', after: e });
}

/** The config with secrets hidden, still valid against the schema (for viewers). */
export function hideSecrets(c: Config): Config {
  const copy = structuredClone(c) as Config;
  for (const u of Object.values(copy.users)) u.passwordHash = 'scrypt$(hidden)';
  if (copy.delivery.smarthost.password !== null) copy.delivery.smarthost.password = '(hidden)';
  return copy;
}
