/** Expiry for a trusted entry: 1 hour, 1 day, 1 week, never, or a date (local time). */
import { Field } from '../../components/index.ts';
import { EXPIRY_PRESETS, type ExpiryPreset } from './expiry.ts';

export interface ExpiryValue {
  preset: ExpiryPreset;
  date: string;
}

export function ExpiryPicker({
  value,
  onChange,
  error,
  why,
  label = 'Expires',
  neverLabel = 'Never',
}: {
  value: ExpiryValue;
  onChange: (v: ExpiryValue) => void;
  error?: string | null;
  why: string | null;
  label?: string;
  neverLabel?: string;
}) {
  return (
    <Field label={label} error={error} hint={value.preset === 'date' ? 'your local time' : undefined}>
      {({ id, describedBy, invalid }) => (
        <span className="expiry-inputs">
          <select
            id={id}
            value={value.preset}
            onChange={(e) => onChange({ ...value, preset: e.target.value as ExpiryPreset })}
            disabled={Boolean(why)}
            title={why ?? undefined}
            data-disabled-reason={why ?? undefined}
            aria-describedby={describedBy}
          >
            {EXPIRY_PRESETS.map((p) => (
              <option key={p.id} value={p.id}>
                {p.id === 'never' ? neverLabel : p.label}
              </option>
            ))}
          </select>
          {value.preset === 'date' && (
            <input
              type="datetime-local"
              aria-label="Expiry date and time"
              value={value.date}
              onChange={(e) => onChange({ ...value, date: e.target.value })}
              aria-invalid={invalid || undefined}
              disabled={Boolean(why)}
              title={why ?? undefined}
            />
          )}
        </span>
      )}
    </Field>
  );
}
