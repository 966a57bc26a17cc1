/**
 * The impact preview: policy.simulate replays the recorded traffic of the last hours through the candidate config
 * and says, per rule, what would newly be rejected (or pass), and which IPs would be hit. Shown before Apply.
 */
import type { Config } from '../../../../shared/config.ts';
import type { SimulationResult } from '../../../../shared/protocol.ts';
import { ErrorBox, fmtCount, fmtDateTime, ruleLabel } from '../../components/index.ts';
import { explainError, useRelayQuery } from '../../hooks.ts';

export const PREVIEW_HOURS = [
  { hours: 1, label: 'last hour' },
  { hours: 24, label: 'last 24 hours' },
  { hours: 168, label: 'last 7 days' },
] as const;

const UNIT: Record<string, [string, string]> = {
  message: ['message', 'messages'],
  connection: ['connection', 'connections'],
  recipient: ['recipient', 'recipients'],
  session: ['session', 'sessions'],
};
const units = (n: number, unit: string) => `${fmtCount(n)} ${(UNIT[unit] ?? [unit, unit])[n === 1 ? 0 : 1]}`;

export function ImpactPreview({ config, hours, onHours, enabled }: { config: Config; hours: number; onHours: (h: number) => void; enabled: boolean }) {
  const q = useRelayQuery('policy.simulate', { config, hours }, { enabled, staleTime: 60_000, retry: 0 });
  return (
    <section className="impact" aria-labelledby="impact-title" data-testid="impact-preview">
      <div className="impact-head">
        <h3 id="impact-title">Impact on recorded traffic</h3>
        <div className="segmented" role="radiogroup" aria-label="Replay window">
          {PREVIEW_HOURS.map((p) => (
            <label key={p.hours} className={['segment', hours === p.hours ? 'segment-on' : ''].filter(Boolean).join(' ')}>
              <input type="radio" name="impact-hours" checked={hours === p.hours} onChange={() => onHours(p.hours)} />
              <span>{p.label}</span>
            </label>
          ))}
        </div>
      </div>
      {!enabled && <p className="muted">Fix the fields marked in red to see the impact.</p>}
      {enabled && q.isPending && <p className="muted" aria-busy="true">Replaying the recorded traffic…</p>}
      {q.isError && (
        <ErrorBox title="The preview could not be computed">
          {explainError(q.error)} You can still apply; the preview only reads history.
        </ErrorBox>
      )}
      {q.data && <ImpactResult r={q.data} />}
    </section>
  );
}

function ImpactResult({ r }: { r: SimulationResult }) {
  const newlyRejected = r.rules.reduce((n, x) => n + x.newlyRejected, 0);
  const newlyPassed = r.rules.reduce((n, x) => n + x.newlyPassed, 0);
  const nothing = r.replayed.events === 0;
  return (
    <div className="impact-result">
      <p className="impact-window">
        Replayed {fmtCount(r.replayed.events)} events from {fmtDateTime(r.from)} to {fmtDateTime(r.to)}: {fmtCount(r.replayed.connections)} connections,{' '}
        {fmtCount(r.replayed.mailAttempts)} MAIL FROM, {fmtCount(r.replayed.messages)} messages.
      </p>
      {nothing ? (
        <p className="impact-summary">No traffic was recorded in this window, so there is nothing to compare. Try a longer window.</p>
      ) : (
        <p className={['impact-summary', newlyRejected > 0 ? 'impact-bad' : 'impact-ok'].join(' ')} data-testid="impact-summary">
          {newlyRejected > 0 ? (
            <>
              <strong>{fmtCount(newlyRejected)} newly rejected</strong> from {fmtCount(r.newlyRejectedIps.length)} IP{r.newlyRejectedIps.length === 1 ? '' : 's'}
            </>
          ) : (
            <strong>Nothing newly rejected</strong>
          )}
          {newlyPassed > 0 && (
            <>
              ; {fmtCount(newlyPassed)} that were rejected would pass (from {fmtCount(r.newlyPassedIps.length)} IP{r.newlyPassedIps.length === 1 ? '' : 's'})
            </>
          )}
          .
        </p>
      )}
      {r.rules.length > 0 && (
        <table className="table impact-table">
          <thead>
            <tr>
              <th scope="col">Rule</th>
              <th scope="col" className="num">
                Rejected now
              </th>
              <th scope="col" className="num">
                With the change
              </th>
              <th scope="col" className="num">
                Newly rejected
              </th>
              <th scope="col" className="num">
                Newly passing
              </th>
              <th scope="col" className="num">
                Monitored only
              </th>
              <th scope="col">IPs hit</th>
            </tr>
          </thead>
          <tbody>
            {r.rules.map((x) => (
              <tr key={x.rule} className={x.newlyRejected > 0 ? 'row-bad' : ''}>
                <th scope="row">
                  {ruleLabel(x.rule)} <span className="muted">({UNIT[x.unit]?.[1] ?? x.unit})</span>
                </th>
                <td className="num">{fmtCount(x.before)}</td>
                <td className="num">{fmtCount(x.after)}</td>
                <td className="num">{x.newlyRejected ? <strong>{fmtCount(x.newlyRejected)}</strong> : 0}</td>
                <td className="num">{fmtCount(x.newlyPassed)}</td>
                <td className="num">{fmtCount(x.monitored)}</td>
                <td className="ips">
                  {x.ips
                    .filter((i) => i.newlyRejected > 0)
                    .slice(0, 5)
                    .map((i) => (
                      <span key={i.ip} className="ip-chip" title={units(i.newlyRejected, x.unit) + ' newly rejected'}>
                        {i.ip} <span className="muted">×{fmtCount(i.newlyRejected)}</span>
                      </span>
                    ))}
                  {x.ips.filter((i) => i.newlyRejected > 0).length > 5 && <span className="muted">and {x.ips.filter((i) => i.newlyRejected > 0).length - 5} more</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {r.newlyRejectedIps.length > 0 && (
        <p className="impact-ips">
          IPs that would be newly rejected: <span className="mono">{r.newlyRejectedIps.slice(0, 20).join(', ')}</span>
          {r.newlyRejectedIps.length > 20 && ` and ${r.newlyRejectedIps.length - 20} more`}
        </p>
      )}
      {(r.caveats.length > 0 || r.truncated) && (
        <ul className="impact-caveats">
          {r.truncated && <li>The window held more events than a replay reads; the oldest were skipped.</li>}
          {r.caveats.map((c) => (
            <li key={c}>{c}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
