/** Words for one event: the kind label and a one-line summary (rule, code and text for rejections). Pure. */
import type { RelayEvent } from '../../../shared/events.ts';

export function kindLabel(e: RelayEvent): string {
  if (e.kind === 'rejected') return e.enforced ? 'rejected' : 'would reject';
  if (e.kind === 'config-changed') return 'config';
  return e.kind;
}

/** a CSS class suffix for the kind badge */
export function kindClass(e: RelayEvent): string {
  if (e.kind === 'rejected') return e.enforced ? 'k-rejected' : 'k-monitor';
  return `k-${e.kind}`;
}

const list = (xs: string[]) => (xs.length <= 2 ? xs.join(', ') : `${xs.slice(0, 2).join(', ')} +${xs.length - 2}`);

export function summarize(e: RelayEvent): string {
  switch (e.kind) {
    case 'connect':
      return e.hostname ? `connected from ${e.hostname}` : 'connected (no reverse DNS name)';
    case 'disconnect':
      return e.messages !== undefined ? `disconnected after ${e.messages} message${e.messages === 1 ? '' : 's'}` : 'disconnected';
    case 'helo':
      return `HELO ${e.name}`;
    case 'auth':
      return `${e.success ? 'logged in' : 'login failed'} as ${e.user}${e.method ? ` (${e.method})` : ''}`;
    case 'mail':
      return `MAIL FROM <${e.from}>`;
    case 'rcpt':
      return `RCPT TO <${e.to}>${e.local ? '' : ' (relay)'}`;
    case 'accepted':
      return `accepted ${e.queueId}: <${e.from}> → ${list(e.to)} (${e.size} bytes)`;
    case 'rejected':
      return `${e.rule} · ${e.code} ${e.text}`;
    case 'delivered':
      return `delivered ${e.queueId} to ${list(e.to)} via ${e.host}${e.tls ? ' (TLS)' : ''}`;
    case 'deferred':
      return `deferred ${e.queueId}: ${e.reason}`;
    case 'bounced':
      return `bounced ${e.queueId}: ${e.reason}`;
    case 'config-changed':
      return `configuration revision ${e.revision} by ${e.by} (${e.source})`;
    case 'trusted':
      return `${e.address} added to "${e.group}" by ${e.by}`;
    default:
      return '';
  }
}
