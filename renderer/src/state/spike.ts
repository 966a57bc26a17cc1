/**
 * Rejection-spike detection for the desktop notification: a spike is a second (from stats.tick) whose enforced
 * rejections are at least `minPerSecond` and `factor` times the recent baseline (an exponentially weighted average
 * of the seconds before). Notifications are rate limited (one per `cooldownMs`). Pure class + a hook.
 */
import { useEffect, useRef } from 'react';
import type { ConsoleApi } from '../../../shared/console-api.ts';
import type { NotificationParams } from '../../../shared/protocol.ts';
import { ruleLabel } from '../components/format.ts';

export interface SpikeOptions {
  minPerSecond: number;
  factor: number;
  cooldownMs: number;
  /** weight of the newest second in the baseline */
  alpha: number;
  /** seconds to watch before the first alarm (the baseline is meaningless before) */
  warmupSeconds: number;
}

export const DEFAULT_SPIKE: SpikeOptions = { minPerSecond: 10, factor: 4, cooldownMs: 5 * 60_000, alpha: 0.05, warmupSeconds: 10 };

export interface Spike {
  rate: number;
  baseline: number;
  topRule: string | null;
}

export class SpikeDetector {
  private baseline = 0;
  private seen = 0;
  private lastAlarm = -Infinity;
  private lastAt = -1;
  private readonly o: SpikeOptions;
  constructor(opts: Partial<SpikeOptions> = {}) {
    this.o = { ...DEFAULT_SPIKE, ...opts };
  }

  /** Feed one second; returns a spike to report, or null. `now` is wall time in ms. */
  feed(rejected: number, at: number, now: number, byRule?: Record<string, number>): Spike | null {
    if (at === this.lastAt) return null;
    this.lastAt = at;
    const base = this.baseline;
    this.seen++;
    let spike: Spike | null = null;
    if (this.seen > this.o.warmupSeconds && rejected >= this.o.minPerSecond && rejected >= this.o.factor * Math.max(base, 1) && now - this.lastAlarm >= this.o.cooldownMs) {
      this.lastAlarm = now;
      let topRule: string | null = null;
      let top = 0;
      for (const [r, n] of Object.entries(byRule ?? {})) {
        if (n > top) {
          top = n;
          topRule = r;
        }
      }
      spike = { rate: rejected, baseline: base, topRule };
    }
    // a spike feeds the baseline slowly, so a sustained attack does not keep alarming once the cooldown ends
    this.baseline = base + this.o.alpha * (rejected - base);
    return spike;
  }
}

export function spikeMessage(s: Spike, host: string | null): { title: string; body: string } {
  return {
    title: `Rejection spike${host ? ` on ${host}` : ''}`,
    body: `${s.rate} rejections in the last second (usually about ${Math.round(s.baseline * 10) / 10}).${s.topRule ? ` Most by: ${ruleLabel(s.topRule)}.` : ''} Open Live traffic to see who.`,
  };
}

/** Watch stats.tick for the life of the app and call api.notify on a spike. */
export function useRejectionSpikeNotifier(api: ConsoleApi, host: string | null = null, opts?: Partial<SpikeOptions>): void {
  const hostRef = useRef(host);
  hostRef.current = host;
  useEffect(() => {
    const d = new SpikeDetector(opts);
    return api.onStats((s: NotificationParams<'stats.tick'>) => {
      const spike = d.feed(s.perSecond.rejected, s.perSecond.at, Date.now(), s.rejectedByRule15m);
      if (spike) {
        const m = spikeMessage(spike, hostRef.current);
        void api.notify(m.title, m.body).catch(() => {});
      }
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api]);
}
