/**
 * The Review dialog when the form's base is stale: another administrator applied a change after this form was
 * loaded (pure, tested in Node). The dialog showed "Now: 3 messages per hour → 5" while the relay held 7, did not show
 * a rule the other admin had turned off, and its impact preview compared the change with revision 5: it credited the
 * change with "2 that the current settings reject would pass", messages that already pass at 7.
 * Here "Now" is the relay's current value (with the value the edit started from, when it differs), the other admin's
 * changes the user did not touch are listed, and the impact is measured from the relay's current settings to the
 * user's edits put on top of them (as "Re-apply on top" would send them).
 */
import type { Config } from '../../../../shared/config.ts';
import { FIELDS, buildCandidate, displayValue, formChanges, getPath, rebase, type FieldChange, type FormValues } from './model.ts';

export interface StaleRow extends FieldChange {
  /** the value the form was loaded with, when the relay now holds another (changed by someone else meanwhile) */
  startedFrom: string | null;
}

export interface StaleReview {
  /** the user's changes: `before` is the relay's value now */
  rows: StaleRow[];
  /** fields the other administrator changed that the user did not edit ("Reverse DNS: Enforce → Off") */
  theirs: FieldChange[];
  /** the impact preview's two configs: the relay's settings now, and the user's edits on top of them */
  current: Config;
  after: Config;
}

export function staleReview(base: Config, form: FormValues, latest: Config): StaleReview {
  const mine = formChanges(base, buildCandidate(base, form).config);
  const rows = mine.map((c): StaleRow => {
    const f = FIELDS.find((x) => x.id === c.id)!;
    const now = displayValue(f, getPath(latest, f.path));
    return { ...c, before: now, startedFrom: now === c.before ? null : c.before };
  });
  const ids = new Set(mine.map((c) => c.id));
  const theirs = formChanges(base, latest).filter((c) => !ids.has(c.id));
  const next = rebase(base, form, latest);
  return { rows, theirs, current: latest, after: buildCandidate(latest, next.form).config };
}
