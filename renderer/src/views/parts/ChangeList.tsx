/** A config diff as a table a person can read: what, before, after. */
import type { ConfigChange } from '../../../../shared/protocol.ts';
import { describeChanges } from '../security/diff.ts';

export function ChangeList({ changes, empty = 'No configuration change.', caption }: { changes: readonly ConfigChange[]; empty?: string; caption?: string }) {
  if (changes.length === 0) return <p className="muted">{empty}</p>;
  const lines = describeChanges(changes);
  return (
    <table className="table change-list">
      {caption && <caption>{caption}</caption>}
      <thead>
        <tr>
          <th scope="col">Setting</th>
          <th scope="col">Before</th>
          <th scope="col">After</th>
        </tr>
      </thead>
      <tbody>
        {lines.map((l, i) => (
          <tr key={`${l.path}-${i}`} className={`change-${l.op}`}>
            <th scope="row" title={l.path}>
              {l.key}
              {l.op !== 'change' && <span className={`change-op change-op-${l.op}`}>{l.op === 'add' ? 'added' : 'removed'}</span>}
            </th>
            <td className="change-before">{l.op === 'add' ? <span className="muted">—</span> : l.before}</td>
            <td className="change-after">{l.op === 'remove' ? <span className="muted">—</span> : l.after}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
