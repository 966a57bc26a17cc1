/**
 * Small layout pieces shared by the views: a view header with actions, a read-only notice for viewer tokens,
 * badges, an empty state, and the "not connected" placeholder (RequireConnection).
 */
import { createContext, useContext, type ReactNode } from 'react';
import type { ViewId } from '../views/registry.ts';
import { useCanEdit, useConnection } from '../hooks.ts';
import { Button, DisabledReason } from './Button.tsx';

/** Switch view from anywhere (e.g. "Everything from this IP" opens Live traffic filtered). */
export type Navigate = (view: ViewId, arg?: Record<string, string>) => void;
export const NavigateContext = createContext<Navigate>(() => {});
export function useNavigate(): Navigate {
  return useContext(NavigateContext);
}

export function ViewHeader({ title, children, subtitle }: { title: ReactNode; subtitle?: ReactNode; children?: ReactNode }) {
  return (
    <header className="view-header">
      <div>
        <h1>{title}</h1>
        {subtitle && <p className="view-subtitle">{subtitle}</p>}
      </div>
      {children && <div className="view-actions">{children}</div>}
    </header>
  );
}

/** For viewer tokens: one line at the top of a view that changes things, saying why its controls are disabled. */
export function ReadOnlyNotice() {
  const { canEdit, why } = useCanEdit();
  const conn = useConnection();
  if (canEdit || conn?.status !== 'connected') return null;
  return <DisabledReason reason={why} />;
}

export type BadgeTone = 'ok' | 'warn' | 'bad' | 'info' | 'muted';
export function Badge({ tone = 'muted', children, title }: { tone?: BadgeTone; children: ReactNode; title?: string }) {
  return (
    <span className={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

export function EmptyState({ title, children }: { title: ReactNode; children?: ReactNode }) {
  return (
    <div className="empty-state">
      <p className="empty-title">{title}</p>
      {children && <div className="empty-body">{children}</div>}
    </div>
  );
}

/** Renders children only while connected; otherwise says so, in words, with a way to the Servers view. */
export function RequireConnection({ children, what }: { children: ReactNode; what?: string }) {
  const conn = useConnection();
  const navigate = useNavigate();
  if (conn?.status === 'connected') return <>{children}</>;
  return (
    <EmptyState title={`Not connected${what ? `: ${what} comes from the relay` : ''}`}>
      <p>{conn?.message ?? 'Loading…'}</p>
      <Button variant="primary" onClick={() => navigate('servers')}>
        Open Servers
      </Button>
    </EmptyState>
  );
}
