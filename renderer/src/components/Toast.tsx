/**
 * Toasts, with an Undo button for actions that can be taken back (e.g. "Trusted 203.0.113.5. Undo").
 *
 *   const toast = useToast();
 *   toast.show({ message: 'Trusted 127.0.0.5 in "Trusted"', kind: 'success', undo: () => api.call('groups.removeEntry', ...) });
 *
 * `undo` runs once; its failure becomes an error toast (with explainError's words). Toasts with an undo stay longer.
 * <ToastProvider> wraps the app (main.tsx).
 *
 * Toasts sit in the bottom right corner, which is also where a view keeps its action buttons (the security form's
 * sticky apply bar, a dialog's footer, a form's Save). A toast there would hide "Review and apply" for 12 s, so the
 * stack moves up, above the controls it would cover (toastLift; above the whole bar for a control in a sticky bar),
 * and comes back down when they are gone. It is moved when the page changes (observed, not polled).
 */
import { createContext, useCallback, useContext, useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from 'react';
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
  /**
   * A toast with the same key replaces the one on screen instead of stacking under it (saving a form three times
   * shows one "Saved", not three).
   */
  key?: string;
  /** ms before it goes away (default 6 s, 12 s with undo, 10 s for errors); 0 = stays until closed */
  timeoutMs?: number;
}

export interface ToastApi {
  show(opts: ToastOptions): number;
  dismiss(id: number): void;
  /** take away the toast shown with this key, if it is still on screen (its advice no longer applies) */
  dismissKey(key: string): void;
  /** shortcut for an error toast with explainError's words */
  error(err: unknown, prefix?: string): number;
}

interface Item extends ToastOptions {
  id: number;
  undoing?: boolean;
}

const Ctx = createContext<ToastApi | null>(null);

/** what a toast must not hide */
const CONTROL = 'button, a[href], input, select, textarea, [role="button"], [role="tab"], label.segment';

interface Box {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/**
 * What the stack keeps clear of for a control: the control, or the sticky bar it sits in (the security form's apply
 * bar): a toast lifted only above the buttons would still lie on the bar's top edge and hide its words. A sticky
 * element taller than a quarter of the window is a panel, not a bar: there the control alone.
 */
function keepClear(c: Element): Element {
  for (let e: Element | null = c; e && e !== document.body; e = e.parentElement) {
    if (getComputedStyle(e).position === 'sticky') return e.getBoundingClientRect().height <= window.innerHeight / 4 ? e : c;
  }
  return c;
}

/** The controls (outside `own`) seen at a grid of points over `r`: the rects of those a box there would hide (of their bars, see keepClear). */
function controlsUnder(r: Box, own: Element): Box[] {
  const out: Box[] = [];
  const seen = new Set<Element>();
  const cols = 12;
  const rows = 3;
  for (let j = 0; j < rows; j++) {
    for (let i = 0; i < cols; i++) {
      const x = r.left + ((i + 0.5) * (r.right - r.left)) / cols;
      const y = r.top + ((j + 0.5) * (r.bottom - r.top)) / rows;
      // the topmost element under the point once the toasts are left out
      const under = document.elementsFromPoint(x, y).find((e) => !own.contains(e));
      const control = under?.closest(CONTROL);
      const c = control ? keepClear(control) : null;
      if (c && !seen.has(c)) {
        seen.add(c);
        out.push(c.getBoundingClientRect());
      }
    }
  }
  return out;
}

/**
 * How far (px) to move the toast stack up from its place in the corner so it hides no control: above the controls
 * it would cover, then above the ones it would cover there, a few times over. Where no such place is found below the
 * top of the window, the first move (above the bottom-most controls, usually an action bar) is taken.
 */
export function toastLift(el: HTMLElement): number {
  const rect = el.getBoundingClientRect();
  if (rect.height === 0) return 0;
  const vh = window.innerHeight;
  // the stylesheet's offset from the bottom (the lift is a transform, which moves neither this nor the width)
  const base = parseFloat(getComputedStyle(el).bottom) || 0;
  const gap = 8;
  let lift = 0;
  let first: number | null = null;
  for (let i = 0; i < 4; i++) {
    const bottom = vh - base - lift;
    const hits = controlsUnder({ left: rect.left, right: rect.right, top: bottom - rect.height, bottom }, el);
    if (hits.length === 0) return lift;
    const next = vh - base - Math.min(...hits.map((h) => h.top)) + gap;
    if (next <= lift || bottom - rect.height - (next - lift) < 48) break;
    lift = next;
    first ??= next;
  }
  return first ?? 0;
}

export function useToast(): ToastApi {
  const t = useContext(Ctx);
  if (!t) throw new Error('useToast() outside <ToastProvider>');
  return t;
}

export function ToastProvider({ children }: { children: ReactNode }) {
  const [items, setItems] = useState<Item[]>([]);
  const nextId = useRef(1);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());
  // key -> the id of the toast shown with it last
  const keyed = useRef(new Map<string, number>());

  const dismiss = useCallback((id: number) => {
    const t = timers.current.get(id);
    if (t) clearTimeout(t);
    timers.current.delete(id);
    for (const [k, v] of keyed.current) if (v === id) keyed.current.delete(k);
    setItems((xs) => xs.filter((x) => x.id !== id));
  }, []);

  const show = useCallback(
    (opts: ToastOptions) => {
      const id = nextId.current++;
      const prev = opts.key !== undefined ? keyed.current.get(opts.key) : undefined;
      if (prev !== undefined) {
        const t = timers.current.get(prev);
        if (t) clearTimeout(t);
        timers.current.delete(prev);
      }
      if (opts.key !== undefined) keyed.current.set(opts.key, id);
      setItems((xs) => [...xs.filter((x) => x.id !== prev).slice(-4), { ...opts, id }]);
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

  // keep the stack off the controls under it while there is one: on show, and whenever what is under it may have
  // changed. Nothing is polled: the page changes by DOM mutations (a view, a dialog or an action bar rendered, a
  // class or style switched, text that reflows), by scrolling, by the window's size, by CSS transitions and animations
  // (observed when they end, in their final place), by the pointer (a live row shows its secondary button on :hover),
  // and the stack itself by its own size; each asks for one check at the next frame, however many come before it.
  const box = useRef<HTMLDivElement>(null);
  const [lift, setLift] = useState(0);
  const liftRef = useRef(0);
  liftRef.current = lift;
  const shown = items.length > 0;
  useLayoutEffect(() => {
    const el = box.current;
    if (!shown || !el) {
      setLift(0);
      return;
    }
    let frame = 0;
    const place = () => {
      frame = 0;
      const next = toastLift(el);
      if (Math.abs(next - liftRef.current) > 1) setLift(next);
    };
    const soon = () => {
      if (!frame) frame = requestAnimationFrame(place);
    };
    // the stack's own changes (its lift, its toasts' text) do not move what is under it; its size is observed apart
    const outside = (t: EventTarget | Node | null) => !(t instanceof Node && el.contains(t));
    const onEvent = (e: Event) => {
      if (outside(e.target)) soon();
    };
    place();
    const mutations = new MutationObserver((records) => {
      if (!frame && records.some((r) => outside(r.target))) soon();
    });
    mutations.observe(document.body, { childList: true, subtree: true, attributes: true, characterData: true });
    const sized = new ResizeObserver(soon);
    sized.observe(el);
    const events = ['scroll', 'transitionend', 'animationend', 'pointerover'] as const;
    window.addEventListener('resize', soon);
    for (const e of events) document.addEventListener(e, onEvent, true);
    return () => {
      mutations.disconnect();
      sized.disconnect();
      if (frame) cancelAnimationFrame(frame);
      window.removeEventListener('resize', soon);
      for (const e of events) document.removeEventListener(e, onEvent, true);
    };
  }, [shown, items]);

  const dismissKey = useCallback(
    (key: string) => {
      const id = keyed.current.get(key);
      if (id !== undefined) dismiss(id);
    },
    [dismiss],
  );

  const api = useMemo<ToastApi>(() => ({ show, dismiss, dismissKey, error }), [show, dismiss, dismissKey, error]);
  return (
    <Ctx.Provider value={api}>
      {children}
      <div
        ref={box}
        className="toasts"
        role="status"
        aria-live="polite"
        data-lift={lift || undefined}
        style={lift ? { transform: `translateY(${-lift}px)`, transition: 'transform 120ms ease-out' } : undefined}
      >
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
