/**
 * Buttons, and the DisabledReason pattern: a control that cannot be used says why.
 *
 *   <Button onClick={apply} disabledReason={why}>Apply</Button>
 *
 * With a `disabledReason` (a sentence for a person) the button is disabled, the reason is its tooltip (on a wrapper,
 * because disabled buttons get no pointer events), and it is linked with aria-describedby so screen readers and tests
 * can read it (`data-disabled-reason` carries it too). `busy` disables it while a request runs and shows a spinner.
 */
import { useId, type ButtonHTMLAttributes, type ReactNode } from 'react';

export type ButtonVariant = 'default' | 'primary' | 'danger' | 'ghost' | 'link';

export interface ButtonProps extends Omit<ButtonHTMLAttributes<HTMLButtonElement>, 'disabled'> {
  variant?: ButtonVariant;
  /** small, for table rows and toolbars */
  small?: boolean;
  /** when set (non-empty), the button is disabled and this says why */
  disabledReason?: string | null;
  /** disabled without a reason shown (e.g. an empty form); prefer disabledReason */
  disabled?: boolean;
  /** a request is running: disabled, with a spinner */
  busy?: boolean;
  children?: ReactNode;
}

export function Button({ variant = 'default', small, disabledReason, disabled, busy, className, children, type, ...rest }: ButtonProps) {
  const id = useId();
  const reason = disabledReason || null;
  const off = Boolean(reason) || Boolean(disabled) || Boolean(busy);
  const cls = ['btn', `btn-${variant}`, small ? 'btn-small' : '', busy ? 'btn-busy' : '', className ?? ''].filter(Boolean).join(' ');
  const button = (
    <button
      {...rest}
      type={type ?? 'button'}
      className={cls}
      disabled={off}
      aria-busy={busy || undefined}
      aria-describedby={reason ? `${id}-why` : rest['aria-describedby']}
      data-disabled-reason={reason ?? undefined}
    >
      {busy && <span className="spinner" aria-hidden="true" />}
      {children}
    </button>
  );
  if (!reason) return button;
  return (
    <span className="disabled-wrap" title={reason}>
      {button}
      <span id={`${id}-why`} className="sr-only">
        {reason}
      </span>
    </span>
  );
}

/** A line that explains why the controls of a section are disabled (e.g. above a form a viewer cannot change). */
export function DisabledReason({ reason }: { reason: string | null | undefined }) {
  if (!reason) return null;
  return (
    <p className="disabled-reason" role="note">
      <span aria-hidden="true">🔒 </span>
      {reason}
    </p>
  );
}
