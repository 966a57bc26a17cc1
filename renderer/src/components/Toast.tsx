/**
 * Toasts, with an Undo button for actions that can be taken back (e.g. "Trusted 203.0.113.5. Undo").
 *
 *   const toast = useToast();
 *   toast.show({ message: 'Trusted 127.0.0.5 in "Trusted"', kind: 'success', undo: () => api.call('groups.removeEntry', ...) });
 *
 * `undo` runs once; its failure becomes an error toast (with explainError's words). Toasts with an undo stay longer.
 * <ToastProvider> wraps the app (main.tsx).
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { explainError } from '../hooks.ts';

export type ToastKind = 'info' | 'success' | 'error' | 'warning';

export interface ToastOptions {
  message: ReactNode;
  kind?: ToastKind;
  /** shown as an "Undo" button; the toast says "Undone" when it resolves */
  undo?: () => Promise<unknown> | unknown;
  undoLabel?: string;
  /** what the toast says after a successful undo */
  undoneMessage?: ReactNode;
  /** another action button */
  action?: { label: string; onClick: () => void };
  /** ms before it goes away (default 6 s, 12 s with undo, 10 s for errors); 0 = stays until closed */
  timeoutMs?: number;
}

export interface ToastApi {
  show(opts: ToastOptions): number;
  dismiss(id: number): void;
  /** shortcut for an error toast with explainError's words */
  error(err: unknown, prefix?: string): number;
}

interface Item extends ToastOptions {
  id: number;
  undoing?: boolean;
}

const Ctx = createContext<ToastApi | null>(null);

export function useToast(): ToastApi {
  const t = useContext(Ctx);
  if (!t) throw new Error('useToast() outside <ToastProvider>');
  return t;
}

export function ToastProvider({ children }: { children: ReactNode }) {
  const [items, setItems] = useState<Item[]>([]);
  const nextId = useRef(1);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());

  const dismiss = useCallback((id: number) => {
    const t = timers.current.get(id);
    if (t) clearTimeout(t);
    timers.current.delete(id);
    setItems((xs) => xs.filter((x) => x.id !== id));
  }, []);

  const show = useCallback(
    (opts: ToastOptions) => {
      const id = nextId.current++;
      setItems((xs) => [...xs.slice(-4), { ...opts, id }]);
      const ms = opts.timeoutMs ?? (opts.undo ? 12_000 : opts.kind === 'error' ? 10_000 : 6_000);
      if (ms > 0) timers.current.set(id, setTimeout(() => dismiss(id), ms));
      return id;
    },
    [dismiss],
  );

  const error = useCallback((err: unknown, prefix?: string) => show({ kind: 'error', message: prefix ? `${prefix}: ${explainError(err)}` : explainError(err) }), [show]);

  useEffect(() => {
    const map = timers.current;
    return () => {
      for (const t of map.values()) clearTimeout(t);
      map.clear();
    };
  }, []);

  const runUndo = async (item: Item) => {
    if (!item.undo || item.undoing) return;
    setItems((xs) => xs.map((x) => (x.id === item.id ? { ...x, undoing: true } : x)));
    try {
      await item.undo();
      dismiss(item.id);
      show({ kind: 'info', message: item.undoneMessage ?? 'Undone.' });
    } catch (err) {
      dismiss(item.id);
      error(err, 'Undo failed');
    }
  };

  const api = useMemo<ToastApi>(() => ({ show, dismiss, error }), [show, dismiss, error]);
  return (
    <Ctx.Provider value={api}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {items.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind ?? 'info'}`} data-testid="toast">
            <div className="toast-message">{t.message}</div>
            {t.undo && (
              <button type="button" className="btn btn-small btn-primary" onClick={() => void runUndo(t)} disabled={t.undoing}>
                {t.undoing ? 'Undoing…' : (t.undoLabel ?? 'Undo')}
              </button>
            )}
            {t.action && (
              <button
                type="button"
                className="btn btn-small"
                onClick={() => {
                  t.action!.onClick();
                  dismiss(t.id);
                }}
              >
                {t.action.label}
              </button>
            )}
            <button type="button" className="toast-close" aria-label="Close" onClick={() => dismiss(t.id)}>
              ×
            </button>
          </div>
        ))}
      </div>
    </Ctx.Provider>
  );
}
