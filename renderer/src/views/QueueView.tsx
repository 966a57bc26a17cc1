/**
 * Queue: messages the relay acknowledged and has not delivered yet (oldest first), with their attempts, next try,
 * last error and destinations. Retry now; Delete (confirmed; optionally returned to the sender as a bounce). A message
 * being delivered is not cut: its delete (or return) is pending until that attempt ends, and the reply, the toast and
 * the row say so. Above the list, the destinations the relay reports (stats.queue.destinations: down or deferring,
 * last error, next attempt), each with "Retry <destination> now", a filter by destination, and "Retry all now": one
 * queue.retry {all: true} (confirmed first), whose answer the toast gives in numbers.
 */
import { useEffect, useState } from 'react';
import type { QueueItem } from '../../../shared/protocol.ts';
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
  SelectField,
  TableHead,
  ViewHeader,
  fmtAgo,
  fmtBytes,
  fmtCount,
  fmtDateTime,
  fmtSince,
  useToast,
} from '../components/index.ts';
import { ApiError } from '../api.ts';
import { explainError, useCanEdit, useProfileKey, useRelayMutation, useRelayQuery } from '../hooks.ts';
import { useLatestStats, useNow, usePageVisible } from './parts/hooks.ts';
import { destinationLabel, destinationRetryIdle, destinationState, destinationTitle, destinationWhen, dueWords, retryAllConfirm, retryAllDoneText, STATE_TONE } from './parts/queue-health.ts';
import { doneText, pendingText, RETURN_NOT_STORED } from './parts/queue-words.ts';
import './views.css';

const PAGE = 100;
const INVALIDATE = ['queue.list', 'audit.list', 'stats.get'] as const;

/**
 * queue.delete's own refusals (4009: the other kind of removal is pending already; -32603: it could not be done, or not
 * made durable, and what that means) say it in the relay's words.
 */
function explainDeleteError(err: unknown): string {
  if (err instanceof ApiError && (err.code === 4009 || err.code === -32603) && err.message) return err.message.charAt(0).toUpperCase() + err.message.slice(1);
  return explainError(err);
}

export function QueueView(_props: Record<string, unknown>) {
  // a component of its own per server: nothing it holds (the page, an open delete dialog) carries over to another
  const profile = useProfileKey();
  return (
    <RequireConnection what="the queue">
      <Queue key={profile} />
    </RequireConnection>
  );
}

function Queue() {
  const { why } = useCanEdit();
  const toast = useToast();
  const visible = usePageVisible();
  const now = useNow(5_000);
  const [offset, setOffset] = useState(0);
  const [deleting, setDeleting] = useState<QueueItem | null>(null);
  const [bounce, setBounce] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // '' = every destination
  const [destination, setDestination] = useState('');
  // "Retry all now" asked: null = every message, else that destination's (the dialog is open while set)
  const [retryingAll, setRetryingAll] = useState<{ destination: string | null; count: number } | null>(null);
  // the queue's figures as the relay last sent them (each second)
  const stats = useLatestStats().latest?.queue ?? null;
  const q = useRelayQuery(
    'queue.list',
    destination ? { limit: PAGE, offset, destination } : { limit: PAGE, offset },
    { refetchInterval: visible ? 5_000 : false, placeholderData: (prev) => prev },
  );
  const retry = useRelayMutation('queue.retry', { invalidate: [...INVALIDATE] });
  const retryAll = useRelayMutation('queue.retry', { invalidate: [...INVALIDATE] });
  const del = useRelayMutation('queue.delete', { invalidate: [...INVALIDATE] });
  const dests = stats?.destinations ?? null;
  // the whole queue, whatever the filter shows (the relay's summary; the list's own total without a filter)
  const queued = stats?.messages ?? (destination ? null : (q.data?.total ?? null));

  const doRetryAll = () => {
    if (!retryingAll) return;
    const asked = retryingAll;
    setError(null);
    retryAll.mutate(asked.destination === null ? { all: true } : { all: true, destination: asked.destination }, {
      onSuccess: (r) => {
        setRetryingAll(null);
        const n = 'scheduled' in r ? r : null;
        // a relay older than the bulk form answers {ok} to nothing it understood: it refuses {all} with -32602 instead
        // (info, not success, when a destination is down: most of its messages wait for the answer of one)
        toast.show({ kind: n?.down?.length ? 'info' : 'success', message: n ? retryAllDoneText(n, asked.destination) : 'The relay is retrying the queue now.', key: 'queue-retry-all' });
      },
      onError: (err) => {
        setRetryingAll(null);
        setError(explainError(err));
      },
    });
  };

  const doRetry = (item: QueueItem) => {
    setError(null);
    retry.mutate(
      { id: item.id },
      {
        onSuccess: () => toast.show({ kind: 'success', message: `Retrying ${item.id} now. Its outcome shows in Live traffic.` }),
        onError: (err) => setError(explainError(err)),
      },
    );
  };
  const doDelete = () => {
    if (!deleting) return;
    const item = deleting;
    setError(null);
    del.mutate(
      { id: item.id, bounce },
      {
        onSuccess: (r) => {
          setDeleting(null);
          // pending: the relay is delivering it right now and does not cut that attempt (relays before `pending` leave it out)
          // (a return already waiting, asked again, is still waiting; anything else pending is being delivered)
          const waiting = bounce && item.removal === 'bounce' && item.status !== 'delivering';
          if (r.pending) toast.show({ kind: 'info', message: `${item.id}: ${pendingText(bounce ? 'bounce' : 'delete', waiting ? item : { status: 'delivering', lastError: null })}` });
          else toast.show({ kind: 'success', message: doneText(item, bounce, r.returned) });
        },
        onError: (err) => {
          setDeleting(null);
          setError(explainDeleteError(err));
        },
      },
    );
  };

  const items = q.data?.items ?? [];
  const total = q.data?.total ?? 0;
  // a page emptied by deletions: step back
  const emptyPage = q.data !== undefined && items.length === 0 && offset > 0;
  useEffect(() => {
    if (emptyPage) setOffset((o) => Math.max(0, o - PAGE));
  }, [emptyPage]);
  const canBounce = deleting !== null && deleting.kind === 'message' && deleting.from !== '';

  return (
    <div className="rw-view queue-view">
      <ViewHeader title="Queue" subtitle="Messages the relay accepted and has not delivered yet, oldest first. Temporary failures are retried with growing delays." />
      <ReadOnlyNotice />
      {dests !== null && dests.length > 0 && (
        <section className="queue-dest-panel" aria-labelledby="queue-dests-title" data-testid="queue-destination-list">
          <h2 id="queue-dests-title">Destinations</h2>
          <div className="table-wrap">
            <table className="table queue-dest-table">
              <TableHead columns={['Destination', { label: 'Messages', num: true }, 'State', 'Last error', 'Next attempt', ACTIONS]} />
              <tbody>
                {dests.map((d) => (
                  <tr key={d.destination} data-destination={d.destination}>
                    <th scope="row" title={destinationTitle(d.destination)}>
                      {destinationLabel(d.destination)}
                    </th>
                    <td className="num">{fmtCount(d.messages)}</td>
                    <td>
                      <Badge
                        tone={STATE_TONE[destinationState(d)]}
                        title={d.down ? 'Its last attempt could not reach a server: the relay probes it with one connection at a time until it answers.' : undefined}
                      >
                        {destinationState(d)}
                      </Badge>
                    </td>
                    <td title={d.lastError ?? undefined}>
                      <div className="queue-error">{d.lastError ?? <span className="faint">—</span>}</div>
                    </td>
                    <td
                      className="nowrap"
                      title={
                        [
                          d.nextAttemptAt === null ? null : fmtDateTime(d.nextAttemptAt),
                          d.connections === undefined ? null : `${fmtCount(d.connections)} delivery connection${d.connections === 1 ? '' : 's'} open to it now`,
                          (d.waitingForConnection ?? 0) > 0 ? `${fmtCount(d.waitingForConnection!)} due, waiting for a free connection (every one in use, or its own limit reached)` : null,
                        ]
                          .filter((x) => x !== null)
                          .join('; ') || undefined
                      }
                    >
                      {destinationWhen(d, Math.max(now, Date.now()))}
                    </td>
                    <td className="actions">
                      <Button
                        small
                        onClick={() => setRetryingAll({ destination: d.destination, count: d.messages })}
                        disabledReason={why ?? destinationRetryIdle(d)}
                        busy={retryAll.isPending && retryAll.variables !== undefined && 'destination' in retryAll.variables && retryAll.variables.destination === d.destination}
                      >
                        Retry {destinationLabel(d.destination)} now
                      </Button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
      <div className="toolbar">
        {q.data && (
          <span className="count">
            {fmtCount(total)} message{total === 1 ? '' : 's'} {destination ? `for ${destinationLabel(destination)}` : 'queued'}
            {q.isFetching ? ' · refreshing' : ` · updated ${fmtSince(q.dataUpdatedAt, now)}`}
          </span>
        )}
        <span className="spacer" />
        {dests !== null && (dests.length > 0 || destination !== '') && (
          <SelectField
            inline
            label="Destination"
            className="queue-dest-filter"
            value={destination}
            onChange={(v) => {
              setDestination(v);
              setOffset(0);
            }}
            options={[
              { value: '', label: 'All destinations' },
              ...dests.map((d) => ({ value: d.destination, label: `${destinationLabel(d.destination)} (${fmtCount(d.messages)})` })),
              // the one chosen, after its last message left (or it left the top 10): still shown as chosen
              ...(destination !== '' && !dests.some((d) => d.destination === destination) ? [{ value: destination, label: destinationLabel(destination) }] : []),
            ]}
          />
        )}
        <Button
          variant="primary"
          data-testid="retry-all"
          // with a destination chosen in the filter, the messages shown: that destination's (the tryout's admin read
          // "Retry all now" beside a filtered list as "retry these")
          onClick={() => setRetryingAll(destination ? { destination, count: total } : { destination: null, count: queued ?? total })}
          disabledReason={why ?? ((destination ? total : queued) === 0 ? (destination ? 'No message waits for this destination.' : 'The queue is empty.') : null)}
          busy={retryAll.isPending && retryAll.variables !== undefined && (destination ? 'destination' in retryAll.variables && retryAll.variables.destination === destination : !('destination' in retryAll.variables))}
        >
          {destination
            ? `Retry these now${total > 0 ? ` (${fmtCount(total)})` : ''}`
            : `Retry all now${queued !== null && queued > 0 ? ` (${fmtCount(queued)})` : ''}`}
        </Button>
      </div>
      {error !== null && <ErrorBox>{error}</ErrorBox>}
      {q.isError && <ErrorBox title="Could not load the queue">{explainError(q.error)}</ErrorBox>}
      {q.isPending && <p className="muted">Loading the queue…</p>}
      {q.data && total === 0 && (
        <EmptyState title="The queue is empty">
          <p>Every accepted message has been delivered or bounced. Messages appear here while they wait for delivery or a retry.</p>
        </EmptyState>
      )}
      {items.length > 0 && (
        <div className="table-wrap">
          <table className="table queue-table">
            <TableHead columns={['Queue id', 'From', 'To', { label: 'Size', num: true }, { label: 'Attempts', num: true }, 'Next attempt', 'Last error', ACTIONS]} />
            <tbody>
              {items.map((m) => (
                <tr key={m.id} data-queue-id={m.id}>
                  <th scope="row">
                    <span className="mono">{m.id}</span>
                    {m.kind === 'dsn' && (
                      <>
                        {' '}
                        <Badge tone="info" title="a delivery status notification (bounce) the relay made">
                          bounce
                        </Badge>
                      </>
                    )}
                    <div className="faint" title={fmtDateTime(m.receivedAt)}>
                      received {fmtSince(m.receivedAt, now)}
                    </div>
                  </th>
                  <td title={m.from || 'null sender <>'}>
                    <div className="addr-list">{m.from || <span className="faint">&lt;&gt;</span>}</div>
                  </td>
                  <td title={[...m.to, ...m.done.map((d) => `${d.to} (${d.status})`)].join(', ')}>
                    <div className="addr-list">
                      {m.to[0] ?? <span className="faint">—</span>}
                      {m.to.length > 1 && <span className="muted"> +{m.to.length - 1}</span>}
                    </div>
                    {m.done.length > 0 && <div className="faint">{m.done.length} done</div>}
                    {m.destinations && m.destinations.length > 0 && (
                      <div className="faint queue-row-dests" title={m.destinations.map(destinationTitle).join('; ')}>
                        via {m.destinations.map(destinationLabel).join(', ')}
                      </div>
                    )}
                  </td>
                  <td className="num" title={`${fmtCount(m.size)} bytes`}>
                    {fmtBytes(m.size)}
                  </td>
                  <td className="num">{fmtCount(m.attempts)}</td>
                  <td className="nowrap" title={fmtDateTime(m.nextAttemptAt)}>
                    <Badge tone={m.status === 'deferred' ? 'warn' : m.status === 'delivering' ? 'info' : 'muted'}>{m.status}</Badge>
                    {m.removal && (
                      <>
                        {' '}
                        <Badge tone="warn" title={pendingText(m.removal, m)}>
                          {m.removal === 'bounce' ? 'returning' : 'deleting'}
                        </Badge>
                      </>
                    )}
                    <div>
                      {m.status === 'delivering'
                        ? 'delivering now'
                        : m.removal === 'bounce'
                          ? `return ${RETURN_NOT_STORED.test(m.lastError ?? '') ? 'tried again' : 'due'} ${fmtAgo(m.nextAttemptAt, now)}`
                          : dueWords(m.nextAttemptAt, now)}
                    </div>
                  </td>
                  <td title={m.lastError ?? undefined}>
                    <div className="queue-error">{m.lastError ?? <span className="faint">—</span>}</div>
                  </td>
                  <td className="actions">
                    <Button
                      small
                      title="Try to deliver it now"
                      onClick={() => doRetry(m)}
                      disabledReason={why ?? (m.status === 'delivering' ? 'A delivery attempt is running right now.' : m.removal ? pendingText(m.removal, m) : null)}
                      busy={retry.isPending && retry.variables !== undefined && 'id' in retry.variables && retry.variables.id === m.id}
                    >
                      Retry
                    </Button>
                    <Button
                      small
                      variant="danger"
                      onClick={() => {
                        setBounce(false);
                        setDeleting(m);
                      }}
                      disabledReason={why ?? (m.removal && m.status === 'delivering' ? pendingText(m.removal, m) : null)}
                    >
                      Delete…
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {total > PAGE && (
        <div className="pager">
          <span>
            {fmtCount(offset + 1)}–{fmtCount(Math.min(offset + PAGE, total))} of {fmtCount(total)}
          </span>
          <Button small onClick={() => setOffset(Math.max(0, offset - PAGE))} disabledReason={offset === 0 ? 'This is the first page.' : null}>
            Previous
          </Button>
          <Button small onClick={() => setOffset(offset + PAGE)} disabledReason={offset + PAGE >= total ? 'This is the last page.' : null}>
            Next
          </Button>
        </div>
      )}
      <ConfirmDialog
        open={retryingAll !== null}
        title={retryingAll ? retryAllConfirm(retryingAll.count, retryingAll.destination).title : ''}
        confirmLabel={retryingAll ? retryAllConfirm(retryingAll.count, retryingAll.destination).confirmLabel : 'Retry'}
        busy={retryAll.isPending}
        onCancel={() => setRetryingAll(null)}
        onConfirm={doRetryAll}
      >
        {retryingAll && retryAllConfirm(retryingAll.count, retryingAll.destination).body.map((line) => <p key={line}>{line}</p>)}
      </ConfirmDialog>
      <ConfirmDialog
        open={deleting !== null}
        danger
        title={`Delete ${deleting?.id ?? ''}?`}
        confirmLabel={bounce ? 'Delete and bounce' : 'Delete'}
        busy={del.isPending}
        onCancel={() => setDeleting(null)}
        onConfirm={doDelete}
      >
        {deleting && (
          <>
            <p>
              From <span className="mono">{deleting.from || '<>'}</span> to <span className="mono">{deleting.to.join(', ') || '—'}</span>, {fmtBytes(deleting.size)}, {deleting.attempts} attempt
              {deleting.attempts === 1 ? '' : 's'}.
            </p>
            <p>
              <strong>The message is gone for good</strong>: the relay will not deliver it to the {deleting.to.length} recipient{deleting.to.length === 1 ? '' : 's'} still waiting.
            </p>
            {deleting.status === 'delivering' && (
              <p>
                It was being delivered when the list was loaded. An attempt under way is not cut: recipients it reaches still get the message, and it leaves the
                queue when the attempt ends.
              </p>
            )}
            <Checkbox
              label="Tell the sender: return it as a bounce (delivery status notification)"
              checked={bounce}
              onChange={setBounce}
              disabledReason={canBounce ? null : deleting.kind === 'dsn' ? 'This is a bounce itself; bounces are never bounced.' : 'The sender is empty (<>), so there is no one to return it to.'}
            />
          </>
        )}
      </ConfirmDialog>
    </div>
  );
}
