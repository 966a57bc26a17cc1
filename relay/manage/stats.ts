/**
 * Counters for stats.get and stats.tick: totals since start, a per-second series of the last 15 minutes, rejections
 * per rule, and the queue at a glance (its summary(), which the queue keeps cheap). Fed by the bus (one cheap listener:
 * a few integer increments per event); the second boundaries are the tick timer's, so the series is right under a fake
 * clock too.
 *
 * The series counts deliveries and deferrals in messages: the queue reports an attempt's outcome per destination and
 * reason (one `delivered` or `deferred` event each), so a second's count is of the distinct queue ids among them (an
 * attempt's deferrals are emitted together, in one second: one message is one deferral however many recipients and
 * destinations it has).
 */
import type { RelayEvent } from '../../shared/events.ts';
import type { QueueSummary, Stats, StatsPoint } from '../../shared/protocol.ts';
import type { Anvil } from '../clients/anvil.ts';

const SERIES = 900;

export interface StatsSources {
  anvil: Anvil;
  queue: { size: number; acceptingMail: boolean; activeDeliveries?: number; summary(): QueueSummary };
  history: { storedEvents: number; oldestAt(): number | null; bytes(): number } | null;
  manage: () => { sessions: number; subscriptions: number; droppedEvents: number };
  lastEventId: () => number;
  configRevision: () => number;
  now: () => number;
}

interface Bucket {
  accepted: number;
  rejected: number;
  monitored: number;
  connections: number;
  events: number;
  rules: Map<string, number> | null;
  /** queue ids with a delivered / deferred event in this second */
  delivered: Set<string> | null;
  deferred: Set<string> | null;
}

const emptyBucket = (): Bucket => ({ accepted: 0, rejected: 0, monitored: 0, connections: 0, events: 0, rules: null, delivered: null, deferred: null });

type SeriesPoint = Omit<StatsPoint, 'delivered' | 'deferred'> & { delivered: number; deferred: number; rules: Map<string, number> | null };

export class StatsCollector {
  readonly startedAt: number;
  private readonly totals = {
    connections: 0,
    accepted: 0,
    rejected: 0,
    monitored: 0,
    delivered: 0,
    deferred: 0,
    bounced: 0,
    events: 0,
    rejectedByRule: {} as Record<string, number>,
    monitoredByRule: {} as Record<string, number>,
  };
  private open = 0;
  private bucket = emptyBucket();
  private readonly series: SeriesPoint[] = [];
  private topCache: { at: number; value: Stats['topTalkers'] } | null = null;

  constructor(private readonly src: StatsSources) {
    this.startedAt = src.now();
  }

  /** The bus listener. */
  onEvent(e: RelayEvent): void {
    const t = this.totals;
    const b = this.bucket;
    t.events++;
    b.events++;
    switch (e.kind) {
      case 'connect':
        t.connections++;
        b.connections++;
        this.open++;
        break;
      case 'disconnect':
        if (this.open > 0) this.open--;
        break;
      case 'accepted':
        t.accepted++;
        b.accepted++;
        break;
      case 'rejected':
        if (e.enforced) {
          t.rejected++;
          b.rejected++;
          t.rejectedByRule[e.rule] = (t.rejectedByRule[e.rule] ?? 0) + 1;
          (b.rules ??= new Map()).set(e.rule, (b.rules.get(e.rule) ?? 0) + 1);
        } else {
          t.monitored++;
          b.monitored++;
          t.monitoredByRule[e.rule] = (t.monitoredByRule[e.rule] ?? 0) + 1;
        }
        break;
      case 'delivered':
        t.delivered++;
        (b.delivered ??= new Set()).add(e.queueId);
        break;
      case 'deferred':
        t.deferred++;
        (b.deferred ??= new Set()).add(e.queueId);
        break;
      case 'bounced':
        t.bounced++;
        break;
      default:
        break;
    }
  }

  /** Close the current second (the tick timer calls this once a second). */
  tick(): void {
    const b = this.bucket;
    this.bucket = emptyBucket();
    this.series.push({
      at: this.src.now() - 1000,
      accepted: b.accepted,
      rejected: b.rejected,
      monitored: b.monitored,
      connections: b.connections,
      events: b.events,
      delivered: b.delivered?.size ?? 0,
      deferred: b.deferred?.size ?? 0,
      rules: b.rules,
    });
    if (this.series.length > SERIES) this.series.shift();
  }

  private topTalkers(): Stats['topTalkers'] {
    const now = Date.now();
    if (this.topCache && now - this.topCache.at < 5000) return this.topCache.value;
    const top: Stats['topTalkers'] = this.src.anvil.busiest(10).map((c) => ({ ip: c.key, messagesLastHour: c.messagesLastHour, connections: c.connections }));
    this.topCache = { at: now, value: top };
    return top;
  }

  snapshot(): Stats {
    const last = this.series[this.series.length - 1];
    const rules15: Record<string, number> = {};
    for (const p of this.series) if (p.rules) for (const [r, n] of p.rules) rules15[r] = (rules15[r] ?? 0) + n;
    const q = this.src.queue;
    const h = this.src.history;
    return {
      at: this.src.now(),
      startedAt: this.startedAt,
      totals: { ...this.totals, rejectedByRule: { ...this.totals.rejectedByRule }, monitoredByRule: { ...this.totals.monitoredByRule } },
      perSecond: last ? point(last) : { at: this.src.now(), accepted: 0, rejected: 0, monitored: 0, connections: 0, events: 0, delivered: 0, deferred: 0 },
      rejectedByRule15m: rules15,
      openConnections: this.open,
      topTalkers: this.topTalkers(),
      queue: { size: q.size, activeDeliveries: q.activeDeliveries ?? 0, acceptingMail: q.acceptingMail, ...q.summary() },
      manage: this.src.manage(),
      history: h ? { storedEvents: h.storedEvents, oldestAt: h.oldestAt(), bytes: h.bytes() } : { storedEvents: 0, oldestAt: null, bytes: 0 },
      lastEventId: this.src.lastEventId(),
      configRevision: this.src.configRevision(),
    };
  }

  seriesPoints(): StatsPoint[] {
    return this.series.map(point);
  }
}

function point(p: SeriesPoint): StatsPoint {
  return { at: p.at, accepted: p.accepted, rejected: p.rejected, monitored: p.monitored, connections: p.connections, events: p.events, delivered: p.delivered, deferred: p.deferred };
}
