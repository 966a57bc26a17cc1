/**
 * policy.simulate's cap (maxEvents, 2,000,000 by default): when the window holds more events of the replayed kinds, the
 * replay starts after the newest one it skips (the cut). Finding it ran once on the event loop, before the first page:
 * a count of the window and an `ORDER BY at DESC, id DESC LIMIT 1 OFFSET maxEvents` over `kind IN (...)`, which sorted
 * every row of those kinds (measured: 0.7-0.85 s for 1,000,000 of 2,000,000 rows, in one turn). It must cost bounded
 * work per turn of the event loop:
 *  - the cut is found in steps of at most `cutStep` index entries (five times as many for the check of all kinds), a
 *    pause (a turn of the event loop) before each, each step starting where the one before stopped;
 *  - the plan of every statement it runs: index walks only (COVERING), no TEMP B-TREE, bounded at the step's start;
 *  - the replay reads exactly the newest maxEvents events of the replayed kinds, whatever the step.
 * Against a real EventHistory on disk and the real simulate().
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../shared/config.ts';
import type { RelayEvent } from '../shared/events.ts';
import { simulate } from '../relay/manage/simulate.ts';
import { EventHistory } from '../relay/store/history.ts';

const dirs: string[] = [];
const open: EventHistory[] = [];
afterEach(() => {
  for (const h of open.splice(0)) h.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const NOW = 1_800_000_000_000;
const SESSIONS = 600;

/** Sessions of connect, helo (not replayed) and disconnect on one `at`; four sessions a second, in the last hour. */
function history(): { h: EventHistory; replayed: RelayEvent[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-simulate-cut-'));
  dirs.push(dir);
  const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), now: () => NOW, log: () => {} });
  open.push(h);
  const events: RelayEvent[] = [];
  let id = 0;
  for (let i = 0; i < SESSIONS; i++) {
    const at = NOW - 3_000_000 + Math.floor(i / 4) * 1000;
    const ip = `192.0.2.${i % 200}`;
    events.push({ id: ++id, at, kind: 'connect', sessionId: `s${i}`, ip, port: 1000 + i } as RelayEvent);
    events.push({ id: ++id, at, kind: 'helo', sessionId: `s${i}`, ip, name: `h${i}.example` } as RelayEvent);
    events.push({ id: ++id, at, kind: 'disconnect', sessionId: `s${i}`, ip, messages: 0 } as RelayEvent);
  }
  h.load(events);
  return { h, replayed: events.filter((e) => e.kind !== 'helo') };
}

type Db = { prepare(sql: string): { all(...a: unknown[]): { detail: string }[] } };

describe('policy.simulate finds the cap\'s cut in bounded steps, a turn of the event loop each', () => {
  const cases = [
    { maxEvents: 2 * 100 + 1, cutStep: 7 },
    { maxEvents: 2 * 100 + 1, cutStep: 1 },
    { maxEvents: 2 * SESSIONS - 1, cutStep: 50 },
    { maxEvents: 2 * SESSIONS, cutStep: 50 },
    { maxEvents: 3 * SESSIONS - 1, cutStep: 10 },
    { maxEvents: 3 * SESSIONS, cutStep: 100 },
  ];
  for (const { maxEvents, cutStep } of cases) {
    it(`maxEvents ${maxEvents}, cutStep ${cutStep}`, async () => {
      const { h, replayed } = history();
      const hh = h as unknown as { stmt(sql: string): unknown; db: Db; cutAfter(...a: unknown[]): unknown };
      const origStmt = hh.stmt;
      const origCut = hh.cutAfter;
      const log: ({ pause: true } | { skip: number; kinds: unknown; before: { at: number; id: number } | null; found: unknown })[] = [];
      const sqls = new Set<string>();
      hh.stmt = function (sql: string) {
        if (sql.startsWith('SELECT at, id FROM events')) sqls.add(sql);
        return origStmt.call(h, sql);
      };
      hh.cutAfter = function (...a: unknown[]) {
        const found = origCut.apply(h, a);
        const opts = (a[4] ?? {}) as { before?: { at: number; id: number } | null };
        log.push({ skip: a[3] as number, kinds: a[2], before: opts.before ?? null, found });
        return found;
      };
      let sim;
      try {
        sim = await simulate(h, defaultConfig(), 1, NOW, {
          maxEvents,
          cutStep,
          pause: () => {
            log.push({ pause: true });
            return new Promise<void>((r) => setImmediate(r));
          },
        });
      } finally {
        hh.stmt = origStmt;
        hh.cutAfter = origCut;
      }

      // what the replay read: the newest maxEvents events of the replayed kinds
      const newest = [...replayed].sort((a, b) => b.at - a.at || b.id - a.id).slice(0, maxEvents);
      expect(sim.truncated).toBe(maxEvents < replayed.length);
      expect(sim.replayed.events).toBe(Math.min(maxEvents, replayed.length));
      expect(sim.replayed.connections).toBe(newest.filter((e) => e.kind === 'connect').length);

      // the steps: each after a pause of its own, each at most its step, each from where the one before stopped
      const cuts = log.flatMap((x, i) => ('skip' in x ? [{ ...x, i }] : []));
      expect(cuts.length).toBeGreaterThan(1);
      let prev: (typeof cuts)[number] | null = null;
      for (const c of cuts) {
        expect('pause' in log[c.i - 1]!, `a pause before step ${c.i}`).toBe(true);
        expect(c.skip).toBeLessThan(c.kinds === null ? 5 * cutStep : cutStep);
        const sameWalk = prev !== null && (prev.kinds === null) === (c.kinds === null);
        expect(c.before).toEqual(sameWalk ? prev!.found : null);
        prev = c;
      }

      // the plans: index walks only, no sort; a step from a cursor starts its walk there (`at` bounded above)
      expect(sqls.size).toBeGreaterThan(0);
      for (const sql of sqls) {
        const n = sql.split('?').length - 1;
        const plan = hh.db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all(...Array.from({ length: n }, () => 0))
          .map((r) => r.detail);
        expect(plan.join('; '), sql).not.toMatch(/TEMP B-TREE/);
        const walks = plan.filter((d) => /^(SEARCH|SCAN)/.test(d));
        expect(walks.length).toBeGreaterThan(0);
        for (const d of walks) {
          expect(d, sql).toMatch(/^SEARCH events USING COVERING INDEX events_(at|kind) \(/);
          expect(d, sql).toMatch(/\bat<\?/);
        }
      }
    });
  }
});
