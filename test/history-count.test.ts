/**
 * EventHistory.storedEvents is the number of rows in the events table, whether or not the pending buffer has been
 * written yet: an event whose id is already stored, or already pending, replaces a row (INSERT OR REPLACE) and must
 * not count twice. And the bus's case (rising new ids) stays on the fast path: no count query per flush.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { EventHistory } from '../relay/store/history.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-history-count-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const t0 = 1_700_000_000_000;
const connect = (id: number, ip: string): RelayEvent => ({ id, at: t0 + id, kind: 'connect', sessionId: `s${id}`, ip });

/** the rows really in the file, read with a separate connection */
function rowsOnDisk(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM events').pluck().get() as number;
  } finally {
    db.close();
  }
}

describe('EventHistory.storedEvents before a flush', () => {
  it('does not count an unflushed event whose id is already stored, or already pending', () => {
    const file = path.join(tmp(), 'history.sqlite');
    const h = EventHistory.open({ file, now: () => t0, flushMs: 3_600_000 });
    h.record(connect(1, '192.0.2.1'));
    h.record(connect(2, '192.0.2.2'));
    h.flush();
    expect(h.storedEvents).toBe(2);

    // id 2 again, still in the buffer: it will replace row 2, not add one
    h.record(connect(2, '192.0.2.22'));
    expect(h.storedEvents).toBe(2);

    // a new id, then the same id again while both are pending: one new row
    h.record(connect(3, '192.0.2.3'));
    h.record(connect(3, '192.0.2.33'));
    expect(h.storedEvents).toBe(3);

    // new rising ids are each a row
    h.record(connect(4, '192.0.2.4'));
    h.record(connect(5, '192.0.2.5'));
    expect(h.storedEvents).toBe(5);

    // and the count agrees with the file, after the buffer is written
    h.flush();
    expect(h.storedEvents).toBe(5);
    expect(rowsOnDisk(file)).toBe(5);
    h.close();
  });

  it('a flush of rising new ids (the bus) runs no count query; a batch that may replace rows does', () => {
    const file = path.join(tmp(), 'history.sqlite');
    const h = EventHistory.open({ file, now: () => t0, flushMs: 3_600_000 });
    // every statement of every better-sqlite3 connection shares this prototype
    const probe = new Database(':memory:');
    const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as { get: (...a: unknown[]) => unknown };
    probe.close();
    const counts: string[] = [];
    const realGet = proto.get;
    vi.spyOn(proto, 'get').mockImplementation(function (this: { source: string }, ...a: unknown[]) {
      if (/count\(\*\)/i.test(this.source)) counts.push(this.source);
      return realGet.apply(this, a);
    });

    for (let id = 1; id <= 200; id++) h.record(connect(id, '198.51.100.1'));
    expect(h.storedEvents).toBe(200);
    for (let id = 201; id <= 300; id++) h.record(connect(id, '198.51.100.1'));
    h.flush();
    expect(h.storedEvents).toBe(300);
    expect(counts).toEqual([]);

    // an id already stored: the exact path (count the id span before and after)
    h.record(connect(150, '198.51.100.2'));
    expect(h.storedEvents).toBe(300);
    expect(counts.length).toBeGreaterThan(0);
    h.close();
    expect(rowsOnDisk(file)).toBe(300);
  });
});
