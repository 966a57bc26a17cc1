/**
 * The impact preview, shown before Apply: what this change alone would do to the traffic of the last hours.
 * policy.simulate replays the recorded traffic through a config and compares it with what was recorded at the time,
 * which also counts whatever changed since (an IP trusted an hour ago would show as "would pass" for any change).
 * So the traffic is replayed through the settings in effect now and through the changed ones, and the difference of
 * the two is shown (impact.ts): what this change newly rejects, and what it lets pass that the current settings reject.
 */
import type { Config } from '../../../../shared/config.ts';
import type { SimulationResult } from '../../../../shared/protocol.ts';
import { ErrorBox, fmtCount, fmtDateTime, fmtDuration, ruleLabel } from '../../components/index.ts';
import { useQuery } from '@tanstack/react-query';
import type { ApiError } from '../../api.ts';
import { explainError, profileQueryFn, useApi, useConnection } from '../../hooks.ts';
import { relayQueryKey, type RelayQueryKey } from '../../state/relayKey.ts';
import { compareSimulations, type Impact } from './impact.ts';

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

export interface ImpactPreviewProps {
  /** the config in effect (the revision the form is based on) */
  current: Config;
  /** the config Apply would send */
  config: Config;
  hours: number;
  onHours: (h: number) => void;
  enabled: boolean;
}

export function ImpactPreview({ current, config, hours, onHours, enabled }: ImpactPreviewProps) {
  const api = useApi();
  const conn = useConnection();
  const connected = conn?.status === 'connected';
  const profile = conn?.profileId ?? null;
  // both replays in one query, over the same window: the second ends where the first did (`until`), so both read the
  // same traffic; a cached replay of the current settings from a minute ago would credit the last minute's traffic to
  // the change. A relay older than `until` refuses it (-32602): then the second replay ends at its own "now" and the
  // result says how far apart the two ended. Keyed by the profile as every relay query is (one cache serves every
  // relay): another relay's replay of the same two configs is another relay's traffic.
  const q = useQuery<{ now: SimulationResult; after: SimulationResult }, ApiError, { now: SimulationResult; after: SimulationResult }, RelayQueryKey>({
    queryKey: relayQueryKey('policy.simulate', { now: { config: current, hours }, after: { config, hours } }, profile),
    queryFn: profileQueryFn(profile, async () => {
      const now = await api.call('policy.simulate', { config: current, hours });
      const after = await api.call('policy.simulate', { config, hours, until: now.to }).catch((err: unknown) => {
        if ((err as ApiError).code === -32602 && /until/.test((err as ApiError).message)) return api.call('policy.simulate', { config, hours });
        throw err;
      });
      return { now, after };
    }),
    enabled: enabled && connected,
    staleTime: 60_000,
    retry: 0,
  });
  const error = q.error;
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
      {enabled && !connected && !q.data && <p className="muted">Not connected: the preview needs the relay. It shows once the console is back.</p>}
      {enabled && connected && q.isPending && (
        <p className="muted" aria-busy="true">
          Replaying the recorded traffic through the current settings and through the changed ones…
        </p>
      )}
      {error && (
        <ErrorBox title="The preview could not be computed">
          {explainError(error)} You can still apply; the preview only reads history.
        </ErrorBox>
      )}
      {!error && q.data && <ImpactResult now={q.data.now} after={q.data.after} />}
    </section>
  );
}

const plural = (n: number, one: string, many = `${one}s`) => `${fmtCount(n)} ${n === 1 ? one : many}`;

function IpChips({ ips, pick, title }: { ips: Impact['rules'][number]['ips']; pick: 'more' | 'fewer'; title: string }) {
  const hit = ips.filter((i) => i[pick] > 0);
  if (!hit.length) return null;
  return (
    <>
      {hit.slice(0, 5).map((i) => (
        <span key={i.ip} className="ip-chip" title={`${fmtCount(i[pick])} ${title}`}>
          {i.ip} <span className="muted">{pick === 'more' ? '+' : '−'}{fmtCount(i[pick])}</span>
        </span>
      ))}
      {hit.length > 5 && <span className="muted">and {hit.length - 5} more</span>}
    </>
  );
}

function ImpactResult({ now, after }: { now: SimulationResult; after: SimulationResult }) {
  const r = compareSimulations(now, after);
  const nothing = after.replayed.events === 0;
  const skew = Math.abs(after.to - now.to);
  const ips = (list: string[]) => (list.length ? <> from {plural(list.length, 'IP')}</> : null);
  return (
    <div className="impact-result">
      <p className="impact-window">
        Replayed {fmtCount(after.replayed.events)} events from {fmtDateTime(after.from)} to {fmtDateTime(after.to)}: {fmtCount(after.replayed.connections)} connections,{' '}
        {fmtCount(after.replayed.mailAttempts)} MAIL FROM, {fmtCount(after.replayed.messages)} messages; once through the settings in effect now, once with this
        change. Only the difference is this change's doing.
      </p>
      {nothing ? (
        <p className="impact-summary">No traffic was recorded in this window, so there is nothing to compare. Try a longer window.</p>
      ) : (
        <p className={['impact-summary', r.more > 0 ? 'impact-bad' : 'impact-ok'].join(' ')} data-testid="impact-summary">
          {r.more > 0 ? (
            <>
              <strong>{fmtCount(r.more)} newly rejected</strong>
              {ips(r.moreIps)}
            </>
          ) : (
            <strong>Nothing newly rejected</strong>
          )}
          {r.fewer > 0 ? (
            <>
              ; {fmtCount(r.fewer)} that the current settings reject would pass{ips(r.fewerIps)}
            </>
          ) : (
            '; nothing that the current settings reject would pass'
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
                Rejected with current settings
              </th>
              <th scope="col" className="num">
                With this change
              </th>
              <th scope="col" className="num">
                Newly rejected
              </th>
              <th scope="col" className="num">
                Newly passing
              </th>
              <th scope="col" className="num">
                Monitor reports (now → with change)
              </th>
              <th scope="col">IPs affected</th>
            </tr>
          </thead>
          <tbody>
            {r.rules.map((x) => (
              <tr key={x.rule} className={x.more > 0 ? 'row-bad' : ''} data-rule={x.rule}>
                <th scope="row">
                  {ruleLabel(x.rule)} <span className="muted">({UNIT[x.unit]?.[1] ?? x.unit})</span>
                </th>
                <td className="num">{fmtCount(x.now)}</td>
                <td className="num">{fmtCount(x.after)}</td>
                <td className="num">{x.more ? <strong>{fmtCount(x.more)}</strong> : 0}</td>
                <td className="num">{fmtCount(x.fewer)}</td>
                <td className="num">
                  {x.monitoredNow === x.monitoredAfter ? fmtCount(x.monitoredAfter) : `${fmtCount(x.monitoredNow)} → ${fmtCount(x.monitoredAfter)}`}
                </td>
                <td className="ips">
                  <IpChips ips={x.ips} pick="more" title={`${UNIT[x.unit]?.[1] ?? x.unit} newly rejected`} />
                  <IpChips ips={x.ips} pick="fewer" title={`${UNIT[x.unit]?.[1] ?? x.unit} newly passing`} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {r.moreIps.length > 0 && (
        <p className="impact-ips">
          IPs this change would newly reject: <span className="mono">{r.moreIps.slice(0, 20).join(', ')}</span>
          {r.moreIps.length > 20 && ` and ${r.moreIps.length - 20} more`}
        </p>
      )}
      {(after.caveats.length > 0 || after.truncated || skew >= 1000) && (
        <ul className="impact-caveats">
          {skew >= 1000 && (
            <li>
              The two replays ended {fmtDuration(skew)} apart (the relay runs them one after the other): traffic in between is counted in one of them only, so
              the numbers can be off by that much traffic.
            </li>
          )}
          {after.truncated && <li>The window held more events than a replay reads; the oldest were skipped.</li>}
          {after.caveats.map((c) => (
            <li key={c}>{c}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
