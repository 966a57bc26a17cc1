/**
 * Security options: one form mirroring SPEC section 1's table. Each rule's mode and numbers, validated inline with
 * the shared ConfigSchema; Revert drops local edits; "Review and apply" shows what changes and the impact on the
 * recorded traffic (policy.simulate) before config.update {baseRevision}. A stale base (4009) opens the conflict
 * dialog: what the other admin changed, and re-applying one's edits on top of the newer revision.
 * The whole config is sent at once, so a change is applied entirely or not at all.
 *
 * The form's state lives in security/draft.ts, per server profile, not in this component: a connection that drops
 * for a few seconds (a relay restart), a visit to another view or to another relay never loses unsaved edits. While
 * the connection is down the form stays on screen, read-only, saying so; after the reconnect the relay's revision is
 * compared with the one the edits are based on, and a change made meanwhile gets the conflict handling.
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import {
  Badge,
  Button,
  Dialog,
  ErrorBox,
  ReadOnlyNotice,
  RequireConnection,
  ViewHeader,
  fmtDateTime,
  useToast,
} from '../components/index.ts';
import { ApiError } from '../api.ts';
import { explainError, useApi, useCanEdit, useConnection, useRelayMutation, useRelayQuery } from '../hooks.ts';
import { ConflictDialog, type Snapshot } from './security/ConflictDialog.tsx';
import { adoption, securityDrafts } from './security/draft.ts';
import { ImpactPreview } from './security/ImpactPreview.tsx';
import { RuleCard } from './security/RuleCard.tsx';
import { staleReview } from './security/stale.ts';
import { SECTIONS, buildCandidate, editedFields, formChanges, formFromConfig, mapIssues, type FormValues } from './security/model.ts';
import './views.css';

export function SecurityView(_props: Record<string, unknown>) {
  const conn = useConnection();
  const profile = conn?.profileId ?? null;
  // a form with a draft stays on screen while the connection is down (read-only, saying so): unmounting it would
  // hide the user's edits, and the view would seem to have dropped them
  if (conn?.status !== 'connected' && !(profile && securityDrafts.get(profile))) {
    return (
      <RequireConnection what="the security configuration">
        <></>
      </RequireConnection>
    );
  }
  return <SecurityForm key={profile ?? ''} profile={profile ?? ''} />;
}

interface Conflict {
  latest: Snapshot;
  refused: boolean;
}

function SecurityForm({ profile }: { profile: string }) {
  const api = useApi();
  const toast = useToast();
  const conn = useConnection();
  const connected = conn?.status === 'connected';
  const { why } = useCanEdit();
  // keyed by profile (as every relay query is): another relay's config never becomes the base of this one's form
  const q = useRelayQuery('config.get', {});
  const update = useRelayMutation('config.update');

  const root = useRef<HTMLDivElement>(null);
  const kept = useRef(securityDrafts.get(profile)).current;
  /** the revision the form is based on: pinned while there are local edits */
  const [base, setBase] = useState<Snapshot | null>(kept?.base ?? null);
  const [form, setForm] = useState<FormValues>(kept?.form ?? {});
  const [loadedAt, setLoadedAt] = useState(kept?.loadedAt ?? 0);
  const [reviewing, setReviewing] = useState(false);
  const [hours, setHours] = useState(24);
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const [applyError, setApplyError] = useState<unknown>(null);
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [conflictError, setConflictError] = useState<unknown>(null);

  const edited = useMemo(() => (base ? editedFields(base.config, form) : []), [base, form]);
  const dirty = edited.length > 0;

  // the draft outlives this component (a disconnect unmounts nothing now, but a view switch does)
  useEffect(() => {
    if (base) securityDrafts.set(profile, { base, form, loadedAt });
  }, [profile, base, form, loadedAt]);

  // adopt the relay's config when nothing is edited (or when it already holds exactly the edits: an Apply whose
  // answer the dropped connection lost); with other edits, keep the base and say that it moved on
  useEffect(() => {
    const d = q.data;
    if (!d) return;
    const latest = { revision: d.revision, config: d.config };
    if (adoption(base ? { base, form, loadedAt } : undefined, latest) === 'adopt') {
      setBase(latest);
      setForm(formFromConfig(d.config));
      setLoadedAt(q.dataUpdatedAt);
      setServerErrors({});
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q.data, base, dirty]);

  const candidate = useMemo(() => (base ? buildCandidate(base.config, form) : null), [base, form]);
  const changes = useMemo(() => (base && candidate ? formChanges(base.config, candidate.config) : []), [base, candidate]);
  const errors = { ...serverErrors, ...(candidate?.fieldErrors ?? {}) };
  const errorCount = Object.keys(candidate?.fieldErrors ?? {}).length + (candidate?.otherErrors.length ?? 0);
  const newer = q.data && base && q.data.revision > base.revision ? q.data : null;
  // the Review dialog's view of a stale base: the relay's values now, and the impact from them (security/stale.ts)
  const stale = useMemo(() => (newer && base && reviewing ? staleReview(base.config, form, newer.config) : null), [newer, base, form, reviewing]);

  if (q.isError && !base) return <ErrorBox title="Could not load the configuration">{explainError(q.error)}</ErrorBox>;
  if (!base || !candidate) return <p className="muted">Loading the configuration…</p>;

  const groupNames = Object.keys(base.config.groups);
  const set = (id: string, v: string | string[]) => {
    setForm((f) => ({ ...f, [id]: v }));
    if (serverErrors[id]) setServerErrors(({ [id]: _, ...rest }) => rest);
  };
  const revert = () => {
    setForm(formFromConfig(base.config));
    setServerErrors({});
    setApplyError(null);
  };

  const openConflict = async (refused: boolean) => {
    setConflictError(null);
    try {
      const latest = await api.call('config.get', {});
      setConflict({ latest: { revision: latest.revision, config: latest.config }, refused });
    } catch (err) {
      setConflictError(err);
    }
  };

  const apply = () => {
    if (!candidate.ok) return;
    setApplyError(null);
    update.mutate(
      { baseRevision: base.revision, config: candidate.config },
      {
        onSuccess: (r) => {
          setBase({ revision: r.revision, config: candidate.config });
          setForm(formFromConfig(candidate.config));
          setLoadedAt(Date.now());
          setReviewing(false);
          toast.show({ kind: 'success', message: `Applied: ${r.changes.length} setting${r.changes.length === 1 ? '' : 's'} changed (revision ${r.revision}). In effect now.` });
        },
        onError: (err) => {
          if (err instanceof ApiError && err.code === 4009) {
            setReviewing(false);
            void openConflict(true);
            return;
          }
          if (err instanceof ApiError && (err.code === -32602 || err.code === 4022)) {
            const issues = (err.data as { issues?: { path: (string | number)[]; message: string; code: string }[] } | undefined)?.issues ?? [];
            const mapped = mapIssues(issues, ['config']);
            setServerErrors(mapped.fieldErrors);
          }
          setApplyError(err);
        },
      },
    );
  };

  const applyReason = why ?? (!dirty ? 'Nothing to apply: change a setting first.' : !candidate.ok ? 'Fix the settings marked in red first.' : null);

  /** "3 settings to fix": bring the first one into view and put the cursor in it */
  const showFirstError = () => {
    const first = root.current?.querySelector<HTMLElement>('.field-invalid, .error-box');
    if (!first) return;
    first.scrollIntoView({ block: 'center', behavior: 'smooth' });
    first.querySelector<HTMLElement>('input:not([disabled])')?.focus({ preventScroll: true });
  };

  return (
    <div className="rw-view security-view" ref={root}>
      <ViewHeader
        title="Security options"
        subtitle={
          <>
            Revision {base.revision}. Every rule can <strong>enforce</strong> (reject), <strong>monitor</strong> (accept, but log "would have rejected") or be{' '}
            <strong>off</strong>. Changes take effect at once, for open connections too.
          </>
        }
      />
      <ReadOnlyNotice />

      {!connected && (
        <div className="notice notice-warn" role="status" data-testid="security-offline">
          <span>
            <strong>Not connected to the relay.</strong>{' '}
            {dirty
              ? `Your ${edited.length} change${edited.length === 1 ? ' is' : 's are'} kept here, not applied. Review and apply once the console is connected again`
              : 'This is the configuration as last loaded; it can be edited once the console is connected again'}{' '}
            (revision {base.revision}
            {loadedAt ? `, loaded ${fmtDateTime(loadedAt)}` : ''}). {conn?.message}
          </span>
        </div>
      )}

      {newer && dirty && (
        <div className="notice notice-warn" role="status" data-testid="config-moved">
          The configuration changed on the relay (now revision {newer.revision}) while you were editing revision {base.revision}.
          <Button small onClick={() => void openConflict(false)}>
            See what changed…
          </Button>
        </div>
      )}
      {conflictError !== null && <ErrorBox title="Could not load the newer configuration">{explainError(conflictError)}</ErrorBox>}
      {candidate.otherErrors.length > 0 && (
        <ErrorBox title="The configuration has problems outside this form">
          <ul>
            {candidate.otherErrors.map((e) => (
              <li key={e}>{e}</li>
            ))}
          </ul>
          Fix them in config.json on the relay (then send it SIGHUP) before applying here.
        </ErrorBox>
      )}

      <nav className="section-nav" aria-label="Sections">
        {SECTIONS.map((s) => (
          <a key={s.id} href={`#sec-${s.id}`}>
            {s.title}
          </a>
        ))}
      </nav>

      {SECTIONS.map((s) => (
        <section key={s.id} id={`sec-${s.id}`} className="form-section" aria-labelledby={`sec-${s.id}-title`}>
          <h2 id={`sec-${s.id}-title`}>{s.title}</h2>
          <p className="section-intro">{s.intro}</p>
          {s.rules.map((r) => (
            <RuleCard
              key={r.key}
              rule={r}
              form={form}
              base={base.config}
              relayNow={newer && dirty ? { revision: newer.revision, config: newer.config } : null}
              edited={new Set(edited)}
              errors={errors}
              why={why}
              groupNames={groupNames}
              onChange={set}
            />
          ))}
        </section>
      ))}

      <div className={['apply-bar', dirty ? 'apply-bar-dirty' : ''].join(' ')} role="region" aria-label="Apply changes">
        <div className="apply-status" aria-live="polite">
          {!dirty && <span className="muted">No changes. Showing revision {base.revision}.</span>}
          {/* (the banner at the top is out of sight for an admin scrolled down to a rule: this bar is always seen) */}
          {newer && dirty && (
            <Badge tone="warn" title={`Your edits are based on revision ${base.revision}; the relay is at revision ${newer.revision}`}>
              the relay changed meanwhile (revision {newer.revision})
            </Badge>
          )}
          {dirty && (
            <>
              <Badge tone={errorCount ? 'bad' : 'warn'}>
                {changes.length || edited.length} change{(changes.length || edited.length) === 1 ? '' : 's'} not applied
              </Badge>
              {!connected && <span className="muted">kept here while the console is not connected</span>}
              {errorCount > 0 && (
                <Button small variant="link" className="apply-errors" onClick={showFirstError} title="Show the first setting marked in red" data-testid="show-errors">
                  {errorCount} setting{errorCount === 1 ? '' : 's'} to fix
                </Button>
              )}
              {changes.length > 0 && (
                <span className="apply-summary">
                  {changes
                    .slice(0, 3)
                    .map((c) => `${c.rule}${c.label ? ` ${c.label.toLowerCase()}` : ''}: ${c.before} → ${c.after}`)
                    .join('; ')}
                  {changes.length > 3 ? `; and ${changes.length - 3} more` : ''}
                </span>
              )}
            </>
          )}
        </div>
        <div className="apply-actions">
          <Button onClick={revert} disabledReason={why ?? (!dirty ? 'Nothing to revert: no local changes.' : null)}>
            Revert
          </Button>
          <Button variant="primary" onClick={() => setReviewing(true)} disabledReason={applyReason} data-testid="review-apply">
            Review and apply…
          </Button>
        </div>
      </div>

      <Dialog
        open={reviewing}
        wide
        title="Apply these changes?"
        onClose={() => setReviewing(false)}
        footer={
          <>
            <Button onClick={() => setReviewing(false)}>Keep editing</Button>
            <Button variant="primary" busy={update.isPending} onClick={apply} disabledReason={applyReason} data-testid="apply">
              {/* (stale: Apply first shows the other change, a tryout read "Apply ... now" beside "Apply is refused" as a contradiction) */}
              {stale && newer ? `Apply ${changes.length} change${changes.length === 1 ? '' : 's'}… (the other change first)` : `Apply ${changes.length} change${changes.length === 1 ? '' : 's'} now`}
            </Button>
          </>
        }
      >
        {stale && newer && (
          <div className="notice notice-warn review-stale" role="alert" data-testid="review-stale">
            <span>
              <strong>Someone else changed the configuration:</strong> the relay is at revision {newer.revision}, your edits started from revision {base.revision}.
              "Now" below is what the relay does now. Apply first shows you what the other change did; you then re-apply your edits on top of it.
            </span>
            <Button
              small
              onClick={() => {
                setReviewing(false);
                void openConflict(false);
              }}
            >
              See what changed…
            </Button>
          </div>
        )}
        <p>
          Based on revision {base.revision}
          {q.dataUpdatedAt ? `, loaded ${fmtDateTime(q.dataUpdatedAt)}` : ''}. The relay uses the new settings at once, for open connections too.
        </p>
        <table className="table review-table">
          <thead>
            <tr>
              <th scope="col">Setting</th>
              <th scope="col">Now</th>
              <th scope="col">After Apply</th>
            </tr>
          </thead>
          <tbody>
            {(stale?.rows ?? changes.map((c) => ({ ...c, startedFrom: null }))).map((c) => (
              <tr key={c.id} data-change={c.id}>
                <th scope="row">
                  {c.rule}
                  {c.label ? <span className="muted">: {c.label.toLowerCase()}</span> : null}
                </th>
                <td>
                  {c.before}
                  {c.startedFrom !== null && <span className="muted"> (your edit started from {c.startedFrom})</span>}
                </td>
                <td>
                  <strong>{c.after}</strong>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {stale && stale.theirs.length > 0 && (
          <p data-testid="review-theirs">
            Also changed on the relay since revision {base.revision}, and kept:{' '}
            {stale.theirs.map((c) => `${c.rule}${c.label ? ` (${c.label.toLowerCase()})` : ''}: ${c.before} → ${c.after}`).join('; ')}.
          </p>
        )}
        {/* (measured from an old revision, the impact credited the change with what the relay's newer settings let through already) */}
        <ImpactPreview
          current={stale?.current ?? base.config}
          config={stale?.after ?? candidate.config}
          hours={hours}
          onHours={setHours}
          enabled={reviewing && candidate.ok}
        />
        {applyError !== null && <ApplyErrorBox err={applyError} />}
      </Dialog>

      {conflict && (
        <ConflictDialog
          open
          base={base}
          latest={conflict.latest}
          form={form}
          refused={conflict.refused}
          onClose={() => setConflict(null)}
          onDiscard={(latest) => {
            setBase(latest);
            setLoadedAt(Date.now());
            setForm(formFromConfig(latest.config));
            setServerErrors({});
            setApplyError(null);
            setConflict(null);
          }}
          onReapply={(next, latest) => {
            setBase(latest);
            setLoadedAt(Date.now());
            setForm(next);
            setServerErrors({});
            setApplyError(null);
            setConflict(null);
            setReviewing(true);
          }}
        />
      )}
    </div>
  );
}

/**
 * Why Apply did not go through. A connection that dropped (or a relay that did not answer in time) before the relay
 * confirmed leaves it unknown whether the change was applied: say so rather than "Not applied", and what will tell.
 */
function ApplyErrorBox({ err }: { err: unknown }) {
  if (err instanceof ApiError && (err.code === 'closed' || err.code === 'timeout')) {
    return (
      <ErrorBox title="Not known whether it was applied">
        {err.code === 'closed' ? 'The connection to the relay dropped' : 'The relay did not answer in time'} before it confirmed the change. Your changes are kept
        here. Once the relay answers again this form shows its current revision: if your changes are in it they were applied (the form then says "No changes");
        if not, apply them again.
      </ErrorBox>
    );
  }
  return <ErrorBox title="Not applied">{explainError(err)}</ErrorBox>;
}
