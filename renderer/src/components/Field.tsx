/**
 * Form fields with a label, a hint and an inline error, and helpers to turn validation issues (from a zod schema
 * on the client, or from the relay's -32602 / the core's 'invalid' errors) into per-field messages.
 *
 *   const [errors, setErrors] = useState<FieldErrors>({});
 *   <TextField label="Host" name="host" value={host} onChange={setHost} error={errors.host} />
 */
import { useId, type ChangeEvent, type InputHTMLAttributes, type ReactNode, type SelectHTMLAttributes } from 'react';
import type { z } from 'zod';
import { ApiError } from '../api.ts';

/** field path ("limits.messagesPerHour.max") -> message */
export type FieldErrors = Record<string, string>;

export interface IssueLike {
  path: readonly (string | number | symbol)[];
  message: string;
}

/** Issues -> { "a.b": message } (the first message per path wins); issues without a path go under "". */
export function issuesToErrors(issues: readonly IssueLike[]): FieldErrors {
  const out: FieldErrors = {};
  for (const i of issues) {
    const key = i.path.map((p) => String(p)).join('.');
    if (!(key in out)) out[key] = i.message;
  }
  return out;
}

/** Validate with a zod schema: { ok, data } or { ok: false, errors }. */
export function validate<S extends z.ZodType>(schema: S, value: unknown): { ok: true; data: z.output<S> } | { ok: false; errors: FieldErrors } {
  const r = schema.safeParse(value);
  return r.success ? { ok: true, data: r.data } : { ok: false, errors: issuesToErrors(r.error.issues) };
}

/** Per-field errors carried by an API error (relay -32602 / 4022 or the core's 'invalid'), or null. */
export function errorsFromApi(err: unknown): FieldErrors | null {
  if (!(err instanceof ApiError)) return null;
  const issues = (err.data as { issues?: IssueLike[] } | undefined)?.issues;
  return Array.isArray(issues) && issues.length ? issuesToErrors(issues) : null;
}

export interface FieldProps {
  label: ReactNode;
  /** inline error under the control; marks it aria-invalid */
  error?: string | null;
  hint?: ReactNode;
  /** the control; it receives no props from here: pass id/aria yourself, or use the *Field components */
  children: (ids: { id: string; describedBy: string | undefined; invalid: boolean }) => ReactNode;
  className?: string;
  /** inline (label and control on one line) */
  inline?: boolean;
}

export function Field({ label, error, hint, children, className, inline }: FieldProps) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : '';
  const errId = error ? `${id}-err` : '';
  const describedBy = [hintId, errId].filter(Boolean).join(' ') || undefined;
  return (
    <div className={['field', inline ? 'field-inline' : '', error ? 'field-invalid' : '', className ?? ''].filter(Boolean).join(' ')}>
      <label htmlFor={id}>{label}</label>
      {children({ id, describedBy, invalid: Boolean(error) })}
      {hint && !error && (
        <div id={hintId} className="field-hint">
          {hint}
        </div>
      )}
      {error && (
        <div id={errId} className="field-error" role="alert">
          {error}
        </div>
      )}
    </div>
  );
}

type InputRest = Omit<InputHTMLAttributes<HTMLInputElement>, 'onChange' | 'value' | 'id'>;

/** The props TextField and SelectField give their control: ids, value, aria state, and the disabled reason. */
function controlProps<E extends HTMLInputElement | HTMLSelectElement>(
  { id, describedBy, invalid }: { id: string; describedBy: string | undefined; invalid: boolean },
  value: string,
  onChange: (value: string) => void,
  disabledReason: string | null | undefined,
  rest: { disabled?: boolean; title?: string },
) {
  return {
    id,
    value,
    onChange: (e: ChangeEvent<E>) => onChange(e.target.value),
    'aria-invalid': invalid || undefined,
    'aria-describedby': describedBy,
    disabled: Boolean(disabledReason) || rest.disabled,
    title: disabledReason ?? rest.title,
    'data-disabled-reason': disabledReason ?? undefined,
  };
}

export interface TextFieldProps extends InputRest {
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  error?: string | null;
  hint?: ReactNode;
  /** why it cannot be edited (renders read-only with that tooltip) */
  disabledReason?: string | null;
  inline?: boolean;
}

export function TextField({ label, value, onChange, error, hint, disabledReason, inline, className, ...rest }: TextFieldProps) {
  return (
    <Field label={label} error={error} hint={hint} inline={inline} className={className}>
      {(ids) => <input {...rest} {...controlProps<HTMLInputElement>(ids, value, onChange, disabledReason, rest)} />}
    </Field>
  );
}

export interface NumberFieldProps extends Omit<TextFieldProps, 'value' | 'onChange' | 'type'> {
  /** kept as text so a half-typed value can be shown with its error */
  value: string | number;
  onChange: (value: string) => void;
}

export function NumberField({ value, ...rest }: NumberFieldProps) {
  return <TextField {...rest} value={String(value)} type="number" inputMode="numeric" />;
}

export interface SelectFieldProps extends Omit<SelectHTMLAttributes<HTMLSelectElement>, 'onChange' | 'value' | 'id'> {
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  options: readonly (string | { value: string; label: string })[];
  error?: string | null;
  hint?: ReactNode;
  disabledReason?: string | null;
  inline?: boolean;
}

export function SelectField({ label, value, onChange, options, error, hint, disabledReason, inline, className, ...rest }: SelectFieldProps) {
  return (
    <Field label={label} error={error} hint={hint} inline={inline} className={className}>
      {(ids) => (
        <select {...rest} {...controlProps<HTMLSelectElement>(ids, value, onChange, disabledReason, rest)}>
          {options.map((o) => {
            const v = typeof o === 'string' ? o : o.value;
            return (
              <option key={v} value={v}>
                {typeof o === 'string' ? o : o.label}
              </option>
            );
          })}
        </select>
      )}
    </Field>
  );
}

export interface CheckboxProps extends Omit<InputHTMLAttributes<HTMLInputElement>, 'onChange' | 'checked' | 'type'> {
  label: ReactNode;
  checked: boolean;
  onChange: (checked: boolean) => void;
  disabledReason?: string | null;
}

export function Checkbox({ label, checked, onChange, disabledReason, className, ...rest }: CheckboxProps) {
  return (
    <label className={['checkbox', className ?? ''].filter(Boolean).join(' ')} title={disabledReason ?? rest.title}>
      <input
        {...rest}
        type="checkbox"
        checked={checked}
        onChange={(e) => onChange(e.target.checked)}
        disabled={Boolean(disabledReason) || rest.disabled}
        data-disabled-reason={disabledReason ?? undefined}
      />
      <span>{label}</span>
    </label>
  );
}

/** An error for a person (from explainError), shown in a box with an optional action. */
export function ErrorBox({ children, action, title }: { children: ReactNode; action?: ReactNode; title?: ReactNode }) {
  if (!children) return null;
  return (
    <div className="error-box" role="alert">
      {title && <strong>{title}</strong>}
      <div>{children}</div>
      {action && <div className="error-box-action">{action}</div>}
    </div>
  );
}
