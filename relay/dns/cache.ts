// A bounded cache whose entries expire after a TTL, on an injected clock.

interface Entry<V> {
  value: V;
  expiresAt: number; // ms on the injected clock
}

export class TtlCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(
    private readonly max: number,
    private readonly now: () => number,
  ) {}

  /** The value and its remaining lifetime in whole seconds (rounded up), or undefined when absent or expired. */
  get(key: string): { value: V; remainingSeconds: number } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const left = entry.expiresAt - this.now();
    if (left <= 0) {
      this.entries.delete(key);
      return undefined;
    }
    return { value: entry.value, remainingSeconds: Math.ceil(left / 1000) };
  }

  /** Store for ttlSeconds (nothing is stored for a TTL of 0 or less); the oldest entries go when full. */
  set(key: string, value: V, ttlSeconds: number): void {
    if (this.max <= 0 || !(ttlSeconds > 0)) return;
    this.entries.delete(key); // re-insert at the young end
    this.entries.set(key, { value, expiresAt: this.now() + ttlSeconds * 1000 });
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
