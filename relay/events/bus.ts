/**
 * One bounded, typed event bus. Emitters (SMTP sessions, the queue, the config store) call emit();
 * it stamps an id and time, keeps the event in a ring for late subscribers and hands it to each listener.
 * Listeners must be cheap (push into their own bounded buffer); a listener that throws is reported once
 * and never breaks the emitter: the SMTP path never waits for anyone.
 */
import type { EventInput, RelayEvent } from '../../shared/events.ts';

export type Listener = (event: RelayEvent) => void;

export class EventBus {
  private readonly ring: (RelayEvent | undefined)[];
  private head = 0;
  private count = 0;
  private nextId: number;
  private readonly listeners = new Set<Listener>();
  private readonly now: () => number;

  constructor(opts: { now?: () => number; backlog?: number; firstId?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.ring = new Array(opts.backlog ?? 10_000);
    this.nextId = opts.firstId ?? 1;
  }

  emit(input: EventInput): RelayEvent {
    const event = { ...input, id: this.nextId++, at: this.now() } as RelayEvent;
    this.ring[this.head] = event;
    this.head = (this.head + 1) % this.ring.length;
    if (this.count < this.ring.length) this.count++;
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.listeners.delete(l);
        console.error(`event listener failed and was removed: ${(err as Error).message}`);
      }
    }
    return event;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Events with id > sinceId still held in memory, oldest first. */
  since(sinceId: number): RelayEvent[] {
    const out: RelayEvent[] = [];
    const start = (this.head - this.count + this.ring.length) % this.ring.length;
    for (let i = 0; i < this.count; i++) {
      const e = this.ring[(start + i) % this.ring.length]!;
      if (e.id > sinceId) out.push(e);
    }
    return out;
  }

  get lastId(): number {
    return this.nextId - 1;
  }
}
