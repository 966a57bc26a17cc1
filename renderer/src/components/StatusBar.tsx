/**
 * The connection status, always visible at the top: state, relay host, role, reconnect countdown, and the
 * message in words (what happened and what to do).
 */
import { useEffect, useState } from 'react';
import type { ConnectionStatus } from '../../../shared/console-api.ts';
import { useConnection } from '../hooks.ts';

const LABEL: Record<ConnectionStatus, string> = {
  disconnected: 'Not connected',
  connecting: 'Connecting',
  'fingerprint-unknown': 'Check the certificate',
  'fingerprint-mismatch': 'Certificate changed: stopped',
  authenticating: 'Logging in',
  connected: 'Connected',
  reconnecting: 'Reconnecting',
  'auth-failed': 'Token refused',
};

const TONE: Record<ConnectionStatus, 'ok' | 'warn' | 'bad' | 'muted'> = {
  disconnected: 'muted',
  connecting: 'warn',
  'fingerprint-unknown': 'warn',
  'fingerprint-mismatch': 'bad',
  authenticating: 'warn',
  connected: 'ok',
  reconnecting: 'warn',
  'auth-failed': 'bad',
};

function useCountdown(at: number | null): number | null {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (at === null) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [at]);
  return at === null ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

export function StatusBar({ onOpenServers }: { onOpenServers: () => void }) {
  const s = useConnection();
  const countdown = useCountdown(s?.status === 'reconnecting' ? s.retryAt : null);
  if (!s) return <div className="statusbar" role="status" data-status="loading">Loading…</div>;
  const needsUser = s.status === 'disconnected' || s.status === 'fingerprint-unknown' || s.status === 'fingerprint-mismatch' || s.status === 'auth-failed';
  // the core's message ends with "Retrying in N s (attempt M)." at the time it was made; show our live countdown instead
  const message = s.status === 'reconnecting' ? s.message.replace(/\s*Retrying in \d+ s \(attempt \d+\)\.\s*$/, '') : s.message;
  return (
    <div className={`statusbar statusbar-${TONE[s.status]}`} role="status" aria-live="polite" data-status={s.status}>
      <span className={`status-dot status-${TONE[s.status]}`} aria-hidden="true" />
      <strong className="status-label">{LABEL[s.status]}</strong>
      {(s.relay || s.profileName) && (
        <span className="status-host" title="relay">
          {s.relay?.hostname ?? s.profileName}
          {s.relay && s.profileName && s.profileName !== s.relay.hostname ? ` (${s.profileName})` : ''}
        </span>
      )}
      {s.status === 'connected' && s.role && (
        <span className={`status-role role-${s.role}`} title={s.role === 'viewer' ? 'A viewer token sees everything and changes nothing.' : 'An admin token may change the relay.'}>
          {s.tokenName && s.tokenName !== s.role ? `${s.tokenName} · ${s.role}` : s.role}
        </span>
      )}
      {countdown !== null && (
        <span className="status-countdown">
          retry in {countdown} s (attempt {s.attempt})
        </span>
      )}
      <span className="status-message" title={s.message}>
        {message}
      </span>
      {needsUser && (
        <button type="button" className="btn btn-small btn-link status-action" onClick={onOpenServers}>
          {s.status === 'disconnected' ? 'Connect…' : 'Open Servers'}
        </button>
      )}
    </div>
  );
}
