/**
 * The history's SQLite connections keep their temporary data in memory. A multi-row INSERT inside a transaction needs
 * a statement journal; with SQLite's default temp store that is a new file in the temp directory (created and
 * unlinked at once) for every statement, 64 rows each: thousands of file creations a second under load, seen with
 * strace as ~15 extra pwrite calls per message. The writer thread's connection once missed the main connection's
 * `temp_store = MEMORY`. This file points SQLite's temp directory (SQLITE_TMPDIR, read once when SQLite initialises,
 * so it is set before better-sqlite3 loads: vitest runs each test file in a process of its own) at a directory of its
 * own and watches it with inotify while the writer thread and the main thread store events.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-sqlite-tmp-'));
process.env.SQLITE_TMPDIR = tmp;
const { EventHistory } = await import('../relay/store/history.ts');
const { EventBus } = await import('../relay/events/bus.ts');

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('history temp store', () => {
  it('writes thousands of events, from the writer thread and from the main thread, without one temp file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-history-tmp-'));
    const seen: string[] = [];
    const watcher = fs.watch(tmp, (_kind, name) => seen.push(String(name)));
    const t0 = 1_700_000_000_000;
    const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), now: () => t0, flushMs: 3_600_000 });
    try {
      const bus = new EventBus({ now: () => t0, firstId: h.lastEventId() + 1 });
      h.attach(bus);
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 1000; i++) bus.emit({ kind: 'connect', sessionId: `s${round}-${i}`, ip: `192.0.2.${i % 250}`, port: 1000 + i });
        h.flush(); // the writer thread's transaction, waited for
      }
      expect(h.storedEvents).toBe(5000);
      await h.killWriter();
      for (let i = 0; i < 1000; i++) bus.emit({ kind: 'connect', sessionId: `m${i}`, ip: '192.0.2.9', port: 2000 + i });
      h.flush(); // the main thread's own insert, now that the writer is gone
      expect(h.storedEvents).toBe(6000);
      await sleep(200); // inotify events are delivered through the event loop
      // the check can fail: with the default temp store this directory sees one file per 64-row statement
      expect(seen).toEqual([]);
    } finally {
      watcher.close();
      h.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
