/**
 * Clients: the relay's per-IP state (connections, messages and unknown recipients in the last hour, blocks, trust,
 * recent rejections), refreshed every few seconds while the view is visible. Actions: Unblock, Trust (with an
 * expiry; Undo in the toast), and "Everything from this IP" (Live traffic filtered on it).
 */
import { Fragment, useState } from 'react';
import type { ClientInfo } from '../../../shared/protocol.ts';
import type { Navigate } from '../App.tsx';
import {
  ACTIONS,
  Badge,
  Button,
  Checkbox,
  ConfirmDialog,
  EmptyState,
  ErrorBox,
  ReadOnlyNotice,
  RequireConnection,
  TableHead,
  TextField,
  ViewHeader,
  fmtSince,
  fmtCount,
  fmtDateTime,
  fmtDuration,
  ruleLabel,
  useToast,
} from '../components/index.ts';
import { explainError, useCanEdit, useProfileKey, useRelayMutation, useRelayQuery } from '../hooks.ts';
import { trustEffects, trustUndo, trustWarning, trustedMessage, type TrustReply } from '../state/trust.ts';
import { ExpiryPicker, type ExpiryValue } from './parts/ExpiryPicker.tsx';
import { expiryFor } from './parts/expiry.ts';
import { useNow, usePageVisible } from './parts/hooks.ts';
import { rejectionsSummary } from './parts/client-words.ts';
import './views.css';

const REFRESH_MS = 3000;

export function ClientsView({ navigate }: { navigate: Navigate }) {
  // a component of its own per server: nothing it holds (the filter, an open trust or unblock dialog about one client) carries over to another
  const profile = useProfileKey();
  return (
    <RequireConnection what="the client list">
      <Clients key={profile} navigate={navigate} />
    </RequireConnection>
  );
}

function Clients({ navigate }: { navigate: Navigate }) {
  const { why } = useCanEdit();
  const toast = useToast();
  const visible = usePageVisible();
  const now = useNow(5_000);
  const [ipFilter, setIpFilter] = useState('');
  const [blockedOnly, setBlockedOnly] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  const [trusting, setTrusting] = useState<ClientInfo | null>(null);
  const [unblocking, setUnblocking] = useState<ClientInfo | null>(null);
  const [error, setError] = useState<unknown>(null);
  const params = { limit: 500, ...(ipFilter.trim() ? { ip: ipFilter.trim() } : {}), ...(blockedOnly ? { blockedOnly: true } : {}) };
  const q = useRelayQuery('clients.list', params, { refetchInterval: visible ? REFRESH_MS : false, placeholderData: (prev) => prev });
  const unblock = useRelayMutation('clients.unblock', { invalidate: ['clients.list', 'audit.list'] });
  const untrust = useRelayMutation('groups.removeEntry');
  const restore = useRelayMutation('groups.addEntry');

  const doUnblock = (c: ClientInfo) => {
    setError(null);
    unblock.mutate(
      { ip: c.ip },
      {
        onSuccess: (r) => {
          setUnblocking(null);
          toast.show({ kind: r.unblocked ? 'success' : 'info', message: r.unblocked ? `Unblocked ${c.ip}: its next connection is judged afresh.` : `${c.ip} was not blocked any more.` });
        },
        onError: (err) => {
          setUnblocking(null);
          setError(err);
        },
      },
    );
  };

  const clients = q.data?.clients ?? [];
  const filterError = q.isError && ipFilter.trim() ? explainError(q.error) : null;

  return (
    <div className="rw-view clients-view">
      <ViewHeader
        title="Clients"
        subtitle={`Every address the relay has counted recently, most recently seen first. Refreshes every ${REFRESH_MS / 1000} s while this view is open.`}
      />
      <ReadOnlyNotice />
      <div className="toolbar">
        <TextField
          label="IP, CIDR or range"
          inline
          type="search"
          className="ip-filter"
          value={ipFilter}
          onChange={setIpFilter}
          placeholder="e.g. 203.0.113.0/24"
          error={filterError}
          spellCheck={false}
        />
        <Checkbox label="Blocked only" checked={blockedOnly} onChange={setBlockedOnly} />
        <span className="spacer" />
        {q.data && (
          <span className="count">
            {clients.length < q.data.total ? `${fmtCount(clients.length)} of ${fmtCount(q.data.total)}` : fmtCount(q.data.total)} client{q.data.total === 1 ? '' : 's'}
            {q.isFetching ? ' · refreshing' : ` · updated ${fmtSince(q.dataUpdatedAt, now)}`}
          </span>
        )}
      </div>
      {error !== null && <ErrorBox>{explainError(error)}</ErrorBox>}
      {q.isError && !ipFilter.trim() && <ErrorBox title="Could not load the clients">{explainError(q.error)}</ErrorBox>}
      {q.isPending && <p className="muted">Loading the clients…</p>}
      {q.data && clients.length === 0 && (
        <EmptyState title={ipFilter.trim() || blockedOnly ? 'No client matches' : 'No clients yet'}>
          <p>
            {ipFilter.trim() || blockedOnly
              ? 'Clear the filter to see every client.'
              : 'The relay lists an address once it connects. Point a mail client at the relay, or watch Live traffic.'}
          </p>
        </EmptyState>
      )}
      {clients.length > 0 && (
        <div className="table-wrap">
          <table className="table clients-table">
            <TableHead
              columns={[
                'IP',
                { label: 'Connections', num: true },
                { label: 'Messages / h', num: true, title: 'accepted messages in the last 60 minutes' },
                { label: 'Unknown rcpt / h', num: true, title: 'unknown recipients in the last 60 minutes' },
                { label: 'AUTH fails', num: true, title: 'failed AUTH attempts in the window' },
                'Status',
                'Last seen',
                'Recent rejections',
                ACTIONS,
              ]}
            />
            <tbody>
              {clients.map((c) => {
                const blocked = c.blockedUntil !== null && c.blockedUntil > now;
                const last = c.recentRejections[c.recentRejections.length - 1];
                const isOpen = open === c.ip;
                return (
                  <Fragment key={c.ip}>
                    <tr className={blocked ? 'row-bad' : ''} data-ip={c.ip}>
                      <th scope="row">
                        <span className="client-ip">{c.ip}</span>
                        <div>
                          <Button small variant="link" className="everything" onClick={() => navigate('live', { ip: c.ip })} title={`Open Live traffic filtered on ${c.ip}`}>
                            Everything from this IP
                          </Button>
                        </div>
                      </th>
                      <td className="num">{fmtCount(c.connections)}</td>
                      <td className="num">{fmtCount(c.messagesLastHour)}</td>
                      <td className="num">{fmtCount(c.unknownRecipientsLastHour)}</td>
                      <td className="num">{fmtCount(c.authFailuresInWindow)}</td>
                      <td className="client-status">
                        {blocked && (
                          <div title={`until ${fmtDateTime(c.blockedUntil)}${c.blockReason ? `: ${c.blockReason}` : ''}`}>
                            <Badge tone="bad">Blocked, {fmtDuration(c.blockedUntil! - now)} left</Badge>
                            {c.blockedRule && <div className="status-sub">{ruleLabel(c.blockedRule)}</div>}
                          </div>
                        )}
                        {c.trusted && (
                          <div title={c.trustedBy ? `entry ${c.trustedBy.address} in group "${c.trustedBy.group}"` : undefined} data-testid="client-trusted">
                            <Badge tone="ok">Trusted</Badge>
                            {c.trustedBy && (
                              <div className="status-sub">
                                group "{c.trustedBy.group}"{c.trustedBy.address !== c.ip ? ` (entry ${c.trustedBy.address})` : ''}, {c.trustedBy.expiresAt ? `until ${fmtDateTime(c.trustedBy.expiresAt)}` : 'no expiry'}
                              </div>
                            )}
                          </div>
                        )}
                        {!blocked && !c.trusted && <span className="faint">—</span>}
                      </td>
                      <td className="nowrap" title={fmtDateTime(c.lastSeen)}>
                        {fmtSince(c.lastSeen, now)}
                      </td>
                      <td className="rejections">
                        {last ? (
                          <button type="button" className="btn btn-link btn-small" aria-expanded={isOpen} onClick={() => setOpen(isOpen ? null : c.ip)}>
                            {rejectionsSummary(c.recentRejections)}
                          </button>
                        ) : (
                          <span className="faint">none</span>
                        )}
                      </td>
                      <td className="actions">
                        {blocked && (
                          <Button small onClick={() => setUnblocking(c)} disabledReason={why}>
                            Unblock
                          </Button>
                        )}
                        {!c.trusted && (
                          <Button small onClick={() => setTrusting(c)} disabledReason={why}>
                            Trust…
                          </Button>
                        )}
                      </td>
                    </tr>
                    {isOpen && (
                      <tr className="detail-row">
                        <td colSpan={9}>
                          {c.blockReason && (
                            <p>
                              <strong>Why blocked:</strong> {c.blockReason}
                            </p>
                          )}
                          <ul>
                            {[...c.recentRejections].reverse().map((r, i) => (
                              <li key={`${r.at}-${i}`}>
                                <span className="muted">{fmtDateTime(r.at)}</span> {ruleLabel(r.rule)}: <span className="mono">{r.code}</span> {r.text}
                                {r.enforced ? '' : ' (monitor mode: accepted)'}
                              </li>
                            ))}
                          </ul>
                        </td>
                      </tr>
                    )}
                  </Fragment>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {trusting && (
        <TrustDialog
          client={trusting}
          onClose={() => setTrusting(null)}
          onTrusted={(r, relays) => {
            setTrusting(null);
            const undo = trustUndo(r);
            toast.show({
              kind: r.alreadyTrusted ? 'info' : relays === false ? 'success' : 'warning',
              message: trustedMessage(trusting.ip, r, relays),
              undo: !undo ? undefined : undo.method === 'groups.addEntry' ? () => restore.mutateAsync(undo.params) : () => untrust.mutateAsync(undo.params),
              undoneMessage: undo?.method === 'groups.addEntry' ? `${r.entry.address}'s entry is back as it was.` : `${r.entry.address} is no longer trusted.`,
            });
          }}
        />
      )}
      <ConfirmDialog
        open={unblocking !== null}
        title={`Unblock ${unblocking?.ip ?? ''}?`}
        confirmLabel="Unblock"
        busy={unblock.isPending}
        onCancel={() => setUnblocking(null)}
        onConfirm={() => unblocking && doUnblock(unblocking)}
      >
        <p>{unblocking?.blockReason ?? 'The relay blocked this address.'}</p>
        <p>Unblocking clears the block and the counters that led to it. If the client keeps misbehaving it is blocked again; to exempt it from the limits, trust it instead.</p>
      </ConfirmDialog>
    </div>
  );
}

function TrustDialog({
  client,
  onClose,
  onTrusted,
}: {
  client: ClientInfo;
  onClose: () => void;
  /** `relays`: whether the group it joined may relay (relay.allowGroups), as the config said when the dialog opened */
  onTrusted: (r: TrustReply, relays: boolean | null) => void;
}) {
  const { why } = useCanEdit();
  const trust = useRelayMutation('clients.trust');
  const cfg = useRelayQuery('config.get', {});
  const [expiry, setExpiry] = useState<ExpiryValue>({ preset: '1d', date: '' });
  const [comment, setComment] = useState('');
  const exp = expiryFor(expiry.preset, expiry.date, Date.now());
  const effects = cfg.data ? trustEffects(cfg.data.config) : null;
  const noGroup = effects !== null && effects.group === null;
  // it was refused relaying: trusting it is what would let it relay
  const wasRelayRefused = client.recentRejections.some((r) => r.rule === 'relay.access');
  return (
    <ConfirmDialog
      open
      title={`Trust ${client.ip}?`}
      confirmLabel={effects?.relays && wasRelayRefused ? 'Trust and allow relaying' : 'Trust'}
      danger={effects?.relays && wasRelayRefused}
      busy={trust.isPending}
      onCancel={onClose}
      onConfirm={() => {
        if (!exp.ok || why || noGroup) return;
        trust.mutate({ ip: client.ip, comment: comment.trim() || null, expiresAt: exp.expiresAt }, { onSuccess: (r) => onTrusted(r, effects ? effects.group === r.group && effects.relays : null) });
      }}
    >
      <p data-testid="trust-effect">
        {effects ? trustWarning(client.ip, effects) : 'The address joins the first exempt group: it skips the per-IP limits.'} Any block and its counters are cleared from its
        next SMTP command; the change is audited.
      </p>
      {effects?.relays && wasRelayRefused && (
        <p className="trust-effect trust-effect-relay" data-testid="trust-relay-warning">
          <strong>{client.ip} was refused relaying recently.</strong> Trusting it lets it send mail through this relay to any domain; if the address is shared, compromised
          or an open proxy, spam goes out under this relay's name. For a person or an application, an SMTP login (AUTH) is the safer way.
        </p>
      )}
      {noGroup && <ErrorBox>No group is exempt from the limits, so there is nowhere to trust an address. Pick an exempt group in Security options first.</ErrorBox>}
      <div className="trust-options">
        <ExpiryPicker value={expiry} onChange={setExpiry} error={!exp.ok ? exp.error : null} why={why} label="Trust for" neverLabel="Forever" />
        <TextField label="Comment" value={comment} onChange={setComment} placeholder="e.g. sales mailing" maxLength={500} disabledReason={why} />
      </div>
      {trust.isError && <ErrorBox title="Not trusted">{explainError(trust.error)}</ErrorBox>}
    </ConfirmDialog>
  );
}
