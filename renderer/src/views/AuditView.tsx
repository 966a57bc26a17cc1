/**
 * Audit log: every admin action (who, from where, when, what, and the config diff it made), newest first, in pages;
 * and the config revisions (including hand edits picked up on SIGHUP). Any revision can be restored (config.revert),
 * after a confirmation that shows what restoring would change.
 */
import { useState } from 'react';
import type { AuditEntry, RevisionInfo } from '../../../shared/protocol.ts';
import { Badge, Button, EmptyState, ErrorBox, ReadOnlyNotice, RequireConnection, ViewHeader, fmtDateTime, fmtSince } from '../components/index.ts';
import { explainError, useCanEdit, useProfileKey, useRelayQuery } from '../hooks.ts';
import { ChangeList } from './parts/ChangeList.tsx';
import { RestoreDialog } from './parts/RestoreDialog.tsx';
import { useNow } from './parts/hooks.ts';
import './views.css';

const PAGE = 50;

export function AuditView(_props: Record<string, unknown>) {
  // a component of its own per server: nothing it holds (the page, an open restore dialog) carries over to another
  const profile = useProfileKey();
  return (
    <RequireConnection what="the audit log">
      <Audit key={profile} />
    </RequireConnection>
  );
}

type Tab = 'actions' | 'revisions';

function Audit() {
  const [tab, setTab] = useState<Tab>('actions');
  const [restore, setRestore] = useState<number | null>(null);
  return (
    <div className="rw-view audit-view">
      <ViewHeader title="Audit log" subtitle="Who changed what, from where and when. Restore puts the configuration back as it was at a revision (as a new revision)." />
      <ReadOnlyNotice />
      <div className="tabs" role="tablist">
        <button type="button" role="tab" className="tab" aria-selected={tab === 'actions'} onClick={() => setTab('actions')}>
          Admin actions
        </button>
        <button type="button" role="tab" className="tab" aria-selected={tab === 'revisions'} onClick={() => setTab('revisions')}>
          Configuration revisions
        </button>
      </div>
      {tab === 'actions' ? <Actions onRestore={setRestore} /> : <Revisions onRestore={setRestore} />}
      {restore !== null && <RestoreDialog revision={restore} onClose={() => setRestore(null)} />}
    </div>
  );
}

/** Pages by cursor: the cursors of the pages before this one, so "Newer" goes back. */
function usePager() {
  const [stack, setStack] = useState<(number | undefined)[]>([]);
  const [cursor, setCursor] = useState<number | undefined>(undefined);
  return {
    cursor,
    page: stack.length + 1,
    older: (next: number) => {
      setStack((s) => [...s, cursor]);
      setCursor(next);
    },
    newer: () => {
      setCursor(stack[stack.length - 1]);
      setStack((s) => s.slice(0, -1));
    },
    first: () => {
      setStack([]);
      setCursor(undefined);
    },
  };
}

const PARAM_HIDE = new Set(['config', 'baseRevision']);
/** ISO instants, shown as local time (fmtDateTime leaves a string that is not one as it is) */
const DATE_PARAMS = new Set(['expiresAt', 'addedAt']);

function paramsText(e: AuditEntry): string {
  const bits = Object.entries(e.params)
    .filter(([k, v]) => !PARAM_HIDE.has(k) && v !== undefined && v !== null)
    .map(([k, v]) => `${k}: ${typeof v !== 'string' ? JSON.stringify(v) : DATE_PARAMS.has(k) ? fmtDateTime(v) : v}`);
  return bits.join(' · ');
}

const METHOD_WORDS: Record<string, string> = {
  'config.update': 'changed the configuration',
  'config.revert': 'restored a revision',
  'groups.addEntry': 'added a group entry',
  'groups.removeEntry': 'removed a group entry',
  'clients.trust': 'trusted an IP',
  'clients.unblock': 'unblocked an IP',
  'queue.retry': 'retried a queued message',
  'queue.delete': 'deleted a queued message',
  'tokens.create': 'created a token',
  'tokens.revoke': 'revoked a token',
};

function Actions({ onRestore }: { onRestore: (rev: number) => void }) {
  const { why } = useCanEdit();
  const now = useNow(30_000);
  const pager = usePager();
  const q = useRelayQuery('audit.list', { limit: PAGE, ...(pager.cursor !== undefined ? { beforeSeq: pager.cursor } : {}) }, { placeholderData: (prev) => prev });
  const current = useRelayQuery('config.get', {}).data?.revision;
  const entries = q.data?.entries ?? [];
  if (q.isError) return <ErrorBox title="Could not load the audit log">{explainError(q.error)}</ErrorBox>;
  if (q.isPending) return <p className="muted">Loading the audit log…</p>;
  if (entries.length === 0 && pager.page === 1)
    return (
      <EmptyState title="No admin actions yet">
        <p>Every change made with an admin token (configuration, groups, trust, unblock, queue, tokens) is written here with who, from where and what changed.</p>
      </EmptyState>
    );
  const last = entries[entries.length - 1];
  return (
    <>
      <ul className="audit-list">
        {entries.map((e) => (
          <li key={e.seq} className={['audit-entry', e.ok ? '' : 'audit-failed'].join(' ')} data-seq={e.seq} data-method={e.method}>
            <div className="audit-head">
              <div className="audit-what">
                <span className="who">{e.by}</span>
                <Badge tone={e.role === 'admin' ? 'info' : 'muted'}>{e.role}</Badge>
                <span>{METHOD_WORDS[e.method] ?? e.method}</span>
                <code className="audit-method">{e.method}</code>
                {e.remoteIp && <span className="muted">from {e.remoteIp}</span>}
                <span className="when" title={e.time}>
                  {fmtDateTime(e.at)} ({fmtSince(e.at, now)})
                </span>
              </div>
              {!e.ok && <Badge tone="bad">failed</Badge>}
              {e.revision !== undefined && <span className="muted">made revision {e.revision}</span>}
              {e.revision !== undefined && (
                <Button small onClick={() => onRestore(e.revision!)} disabledReason={why ?? (e.revision === current ? 'This is the current configuration.' : null)}>
                  Restore revision {e.revision}…
                </Button>
              )}
            </div>
            {paramsText(e) && <div className="audit-params">{paramsText(e)}</div>}
            {!e.ok && e.error && (
              <div className="audit-params">
                Refused ({e.error.code}): {e.error.message}
              </div>
            )}
            {e.changes && e.changes.length > 0 && <ChangeList changes={e.changes} />}
          </li>
        ))}
      </ul>
      <div className="pager">
        <span>Page {pager.page}</span>
        <Button small onClick={pager.first} disabledReason={pager.page === 1 ? 'This is the newest page.' : null}>
          Newest
        </Button>
        <Button small onClick={pager.newer} disabledReason={pager.page === 1 ? 'This is the newest page.' : null}>
          Newer
        </Button>
        <Button small onClick={() => last && pager.older(last.seq)} disabledReason={entries.length < PAGE || !last ? 'There is nothing older.' : null}>
          Older
        </Button>
      </div>
    </>
  );
}

function Revisions({ onRestore }: { onRestore: (rev: number) => void }) {
  const { why } = useCanEdit();
  const now = useNow(30_000);
  const pager = usePager();
  const q = useRelayQuery('config.history', { limit: PAGE, ...(pager.cursor !== undefined ? { beforeRevision: pager.cursor } : {}) }, { placeholderData: (prev) => prev });
  if (q.isError) return <ErrorBox title="Could not load the revisions">{explainError(q.error)}</ErrorBox>;
  if (q.isPending) return <p className="muted">Loading the revisions…</p>;
  const revs: RevisionInfo[] = q.data.revisions;
  const last = revs[revs.length - 1];
  return (
    <>
      <ul className="audit-list">
        {revs.map((r) => (
          <li key={r.revision} className="audit-entry" data-revision={r.revision}>
            <div className="audit-head">
              <div className="audit-what">
                <strong>Revision {r.revision}</strong>
                {r.revision === q.data.current && <Badge tone="ok">current</Badge>}
                <span className="who">{r.by}</span>
                <code className="audit-method">{r.source}</code>
                {r.remoteIp && <span className="muted">from {r.remoteIp}</span>}
                <span className="when">
                  {fmtDateTime(r.at)} ({fmtSince(r.at, now)})
                </span>
              </div>
              {r.revision !== q.data.current && (
                <Button small onClick={() => onRestore(r.revision)} disabledReason={why}>
                  Restore…
                </Button>
              )}
            </div>
            <ChangeList changes={r.changes} empty={r.source === 'start' ? 'The configuration the relay started with.' : 'No setting changed.'} />
          </li>
        ))}
      </ul>
      <div className="pager">
        <span>Page {pager.page}</span>
        <Button small onClick={pager.newer} disabledReason={pager.page === 1 ? 'This is the newest page.' : null}>
          Newer
        </Button>
        <Button small onClick={() => last && pager.older(last.revision)} disabledReason={revs.length < PAGE || !last ? 'There is nothing older.' : null}>
          Older
        </Button>
      </div>
    </>
  );
}
