/**
 * A config change in one line, as the relay's log says it (a SIGHUP reload, a config.json read from disk before a
 * change): at most five changed keys, each `key before -> after`, then how many more. A group entry is its address,
 * its comment and until when (the expiry decides when the trust ends); a string is JSON-quoted, so a comment's quotes
 * and `;` (the line's separator) cannot be misread.
 */
import type { ConfigChange } from '../../shared/protocol.ts';

const SHOWN = 5;

/** a group entry as an admin checks it */
function entry(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || typeof (v as { address?: unknown }).address !== 'string') return null;
  const e = v as { address: string; comment?: string | null; expiresAt?: string | null };
  const comment = e.comment ? ` ${JSON.stringify(e.comment.length > 40 ? `${e.comment.slice(0, 40)}...` : e.comment)}` : '';
  return `${e.address}${comment} ${e.expiresAt ? `until ${e.expiresAt}` : '(no expiry)'}`;
}

function shown(v: unknown): string {
  if (v === undefined) return '(none)';
  const one = entry(v);
  if (one !== null) return one;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => entry(x) !== null)) {
    return `[${v.slice(0, 3).map((x) => entry(x)).join(', ')}${v.length > 3 ? ` and ${v.length - 3} more` : ''}]`;
  }
  const j = JSON.stringify(v);
  if (j.length <= 60) return j;
  // cut where a reader can see it was cut, never inside a value
  if (typeof v === 'string') return JSON.stringify(`${v.slice(0, 50)}...`);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  return typeof v === 'object' && v !== null ? `{${Object.keys(v).slice(0, 4).join(', ')}${Object.keys(v).length > 4 ? ', ...' : ''}}` : j;
}

/** `key before -> after; ...` for up to five changes, then "and N more (config.history has them all)" */
export function describeChanges(changes: readonly ConfigChange[]): string {
  const named = changes.slice(0, SHOWN).map((c) => `${c.path} ${shown(c.before)} -> ${shown(c.after)}`);
  if (changes.length > SHOWN) named.push(`and ${changes.length - SHOWN} more (config.history has them all)`);
  return named.join('; ');
}

/** tokens.json's change in words ("tokens removed: ... (their console sessions closed); tokens added: ..."), or '' */
export function describeTokens(c: { added: readonly string[]; removed: readonly string[] }): string {
  return [
    ...(c.removed.length ? [`tokens removed: ${c.removed.join(', ')} (their console sessions closed)`] : []),
    ...(c.added.length ? [`tokens added: ${c.added.join(', ')}`] : []),
  ].join('; ');
}
