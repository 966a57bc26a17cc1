/**
 * Confirm a config.revert: load the target revision and the current config, show exactly what restoring would
 * change (current -> target), and revert with baseRevision = the current revision, so a change made meanwhile by
 * someone else is never overwritten silently (4009: the dialog says so and shows the new difference).
 */
import { useState } from 'react';
import { ApiError } from '../../api.ts';
import { ConfirmDialog, ErrorBox, useToast } from '../../components/index.ts';
import { explainError, useRelayMutation, useRelayQuery } from '../../hooks.ts';
import { diffConfigs } from '../../../../shared/config-diff.ts';
import { ChangeList } from './ChangeList.tsx';

export function RestoreDialog({ revision, onClose }: { revision: number; onClose: () => void }) {
  const toast = useToast();
  const target = useRelayQuery('config.get', { revision }, { staleTime: Infinity });
  const current = useRelayQuery('config.get', {});
  const revert = useRelayMutation('config.revert');
  const [error, setError] = useState<unknown>(null);
  const changes = target.data && current.data ? diffConfigs(current.data.config, target.data.config) : null;
  const isCurrent = current.data?.revision === revision;
  const loadError = target.error ?? current.error;
  return (
    <ConfirmDialog
      open
      danger
      title={`Restore the configuration of revision ${revision}?`}
      confirmLabel={changes && changes.length === 0 ? 'Restore anyway' : 'Restore'}
      busy={revert.isPending}
      onCancel={onClose}
      onConfirm={() => {
        if (!current.data || isCurrent) return;
        setError(null);
        revert.mutate(
          { revision, baseRevision: current.data.revision },
          {
            onSuccess: (r) => {
              toast.show({ kind: 'success', message: `Restored revision ${revision}: now revision ${r.revision} (${r.changes.length} setting${r.changes.length === 1 ? '' : 's'} changed).` });
              onClose();
            },
            onError: (err) => {
              setError(err);
              if (err instanceof ApiError && err.code === 4009) void current.refetch();
            },
          },
        );
      }}
    >
      {loadError && <ErrorBox title="Could not load the revisions">{explainError(loadError)}</ErrorBox>}
      {!loadError && !changes && <p className="muted">Loading revision {revision} and the current configuration…</p>}
      {isCurrent && <p>Revision {revision} is the current configuration: there is nothing to restore.</p>}
      {changes && !isCurrent && (
        <>
          <p>
            This makes a new revision that equals revision {revision}. It takes effect at once. Compared with the current configuration (revision {current.data!.revision}), restoring
            changes:
          </p>
          <ChangeList changes={changes} empty="Nothing: the current configuration already equals that revision." />
        </>
      )}
      {error !== null && <ErrorBox title="Not restored">{explainError(error)}</ErrorBox>}
    </ConfirmDialog>
  );
}
