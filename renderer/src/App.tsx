import { useCallback, useEffect, useMemo, useState } from 'react';
import { VIEWS, type ViewId } from './views/registry.ts';
import { useApi, useConfigChangeInvalidation, useConnection } from './hooks.ts';
import { ServersView } from './views/ServersView.tsx';
import { DashboardView } from './views/DashboardView.tsx';
import { LiveView } from './views/LiveView.tsx';
import { SecurityView } from './views/SecurityView.tsx';
import { GroupsView } from './views/GroupsView.tsx';
import { ClientsView } from './views/ClientsView.tsx';
import { QueueView } from './views/QueueView.tsx';
import { AuditView } from './views/AuditView.tsx';
import { StatusBar } from './components/StatusBar.tsx';
import { ErrorBoundary } from './components/ErrorBoundary.tsx';
import { NavigateContext, type Navigate } from './components/Layout.tsx';
import { useLiveFeed } from './state/live.ts';
import { liveUi } from './state/liveUi.ts';
import { useRejectionSpikeNotifier } from './state/spike.ts';

/** Views can ask the shell to switch view (e.g. "Everything from this IP" opens Live traffic filtered). */
export type { Navigate };

/** keys typed into these never trigger the single-key shortcuts (Space) */
function isTyping(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  if (!el || !el.tagName) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || tag === 'BUTTON' || tag === 'A' || el.isContentEditable || el.closest('dialog[open]') !== null;
}

export function App() {
  const conn = useConnection();
  const api = useApi();
  const [view, setView] = useState<ViewId>('servers');
  const [arg, setArg] = useState<Record<string, string> | undefined>();
  useConfigChangeInvalidation();
  useLiveFeed(api);
  useRejectionSpikeNotifier(api, conn?.relay?.hostname ?? null);
  const navigate: Navigate = useCallback((v, a) => {
    setView(v);
    setArg(a);
    if (v === 'live' && a?.ip !== undefined) liveUi.setFilter({ ip: a.ip });
  }, []);
  useEffect(() => {
    if (conn?.status === 'connected' && view === 'servers') setView('dashboard');
    // only when the connection comes up
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [conn?.status]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const mod = (e.ctrlKey || e.metaKey) && !e.altKey;
      if (mod) {
        const v = VIEWS.find((x) => x.key === e.key);
        if (v) {
          e.preventDefault();
          navigate(v.id);
          return;
        }
        const k = e.key.toLowerCase();
        if (k === 'f') {
          e.preventDefault();
          navigate('live');
          liveUi.requestFilterFocus();
          return;
        }
        if (k === 'p') {
          e.preventDefault();
          liveUi.togglePause();
          return;
        }
      }
      if (e.key === ' ' && !mod && !e.altKey && !e.shiftKey && !isTyping(e.target) && document.querySelector('.view[data-view="live"]')) {
        e.preventDefault();
        liveUi.togglePause();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [navigate]);
  const current = useMemo(() => VIEWS.find((v) => v.id === view)!, [view]);
  useEffect(() => {
    document.title = `${current.label} · Relay Warden${conn?.relay ? ` · ${conn.relay.hostname}` : ''}`;
  }, [current, conn?.relay]);
  return (
    <NavigateContext.Provider value={navigate}>
      <div className="app">
        <nav className="sidebar" aria-label="Views">
          <div className="brand">
            <span className="brand-mark" aria-hidden="true" />
            Relay Warden
          </div>
          {VIEWS.map((v) => (
            <button
              key={v.id}
              className={v.id === view ? 'nav-item active' : 'nav-item'}
              aria-current={v.id === view ? 'page' : undefined}
              onClick={() => navigate(v.id)}
              title={`${v.label} (Ctrl+${v.key})`}
              data-view-id={v.id}
            >
              {v.label}
              <kbd>{v.key}</kbd>
            </button>
          ))}
          <div className="sidebar-foot" aria-label="Keyboard shortcuts">
            Ctrl+1…8 views
            <br />
            Ctrl+F filter live traffic
            <br />
            Space / Ctrl+P pause live
          </div>
        </nav>
        <main className="content">
          <StatusBar onOpenServers={() => navigate('servers')} onServers={view === 'servers'} />
          <div className="view" data-view={view}>
            <ErrorBoundary what={current.label} resetKey={view}>
              {view === 'servers' && <ServersView />}
              {view === 'dashboard' && <DashboardView navigate={navigate} />}
              {view === 'live' && <LiveView navigate={navigate} initialIp={arg?.ip} />}
              {view === 'security' && <SecurityView />}
              {view === 'groups' && <GroupsView />}
              {view === 'clients' && <ClientsView navigate={navigate} />}
              {view === 'queue' && <QueueView />}
              {view === 'audit' && <AuditView />}
            </ErrorBoundary>
          </div>
        </main>
      </div>
    </NavigateContext.Provider>
  );
}
