/**
 * Dashboard: accepted, rejected and delivered per second over the last 15 minutes (uPlot; stats.get for the history,
 * stats.tick to extend it), rejections per rule, top talkers, the queue (and whether mail is stuck in it: the oldest
 * message's age, the destinations down or deferring with their last error and next attempt) and the relay's counters.
 *
 * Every counter here is kept in the relay's memory and starts at zero when it starts. A relay restarted 3 minutes
 * ago has no "last 15 minutes" or "last hour" to tell about, so each card whose window reaches back before the start
 * says "since the relay started 3 min ago" instead (windowWords), and its empty text says where earlier traffic is.
 */
import { useEffect, useMemo, useState } from 'react';
import type { NotificationParams, Result, StatsPoint } from '../../../shared/protocol.ts';
import { Badge, Button, ErrorBox, RequireConnection, ViewHeader, fmtAgo, fmtBytes, fmtCount, ruleLabel, type Navigate } from '../components/index.ts';
import { TimeChart } from '../components/TimeChart.tsx';
import { explainError, useApi, useProfileKey, useRelayQuery } from '../hooks.ts';
import { useLatestStats } from './parts/hooks.ts';
import { destinationTitle, queueHealth, STATE_TONE } from './parts/queue-health.ts';

const WINDOW_MS = 15 * 60_000;
const HOUR_MS = 60 * 60_000;

/** "since the relay started 3 min ago" */
export function sinceStart(startedAt: number, now: number): string {
  const ago = fmtAgo(startedAt, now);
  return `since the relay started ${ago === 'now' ? 'just now' : ago}`;
}

/**
 * The words for a card's window ("in the last 15 minutes"), or, when the relay started within it (its counters begin
 * at its start, and know nothing of the traffic before), "since the relay started 3 min ago".
 */
export function windowWords(startedAt: number, now: number, windowMs: number, words: string): { text: string; partial: boolean } {
  return startedAt > now - windowMs ? { text: sinceStart(startedAt, now), partial: true } : { text: words, partial: false };
}

const EARLIER = 'The counters start at zero when the relay starts; earlier traffic is in Live traffic and the stored history.';
type Stats = NotificationParams<'stats.tick'>;

/** the per-second series: the history from stats.get, extended by every stats.tick */
function useStatsSeries(initial: Result<'stats.get'> | undefined): StatsPoint[] {
  const api = useApi();
  const [points, setPoints] = useState<StatsPoint[]>([]);
  useEffect(() => {
    if (initial) setPoints(initial.series.slice());
  }, [initial]);
  useEffect(
    () =>
      api.onStats((s) => {
        setPoints((prev) => {
          const last = prev[prev.length - 1];
          if (last && s.perSecond.at <= last.at) return prev;
          const next = prev.concat(s.perSecond);
          const cut = s.perSecond.at - WINDOW_MS;
          let i = 0;
          while (i < next.length && next[i]!.at < cut) i++;
          return i ? next.slice(i) : next;
        });
      }),
    [api],
  );
  return points;
}

function Kpi({ label, value, sub, tone, testid }: { label: string; value: string; sub?: string; tone?: 'ok' | 'bad'; testid?: string }) {
  return (
    <section className="card" data-testid={testid}>
      <h2>{label}</h2>
      <div className={`kpi${tone ? ` kpi-${tone}` : ''}`}>{value}</div>
      {sub && <div className="kpi-sub">{sub}</div>}
    </section>
  );
}

/**
 * The Queue card: how many messages wait, and, when mail is stuck, plainly why: the oldest message's age, how many
 * are deferred or wait for a free connection, the destinations that are down, deferring (with their last error) or
 * waiting, and their next attempt. A warning when a
 * destination is down or the oldest message has waited longer than 15 minutes.
 */
function QueueCard({ queue, now, navigate }: { queue: Stats['queue']; now: number; navigate?: Navigate }) {
  const h = queueHealth(queue, now);
  const shown = h.destinations.slice(0, 4);
  return (
    <section className={`card queue-card dash-wide${h.tone === 'warn' ? ' card-warn' : ''}`} data-testid="queue-size" data-tone={h.tone} aria-labelledby="queue-card-title">
      <div className="queue-card-head">
        <h2 id="queue-card-title">Queue</h2>
        <Button small variant="link" onClick={() => navigate?.('queue')}>
          Open the queue
        </Button>
      </div>
      <div className="queue-card-top">
        <div className="kpi">{fmtCount(queue.messages ?? queue.size)}</div>
        <div>
          {h.detailed && <div className={`queue-headline${h.tone === 'warn' ? ' warn' : ''}`}>{h.headline}</div>}
          <div className="kpi-sub">
            {[h.oldest, h.deferred, `${fmtCount(queue.activeDeliveries)} delivering now`, h.waitingForConnection].filter(Boolean).join(' · ')} ·{' '}
            {queue.acceptingMail ? 'accepting mail' : <Badge tone="bad">not accepting mail (disk)</Badge>}
          </div>
        </div>
      </div>
      {shown.length > 0 && (
        <ul className="queue-dests" data-testid="queue-destinations">
          {shown.map((d) => (
            <li key={d.destination} data-destination={d.destination}>
              <span className="queue-dest-name" title={destinationTitle(d.destination)}>
                <Badge tone={STATE_TONE[d.state]}>{d.state}</Badge> <strong>{d.label}</strong>
              </span>
              <span className="queue-dest-text">{d.text}</span>
              {d.lastError !== null && (
                <span className="queue-dest-error" title={d.lastError}>
                  {d.lastError}
                </span>
              )}
            </li>
          ))}
          {h.destinations.length > shown.length && <li className="faint">and {h.destinations.length - shown.length} more in the Queue view</li>}
        </ul>
      )}
    </section>
  );
}

function Dashboard({ navigate }: { navigate?: Navigate }) {
  const { query: q, latest } = useLatestStats();
  const points = useStatsSeries(q.data);
  const chart = useMemo(() => {
    const x = points.map((p) => p.at);
    return {
      x,
      series: [
        { label: 'accepted/s', values: points.map((p) => p.accepted), color: 'var(--chart-accepted)', fill: true },
        { label: 'rejected/s', values: points.map((p) => p.rejected), color: 'var(--chart-rejected)', fill: true },
        // (null: a relay older than these counts; the line has a gap rather than a false zero)
        { label: 'deferred/s', values: points.map((p) => p.deferred ?? null), color: 'var(--chart-deferred)' },
        { label: 'would reject/s (monitor)', values: points.map((p) => p.monitored), color: 'var(--chart-monitored)' },
        // drawn last, over the others: the drain is what an admin watches after an outage
        { label: 'delivered/s', values: points.map((p) => p.delivered ?? null), color: 'var(--chart-delivered)', width: 2.5 },
      ],
    };
  }, [points]);
  const now = latest?.at ?? Date.now();
  // a relay younger than 15 minutes: show what there is (at least a minute) rather than an empty chart
  const first = points[0]?.at ?? now;
  const xRange: [number, number] = [Math.max(now - WINDOW_MS, Math.min(first, now - 60_000)), now];

  if (q.isError) return <ErrorBox title="The dashboard could not load the relay's statistics">{explainError(q.error)}</ErrorBox>;
  if (!latest) return <p className="muted">Loading statistics…</p>;

  const s = latest;
  const byRule = Object.entries(s.rejectedByRule15m)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  const maxRule = byRule[0]?.[1] ?? 1;
  const sum15 = (k: 'accepted' | 'rejected' | 'monitored' | 'delivered') => points.reduce((n, p) => n + (p[k] ?? 0), 0);
  const w15 = windowWords(s.startedAt, now, WINDOW_MS, 'in the last 15 minutes');
  const w60 = windowWords(s.startedAt, now, HOUR_MS, 'in the last hour');
  const started = sinceStart(s.startedAt, now);
  // "12 in the last 15 min · 40 since the relay started 2 h ago", or one number when both are the same window
  const kpiSub = (k: 'accepted' | 'rejected', total: number) => (w15.partial ? `${fmtCount(total)} ${started}` : `${fmtCount(sum15(k))} in 15 min · ${fmtCount(total)} ${started}`);

  return (
    <div className="dash-grid" data-testid="dashboard">
      <Kpi label="Accepted / s" value={fmtCount(s.perSecond.accepted)} sub={kpiSub('accepted', s.totals.accepted)} tone="ok" testid="kpi-accepted" />
      <Kpi label="Rejected / s" value={fmtCount(s.perSecond.rejected)} sub={kpiSub('rejected', s.totals.rejected)} tone={s.perSecond.rejected ? 'bad' : undefined} testid="kpi-rejected" />
      <Kpi
        label="Delivered / s"
        value={s.perSecond.delivered === undefined ? '—' : fmtCount(s.perSecond.delivered)}
        sub={s.perSecond.delivered === undefined ? 'this relay does not count deliveries per second' : `${fmtCount(sum15('delivered'))} messages ${w15.partial ? started : 'in 15 min'}`}
        testid="kpi-delivered"
      />
      <Kpi label="Open SMTP connections" value={fmtCount(s.openConnections)} sub={`${fmtCount(s.totals.connections)} connections ${started}`} testid="kpi-connections" />
      <QueueCard queue={s.queue} now={now} navigate={navigate} />

      <section className="card dash-wide" aria-labelledby="chart-title">
        <div style={{ display: 'flex', justifyContent: 'space-between', alignItems: 'baseline', gap: '4px 16px', flexWrap: 'wrap' }}>
          <h2 id="chart-title">Messages per second {w15.partial ? started : 'in the last 15 minutes'}</h2>
          <div className="legend" aria-hidden="true">
            <span>
              <i style={{ background: 'var(--chart-accepted)' }} />
              accepted
            </span>
            <span>
              <i style={{ background: 'var(--chart-rejected)' }} />
              rejected
            </span>
            <span>
              <i style={{ background: 'var(--chart-delivered)' }} />
              delivered
            </span>
            <span>
              <i style={{ background: 'var(--chart-deferred)' }} />
              deferred
            </span>
            <span>
              <i style={{ background: 'var(--chart-monitored)' }} />
              would reject (monitor)
            </span>
          </div>
        </div>
        <TimeChart
          x={chart.x}
          series={chart.series}
          xRange={xRange}
          height={240}
          ariaLabel="Accepted, rejected, delivered and deferred messages per second over the last 15 minutes"
        />
      </section>

      <section className="card dash-half" aria-labelledby="rules-title" data-testid="rejections-by-rule">
        <h2 id="rules-title">Rejections per rule {w15.text}</h2>
        {byRule.length === 0 ? (
          <p className="muted">
            No rejections {w15.text}.{w15.partial ? ` ${EARLIER}` : ''}
          </p>
        ) : (
          <ul className="bars">
            {byRule.map(([rule, n]) => (
              <li key={rule} title={rule}>
                <span>{ruleLabel(rule)}</span>
                <span className="bar-track">
                  <span className="bar" style={{ display: 'block', width: `${Math.max(2, (100 * n) / maxRule)}%` }} />
                </span>
                <span className="num">{fmtCount(n)}</span>
              </li>
            ))}
          </ul>
        )}
        {Object.keys(s.totals.monitoredByRule).length > 0 && (
          <p className="faint" style={{ fontSize: 12, marginBottom: 0 }}>
            Monitor mode (would have rejected, {started}):{' '}
            {Object.entries(s.totals.monitoredByRule)
              .map(([r, n]) => `${ruleLabel(r)} ${fmtCount(n)}`)
              .join(' · ')}
          </p>
        )}
      </section>

      <section className="card dash-half" aria-labelledby="talkers-title" data-testid="top-talkers">
        <h2 id="talkers-title">Top talkers {w60.text}</h2>
        {s.topTalkers.length === 0 ? (
          <p className="muted">
            No client sent mail {w60.text}.{w60.partial ? ` ${EARLIER}` : ''}
          </p>
        ) : (
          <table className="table">
            <thead>
              <tr>
                <th>IP</th>
                <th className="num" title="messages in the last hour">Messages</th>
                <th className="num" title="SMTP connections open now">Open now</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {s.topTalkers.map((t) => (
                <tr key={t.ip}>
                  <td className="mono">{t.ip}</td>
                  <td className="num">{fmtCount(t.messagesLastHour)}</td>
                  <td className="num">{fmtCount(t.connections)}</td>
                  <td style={{ textAlign: 'right' }}>
                    <Button small variant="link" onClick={() => navigate?.('live', { ip: t.ip })}>
                      Live traffic
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <p className="faint dash-wide" style={{ fontSize: 12, margin: 0 }}>
        Relay up {fmtAgo(s.startedAt, s.at).replace(' ago', '')} · since the start: {fmtCount(s.totals.delivered)} {s.totals.delivered === 1 ? 'delivery' : 'deliveries'},{' '}
        <span title="each failed attempt of each destination of a message counts once: a message that waited through 5 attempts counts 5 times">
          {fmtCount(s.totals.deferred)} deferral{s.totals.deferred === 1 ? '' : 's'}
        </span>
        , {fmtCount(s.totals.bounced)} bounce{s.totals.bounced === 1 ? '' : 's'} · history {fmtCount(s.history.storedEvents)} event{s.history.storedEvents === 1 ? '' : 's'} ({fmtBytes(s.history.bytes)}) · {s.manage.sessions}{' '}
        console session{s.manage.sessions === 1 ? '' : 's'}
        {s.manage.droppedEvents > 0 ? ` · ${fmtCount(s.manage.droppedEvents)} events dropped for slow consoles` : ''} · config revision {s.configRevision}
      </p>
    </div>
  );
}

export function DashboardView({ navigate }: { navigate?: Navigate }) {
  // a component of its own per server: the per-second series it holds never carries over to another
  const profile = useProfileKey();
  return (
    <>
      <ViewHeader title="Dashboard" subtitle="What the relay accepts and refuses, second by second." />
      <RequireConnection what="the dashboard">
        <Dashboard key={profile} navigate={navigate} />
      </RequireConnection>
    </>
  );
}
