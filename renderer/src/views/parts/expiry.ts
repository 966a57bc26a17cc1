/**
 * Expiry of trusted-group entries: presets (1 hour, 1 day, 1 week, never, a date) to an ISO instant, and an entry's
 * state at a given time in words ("expired 3 h ago"). Pure (the current time is passed in), tested in Node
 * (test/console-views-logic.test.ts). General formatting lives in components/format.ts.
 */
import { fmtAgo } from '../../components/format.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const EXPIRY_PRESETS = [
  { id: '1h', label: '1 hour', ms: HOUR },
  { id: '1d', label: '1 day', ms: DAY },
  { id: '1w', label: '1 week', ms: 7 * DAY },
  { id: 'never', label: 'Never', ms: null },
  { id: 'date', label: 'Until a date…', ms: null },
] as const;
export type ExpiryPreset = (typeof EXPIRY_PRESETS)[number]['id'];

export type ExpiryResult = { ok: true; expiresAt: string | null } | { ok: false; error: string };

/**
 * The expiresAt (ISO 8601 with a zone, UTC) for a preset, or for a local date and time typed into a
 * datetime-local input ("2026-12-01T09:00"), which is the admin's local time.
 */
export function expiryFor(preset: ExpiryPreset, localDate: string, now: number): ExpiryResult {
  if (preset === 'never') return { ok: true, expiresAt: null };
  if (preset !== 'date') {
    const p = EXPIRY_PRESETS.find((x) => x.id === preset)!;
    return { ok: true, expiresAt: new Date(now + (p.ms ?? 0)).toISOString() };
  }
  if (!localDate) return { ok: false, error: 'pick the date and time the entry stops matching' };
  // datetime-local gives "YYYY-MM-DDTHH:MM" in local time; Date parses that form as local time
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(localDate)) return { ok: false, error: 'use a date and time like 2026-12-01 09:00' };
  const t = new Date(localDate).getTime();
  if (Number.isNaN(t)) return { ok: false, error: 'that date does not exist' };
  if (t <= now) return { ok: false, error: 'that moment is in the past; the entry would never match' };
  return { ok: true, expiresAt: new Date(t).toISOString() };
}

/** State of a group entry's expiry at `now`, in words. */
export function expiryState(expiresAt: string | null | undefined, now: number): { expired: boolean; text: string; soon: boolean } {
  if (!expiresAt) return { expired: false, text: 'never expires', soon: false };
  const t = Date.parse(expiresAt);
  if (Number.isNaN(t)) return { expired: false, text: expiresAt, soon: false };
  if (t <= now) return { expired: true, text: `expired ${fmtAgo(t, now)}`, soon: false };
  return { expired: false, text: `expires ${fmtAgo(t, now)}`, soon: t - now < DAY };
}
