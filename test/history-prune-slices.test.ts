/**
 * The retention prune from its timer deletes in slices with a turn of the event loop after each: a prune of 200,000
 * rows in one go held the event loop (every SMTP reply) for about a second. Between two slices a scan sees the rows
 * not deleted yet, and EventHistory.pruned already bounds what the slice before deleted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { EventHistory } from '../relay/store/history.ts';
import { waitFor } from './helpers/wait.ts';

const DAY = 86_400_000;
const dirs: string[] = [];
const open: EventHistory[] = [];
afterEach(() => {
  for (const h of open.splice(0)) h.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function history(opts: { now: () => number; pruneMs?: number; maxBytes?: number; log?: (line: string) => void }): EventHistory {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-prune-slices-'));
  dirs.push(dir);
  const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), flushMs: 3_600_000, retentionDays: () => 30, log: () => {}, ...opts });
  open.push(h);
  return h;
}

const connect = (id: number, at: number): RelayEvent => ({ id, at, kind: 'connect', sessionId: `s${id}`, ip: '192.0.2.1', port: 1000 }) as RelayEvent;

describe('the prune timer', () => {
  it('deletes 23,000 old events in slices, the event loop running between them; a scan between two slices is consistent', async () => {
    const t0 = 1_700_000_000_000;
    let now = t0;
    const h = history({ now: () => now, pruneMs: 20 });
    const OLD = 23_000;
    h.load(Array.from({ length: OLD }, (_, k) => connect(k + 1, t0 + k)));
    h.load(Array.from({ length: 10 }, (_, k) => connect(OLD + k + 1, t0 + 20 * DAY + k)));
    h.flush();
    now = t0 + 31 * DAY; // past the 30 days' retention for the old ones only

    // a probe on every turn of the event loop while the prune runs: what it sees between two slices
    const seen: { prunes: number; maxId: number; firstId: number }[] = [];
    let probing = true;
    const probe = () => {
      if (!probing) return;
      const m = h.pruned;
      if (m.prunes > 0) {
        const first = h.query({ order: 'asc', limit: 1 }, { noFlush: true }).events[0]!;
        if (seen.at(-1)?.prunes !== m.prunes) seen.push({ prunes: m.prunes, maxId: m.maxId, firstId: first.id });
      }
      setImmediate(probe);
    };
    setImmediate(probe);
    await waitFor(() => h.storedEvents === 10, 'the prune to finish', 20_000);
    probing = false;

    // 5 slices (5,000 rows at most each), and the probe ran between them: it saw the mark move on more than once
    expect(h.pruned).toEqual({ prunes: 5, maxId: OLD, maxAt: t0 + OLD - 1 });
    expect(seen.length).toBeGreaterThan(1);
    for (const s of seen) {
      // what the mark says may be gone is gone, and nothing above it
      expect(s.firstId, JSON.stringify(s)).toBe(s.maxId + 1);
      expect(s.maxId % 5000 === 0 || s.maxId === OLD, JSON.stringify(s)).toBe(true);
    }
    expect(h.query({ order: 'asc', limit: 100 }).events.map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, k) => OLD + k + 1));
  });

  it('a history closed between two slices: the prune stops, nothing throws', async () => {
    const t0 = 1_700_000_000_000;
    let now = t0;
    const log: string[] = [];
    const h = history({ now: () => now, pruneMs: 20, log: (l) => log.push(l) });
    h.load(Array.from({ length: 12_000 }, (_, k) => connect(k + 1, t0 + k)));
    h.flush();
    now = t0 + 31 * DAY;
    // close on the first turn of the event loop that sees a slice done (a probe on every turn: a poll on a timer could
    // let every slice pass before it looked)
    await new Promise<void>((resolve) => {
      const probe = () => {
        if (h.pruned.prunes === 0) return void setImmediate(probe);
        h.close();
        resolve();
      };
      setImmediate(probe);
    });
    open.splice(open.indexOf(h), 1);
    // the turns the prune would have taken pass without an error
    await new Promise((r) => setTimeout(r, 50));
    expect(h.pruned.prunes).toBeLessThan(3);
    // the prune did not go on into the closed database (pruneSoon logs what it could not do)
    expect(log).toEqual([]);
  });
});
