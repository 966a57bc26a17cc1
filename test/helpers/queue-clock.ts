/**
 * A fake clock and timer set for the queue: hours of retries run in milliseconds.
 * `advance(ms)` moves time forward and fires every timer that falls due, in order.
 */
import type { Timers } from '../../relay/queue/spool.ts';

export class FakeClock implements Timers {
  private t: number;
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  now = (): number => this.t;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.pending.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.pending.delete(handle as number);
  };

  /** the time the next timer fires, or null */
  nextAt(): number | null {
    let min: number | null = null;
    for (const p of this.pending.values()) if (min === null || p.at < min) min = p.at;
    return min;
  }

  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.pending) if (e[1].at <= until && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = until;
  }

  /** jumps to the next timer and fires it; returns false when there is none */
  fireNext(): boolean {
    const at = this.nextAt();
    if (at === null) return false;
    this.advance(Math.max(0, at - this.t));
    return true;
  }
}
