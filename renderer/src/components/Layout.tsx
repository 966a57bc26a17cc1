/**
 * Small layout pieces shared by the views: a view header with actions, a read-only notice for viewer tokens,
 * badges, an empty state, the "not connected" placeholder (RequireConnection), the "Retry now" button, and which
 * view is on screen (useShowsView / useViewShown).
 */
import { createContext, useContext, useState, type ReactNode } from 'react';
import type { ViewId } from '../views/registry.ts';
import { retryWords, useApi, useCanEdit, useConnection, useSecondsUntil } from '../hooks.ts';
import { Button, DisabledReason, type ButtonVariant } from './Button.tsx';
import { useToast } from './Toast.tsx';

/** Switch view from anywhere (e.g. "Everything from this IP" opens Live traffic filtered). */
export type Navigate = (view: ViewId, arg?: Record<string, string>) => void;
export const NavigateContext = createContext<Navigate>(() => {});
export function useNavigate(): Navigate {
  return useContext(NavigateContext);
}

/**
 * While the console waits to reconnect: try now instead of at the end of the backoff (after a relay restart, the wait
 * may still be many seconds). A new attempt of the same profile: the stream goes on from the last event.
 */
export function RetryNowButton({ profileId, variant = 'default', small, className }: { profileId: string; variant?: ButtonVariant; small?: boolean; className?: string }) {
  const api = useApi();
  const toast = useToast();
  const [busy, setBusy] = useState(false);
  return (
    <Button
      variant={variant}
      small={small}
      className={className}
      busy={busy}
      data-testid="retry-now"
      onClick={() => {
        setBusy(true);
        api.connection.connect(profileId).then(
          () => setBusy(false),
          (err: unknown) => {
            setBusy(false);
            toast.error(err);
          },
        );
      }}
    >
      Retry now
    </Button>
  );
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

/**
 * Renders children only while connected; otherwise says so, in words, with a way to the Servers view (and, while the
 * console waits to reconnect, a live countdown and "Retry now").
 */
export function RequireConnection({ children, what }: { children: ReactNode; what?: string }) {
  const conn = useConnection();
  const navigate = useNavigate();
  const seconds = useSecondsUntil(conn?.status === 'reconnecting' ? conn.retryAt : null);
  if (conn?.status === 'connected') return <>{children}</>;
  const retry = conn ? retryWords(conn, seconds) : null;
  return (
    <EmptyState title={`Not connected${what ? `: ${what} comes from the relay` : ''}`}>
      <p data-testid="not-connected-message">{conn?.message ?? 'Loading…'}</p>
      {retry && <p data-testid="retry-countdown">{retry}</p>}
      <div className="button-row" style={{ justifyContent: 'center' }}>
        {conn?.status === 'reconnecting' && conn.profileId && <RetryNowButton profileId={conn.profileId} />}
        <Button variant="primary" onClick={() => navigate('servers')}>
          Open Servers
        </Button>
      </div>
    </EmptyState>
  );
}
