/**
 * When to try again, and the small data structures the delivery scheduler runs on.
 */

/** 1, 5, 15, 30 minutes, then hourly (the last delay repeats). */
export const DEFAULT_RETRY_DELAYS_MS = [1, 5, 15, 30, 60].map((m) => m * 60_000);

/**
 * Delay before attempt number `attempts + 1`, after `attempts` failed ones (attempts >= 1), with +-jitter
 * (a fraction of the delay) so that messages deferred together do not all come back in the same second.
 */
export function retryDelay(attempts: number, delays: readonly number[], jitter: number, random: () => number): number {
  const base = delays[Math.min(Math.max(attempts, 1), delays.length) - 1] ?? 60_000;
  const spread = base * jitter;
  return Math.max(1000, Math.round(base - spread + random() * 2 * spread));
}

/** A binary min-heap keyed by a number; entries may go stale and are checked by the caller when popped. */
export class MinHeap<T> {
  private readonly keys: number[] = [];
  private readonly values: T[] = [];

  get length(): number {
    return this.keys.length;
  }

  peekKey(): number | undefined {
    return this.keys[0];
  }

  push(key: number, value: T): void {
    const k = this.keys;
    const v = this.values;
    let i = k.length;
    k.push(key);
    v.push(value);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (k[p]! <= key) break;
      k[i] = k[p]!;
      v[i] = v[p]!;
      i = p;
    }
    k[i] = key;
    v[i] = value;
  }

  /** Keeps only the entries `keep` accepts, in heap order again (O(n)). */
  retain(keep: (key: number, value: T) => boolean): void {
    const entries: { key: number; value: T }[] = [];
    for (let i = 0; i < this.keys.length; i++) if (keep(this.keys[i]!, this.values[i]!)) entries.push({ key: this.keys[i]!, value: this.values[i]! });
    this.keys.length = 0;
    this.values.length = 0;
    for (const e of entries) this.push(e.key, e.value);
  }

  pop(): { key: number; value: T } | undefined {
    const k = this.keys;
    const v = this.values;
    if (k.length === 0) return undefined;
    const top = { key: k[0]!, value: v[0]! };
    const lastKey = k.pop()!;
    const lastValue = v.pop()!;
    const n = k.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && k[r]! < k[l]! ? r : l;
        if (k[c]! >= lastKey) break;
        k[i] = k[c]!;
        v[i] = v[c]!;
        i = c;
      }
      k[i] = lastKey;
      v[i] = lastValue;
    }
    return top;
  }
}

/** A FIFO with O(1) shift. */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** How many items `match` accepts (O(n)). */
  count(match: (item: T) => boolean): number {
    let n = 0;
    for (let i = this.head; i < this.items.length; i++) if (match(this.items[i] as T)) n++;
    return n;
  }

  /** Removes every item `drop` accepts (O(n)); returns how many. */
  removeWhere(drop: (item: T) => boolean): number {
    const kept: T[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i] as T;
      if (!drop(item)) kept.push(item);
    }
    const removed = this.length - kept.length;
    if (removed > 0) {
      this.items = kept;
      this.head = 0;
    }
    return removed;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
