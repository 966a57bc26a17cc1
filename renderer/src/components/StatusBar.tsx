/**
 * The connection status, always visible at the top: state, relay host, role, reconnect countdown, and the
 * message in words (what happened and what to do). One line: what matters comes first, the whole message is its
 * title, and the Servers page shows it in full.
 */
import type { ConnectionState, ConnectionStatus } from '../../../shared/console-api.ts';
import { countdownWords, isStopped, useConnection, useSecondsUntil } from '../hooks.ts';
import { RetryNowButton } from './Layout.tsx';

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

/**
 * The status bar's one line. The certificate messages begin with a 64-character fingerprint, which pushes what to do
 * out of sight: there, a short sentence (the Servers page shows the certificate and the full words).
 */
export function statusLine(s: ConnectionState): string {
  if (s.status === 'fingerprint-unknown') return 'First connection: compare the certificate fingerprint with the one the relay printed, then accept it.';
  if (s.status === 'fingerprint-mismatch') return "The relay's certificate changed: nothing was sent. This can be an attack; see the Servers page.";
  return s.message;
}

/** `onServers`: the Servers view is what the user looks at (its "Open Servers" is then hidden). */
export function StatusBar({ onOpenServers, onServers }: { onOpenServers: () => void; onServers: boolean }) {
  const s = useConnection();
  const countdown = useSecondsUntil(s?.status === 'reconnecting' ? s.retryAt : null);
  if (!s) return <div className="statusbar" role="status" data-status="loading">Loading…</div>;
  const stopped = isStopped(s);
  const needsUser = s.status === 'disconnected' || s.status === 'fingerprint-unknown' || s.status === 'fingerprint-mismatch' || s.status === 'auth-failed';
  const tone = stopped ? 'bad' : TONE[s.status];
  return (
    <div className={`statusbar statusbar-${tone}`} role="status" aria-live="polite" data-status={s.status} data-stopped={stopped || undefined}>
      <span className={`status-dot status-${tone}`} aria-hidden="true" />
      <strong className="status-label">{stopped ? 'Stopped' : LABEL[s.status]}</strong>
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
          retry in {countdownWords(countdown)} (attempt {s.attempt})
        </span>
      )}
      <span className="status-message" title={s.message}>
        {statusLine(s)}
      </span>
      {s.status === 'reconnecting' && s.profileId && <RetryNowButton profileId={s.profileId} variant="link" small className="status-action" />}
      {/* on the Servers page, what to do is right below */}
      {needsUser && !onServers && (
        <button type="button" className="btn btn-small btn-link status-action" onClick={onOpenServers}>
          {s.status === 'disconnected' && !stopped ? 'Connect…' : 'Open Servers'}
        </button>
      )}
    </div>
  );
}
