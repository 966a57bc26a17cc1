import { useEffect, useState } from 'react';
import { VIEWS, type ViewId } from './views/registry.ts';
import { useConfigChangeInvalidation, useConnection } from './hooks.ts';
import { ServersView } from './views/ServersView.tsx';
import { DashboardView } from './views/DashboardView.tsx';
import { LiveView } from './views/LiveView.tsx';
import { SecurityView } from './views/SecurityView.tsx';
import { GroupsView } from './views/GroupsView.tsx';
import { ClientsView } from './views/ClientsView.tsx';
import { QueueView } from './views/QueueView.tsx';
import { AuditView } from './views/AuditView.tsx';
import { StatusBar } from './components/StatusBar.tsx';

/** Views can ask the shell to switch view (e.g. "Everything from this IP" opens Live traffic filtered). */
export type Navigate = (view: ViewId, arg?: Record<string, string>) => void;

export function App() {
  const conn = useConnection();
  const [view, setView] = useState<ViewId>('servers');
  const [arg, setArg] = useState<Record<string, string> | undefined>();
  useConfigChangeInvalidation();
  const navigate: Navigate = (v, a) => {
    setView(v);
    setArg(a);
  };
  useEffect(() => {
    if (conn?.status === 'connected' && view === 'servers') setView('dashboard');
    // only when the connection comes up
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [conn?.status]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
      const v = VIEWS.find((x) => x.key === e.key);
      if (v) {
        e.preventDefault();
        navigate(v.id);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  return (
    <div className="app">
      <nav className="sidebar" aria-label="Views">
        <div className="brand">Relay Warden</div>
        {VIEWS.map((v) => (
          <button
            key={v.id}
            className={v.id === view ? 'nav-item active' : 'nav-item'}
            aria-current={v.id === view ? 'page' : undefined}
            onClick={() => navigate(v.id)}
            title={`${v.label} (Ctrl+${v.key})`}
          >
            {v.label}
            <kbd>{v.key}</kbd>
          </button>
        ))}
      </nav>
      <main className="content">
        <StatusBar onOpenServers={() => navigate('servers')} />
        <div className="view" data-view={view}>
          {view === 'servers' && <ServersView />}
          {view === 'dashboard' && <DashboardView navigate={navigate} />}
          {view === 'live' && <LiveView navigate={navigate} initialIp={arg?.ip} />}
          {view === 'security' && <SecurityView />}
          {view === 'groups' && <GroupsView />}
          {view === 'clients' && <ClientsView navigate={navigate} />}
          {view === 'queue' && <QueueView />}
          {view === 'audit' && <AuditView />}
        </div>
      </main>
    </div>
  );
}
