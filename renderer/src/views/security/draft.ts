/**
 * The security form's state (the revision it is based on and the text of every field) kept per server profile,
 * outside React: the form is unmounted when the connection drops (the view then says "Not connected"), when the user
 * opens another view, or when the console follows another relay for a while, and unsaved edits must survive all of
 * these. Keyed by the profile id, so one relay's draft is never shown (or applied) on another.
 * No React and no DOM here (tested in Node: test/console-security-draft.test.ts).
 */
import type { Config } from '../../../../shared/config.ts';
import { editedFields, type FormValues } from './model.ts';

export interface DraftSnapshot {
  revision: number;
  config: Config;
}

export interface SecurityDraft {
  /** the revision the form is based on */
  base: DraftSnapshot;
  /** the text of every field, edited or not */
  form: FormValues;
  /** when the base was loaded from the relay (ms since the epoch) */
  loadedAt: number;
}

const drafts = new Map<string, SecurityDraft>();

export const securityDrafts = {
  get(profileId: string): SecurityDraft | undefined {
    return drafts.get(profileId);
  },
  set(profileId: string, d: SecurityDraft): void {
    drafts.set(profileId, d);
  },
  delete(profileId: string): void {
    drafts.delete(profileId);
  },
  /** for tests */
  clear(): void {
    drafts.clear();
  },
};

/** The number of fields a draft changes (0: nothing would be lost by dropping it). */
export function draftEdits(d: SecurityDraft | undefined): number {
  return d ? editedFields(d.base.config, d.form).length : 0;
}

export type Adoption =
  /** take the relay's revision as the new base, with the form showing it (nothing of the user's is lost) */
  | 'adopt'
  /** keep the base and the edits; the relay moved on: say so and offer the conflict dialog */
  | 'moved'
  /** nothing to do */
  | 'keep';

/**
 * What the form does with a config the relay sent (after a load, a change, a reconnect) given its draft:
 * - no draft yet, or no edits: adopt a newer revision;
 * - edits, and the relay now holds exactly what the form shows (the user's own Apply whose answer was lost when the
 *   connection dropped): adopt, nothing is lost;
 * - edits, and the relay moved on otherwise: keep them, and show the conflict handling (never drop them silently).
 */
export function adoption(d: SecurityDraft | undefined, latest: DraftSnapshot): Adoption {
  if (!d) return 'adopt';
  if (latest.revision <= d.base.revision) return 'keep';
  if (editedFields(d.base.config, d.form).length === 0) return 'adopt';
  if (editedFields(latest.config, d.form).length === 0) return 'adopt';
  return 'moved';
}
