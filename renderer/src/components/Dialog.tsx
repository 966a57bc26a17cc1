/**
 * A modal dialog on the native <dialog> element (focus trapping, Escape, backdrop for free), and a confirm dialog.
 *
 *   <Dialog open={open} title="Configuration changed" onClose={() => setOpen(false)} footer={<Button ...>Re-apply</Button>}>
 *     ...
 *   </Dialog>
 *
 * Escape and the × call onClose. Keep it controlled: render it always and flip `open`.
 */
import { useEffect, useId, useRef, type ReactNode } from 'react';
import { Button } from './Button.tsx';

export interface DialogProps {
  open: boolean;
  title: ReactNode;
  onClose: () => void;
  children?: ReactNode;
  /** buttons, right-aligned */
  footer?: ReactNode;
  /** 'alert' for a hard stop / destructive confirmation (role alertdialog) */
  tone?: 'normal' | 'alert' | 'danger';
  /** wide: for diffs and previews */
  wide?: boolean;
  className?: string;
}

export function Dialog({ open, title, onClose, children, footer, tone = 'normal', wide, className }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      className={['dialog', `dialog-${tone}`, wide ? 'dialog-wide' : '', className ?? ''].filter(Boolean).join(' ')}
      role={tone === 'normal' ? 'dialog' : 'alertdialog'}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      {open && (
        <>
          <header className="dialog-header">
            <h2 id={titleId}>{title}</h2>
            <button type="button" className="dialog-close" aria-label="Close" onClick={onClose}>
              ×
            </button>
          </header>
          <div className="dialog-body">{children}</div>
          {footer && <footer className="dialog-footer">{footer}</footer>}
        </>
      )}
    </dialog>
  );
}

export interface ConfirmDialogProps {
  open: boolean;
  title: ReactNode;
  children?: ReactNode;
  confirmLabel: string;
  cancelLabel?: string;
  danger?: boolean;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}

export function ConfirmDialog({ open, title, children, confirmLabel, cancelLabel = 'Cancel', danger, busy, onConfirm, onCancel }: ConfirmDialogProps) {
  return (
    <Dialog
      open={open}
      title={title}
      onClose={onCancel}
      tone={danger ? 'danger' : 'normal'}
      footer={
        <>
          <Button onClick={onCancel}>{cancelLabel}</Button>
          <Button variant={danger ? 'danger' : 'primary'} busy={busy} onClick={onConfirm}>
            {confirmLabel}
          </Button>
        </>
      }
    >
      {children}
    </Dialog>
  );
}
