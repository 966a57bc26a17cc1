/**
 * Someone else changed the configuration after this form was loaded (a 4009 on Apply, or a config.changed while
 * editing). Show who changed what since the revision the form is based on, what the user changed, where both touched
 * the same setting, and let the user re-apply their edits on top of the newer revision, or drop them.
 */
import type { Config } from '../../../../shared/config.ts';
import { Badge, Button, Dialog, ErrorBox, fmtDateTime } from '../../components/index.ts';
import { explainError, useRelayQuery } from '../../hooks.ts';
import { ChangeList } from '../parts/ChangeList.tsx';
import { diffConfigs } from '../../../../shared/config-diff.ts';
import { FIELDS, formChanges, buildCandidate, rebase, ruleOfField, type FormValues } from './model.ts';

export interface Snapshot {
  revision: number;
  config: Config;
}

export interface ConflictDialogProps {
  open: boolean;
  base: Snapshot;
  latest: Snapshot;
  form: FormValues;
  /** Apply was refused with 4009 (as opposed to a change noticed while editing) */
  refused: boolean;
  onReapply: (form: FormValues, latest: Snapshot) => void;
  onDiscard: (latest: Snapshot) => void;
  onClose: () => void;
}

export function ConflictDialog({ open, base, latest, form, refused, onReapply, onDiscard, onClose }: ConflictDialogProps) {
  const history = useRelayQuery('config.history', { limit: 50 }, { enabled: open });
  const theirs = diffConfigs(base.config, latest.config);
  const mine = formChanges(base.config, buildCandidate(base.config, form).config);
  const r = rebase(base.config, form, latest.config);
  const revisions = (history.data?.revisions ?? []).filter((x) => x.revision > base.revision && x.revision <= latest.revision);
  const label = (id: string) => {
    const rule = ruleOfField(id);
    const f = FIELDS.find((x) => x.id === id);
    return rule && f && rule.fields.length > 1 ? `${rule.title}: ${f.label.toLowerCase()}` : (rule?.title ?? id);
  };
  return (
    <Dialog
      open={open}
      wide
      tone="alert"
      title={refused ? 'Not applied: someone else changed the configuration' : 'The configuration changed on the relay'}
      onClose={onClose}
      footer={
        <>
          <Button onClick={() => onDiscard(latest)}>Discard my changes, load theirs</Button>
          <Button variant="primary" onClick={() => onReapply(r.form, latest)} data-testid="reapply">
            Re-apply my {mine.length === 1 ? 'change' : `${mine.length} changes`} on top…
          </Button>
        </>
      }
    >
      <p>
        Your form is based on revision <strong>{base.revision}</strong>; the relay is now at revision <strong>{latest.revision}</strong>.
        {refused ? ' Nothing of yours was applied.' : ' Your edits are not applied yet.'} Re-applying puts your changes on top of the newer revision; you will see the
        impact again before anything is applied.
      </p>

      <h3>What changed on the relay</h3>
      {history.isError && <ErrorBox>{explainError(history.error)}</ErrorBox>}
      {revisions.length > 0 && (
        <ul className="revision-list">
          {revisions.map((x) => (
            <li key={x.revision}>
              Revision {x.revision}: <strong>{x.by}</strong> {x.remoteIp ? `from ${x.remoteIp} ` : ''}at {fmtDateTime(x.at)} <span className="muted">({x.source})</span>
            </li>
          ))}
        </ul>
      )}
      <ChangeList changes={theirs} empty="The configuration is the same as the one you loaded (only the revision moved on)." />

      <h3>Your changes</h3>
      {mine.length === 0 ? (
        <p className="muted">You have no changes.</p>
      ) : (
        <ul className="mine-list">
          {mine.map((c) => (
            <li key={c.id}>
              {c.rule}
              {c.label ? `: ${c.label.toLowerCase()}` : ''}: {c.before} → <strong>{c.after}</strong>
            </li>
          ))}
        </ul>
      )}

      {r.conflicts.length > 0 && (
        <>
          <h3>
            <Badge tone="warn">Both changed</Badge> the same settings
          </h3>
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Setting</th>
                <th scope="col">When you loaded it</th>
                <th scope="col">Theirs (now)</th>
                <th scope="col">Yours (will win if you re-apply)</th>
              </tr>
            </thead>
            <tbody>
              {r.conflicts.map((c) => (
                <tr key={c.id} data-conflict={c.id}>
                  <th scope="row">{label(c.id)}</th>
                  <td>{c.base}</td>
                  <td>{c.theirs}</td>
                  <td>
                    <strong>{c.mine}</strong>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </Dialog>
  );
}
