/**
 * The history writer thread (relay/store/history-writer.mjs): the bus's events are inserted off the SMTP thread, yet
 * every read sees every recorded event, storedEvents stays exact, a batch the writer cannot store is counted and
 * logged, a writer that stops loses nothing (the main thread takes its batches over), and close() leaves the file closed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { EventBus } from '../relay/events/bus.ts';
import { EventHistory } from '../relay/store/history.ts';

const dirs: string[] = [];
const open: EventHistory[] = [];
afterEach(() => {
  for (const h of open.splice(0)) h.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const t0 = 1_700_000_000_000;

function setup(opts: { flushMs?: number; maxPending?: number } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-history-writer-'));
  dirs.push(dir);
  const file = path.join(dir, 'history.sqlite');
  const log: string[] = [];
  const h = EventHistory.open({ file, now: () => t0, flushMs: opts.flushMs ?? 3_600_000, maxPending: opts.maxPending, log: (l) => log.push(l) });
  open.push(h);
  const bus = new EventBus({ now: () => t0, firstId: h.lastEventId() + 1 });
  h.attach(bus);
  const emit = (n: number, ip = '192.0.2.1') => {
    for (let i = 0; i < n; i++) bus.emit({ kind: 'connect', sessionId: `s${i}`, ip, port: 1000 + i });
  };
  return { file, h, bus, emit, log };
}

/** read with a connection of its own, as another process would */
function onDisk(file: string): { n: number; ids: number[] } {
  const db = new Database(file, { readonly: true });
  try {
    const ids = db.prepare('SELECT id FROM events ORDER BY id').pluck().all() as number[];
    return { n: ids.length, ids };
  } finally {
    db.close();
  }
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

describe('history writer thread', () => {
  it('stores the bus batches from its own thread: the timer hands them over, reads wait for them, the count needs no wait', async () => {
    const t = setup({ flushMs: 20 });
    t.emit(300);
    // counted without waiting for the writer: the count never blocks on it
    const wait = vi.spyOn(Atomics, 'wait');
    try {
      expect(t.h.storedEvents).toBe(300);
      expect(wait).not.toHaveBeenCalled();
    } finally {
      wait.mockRestore();
    }
    // the timer alone (no read) gets them into the file
    await until(() => onDisk(t.file).n === 300);
    t.emit(200, '192.0.2.9');
    // a read right after recording sees everything: it waits for the writer
    const q = t.h.query({ ip: '192.0.2.9', limit: 1000 });
    expect(q.events).toHaveLength(200);
    expect(t.h.range(0, 10_000, 10_000)).toHaveLength(500);
    expect(onDisk(t.file).ids).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(t.h.storedEvents).toBe(500);
    expect(t.h.droppedEvents).toBe(0);
    expect(t.log).toEqual([]);
  });

  it('a batch the writer cannot store is counted as dropped and logged; the history goes on', async () => {
    const t = setup();
    t.emit(10);
    t.h.flush();
    // a refusal inside SQLite, as a full disk or a broken file would give: the batch holding id 15 fails as a whole
    const other = new Database(t.file);
    other.exec("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.id = 15 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    other.close();
    t.emit(10);
    t.h.flush();
    expect(t.h.droppedEvents).toBe(10);
    expect(t.h.storedEvents).toBe(10);
    expect(onDisk(t.file).n).toBe(10);
    await until(() => t.log.length > 0);
    expect(t.log[0]).toMatch(/could not store 10 events in .*history\.sqlite: refused by the test/);
    // later batches are stored again, and counted exactly
    t.emit(5);
    expect(t.h.storedEvents).toBe(15);
    t.h.flush();
    expect(onDisk(t.file).n).toBe(15);
    expect(t.h.query({ limit: 100 }).events.map((e) => e.id)).toEqual([...Array.from({ length: 10 }, (_, i) => i + 1), 21, 22, 23, 24, 25]);
  });

  it('a writer that stops loses nothing: its unfinished batches and every later one are written on the main thread', async () => {
    const t = setup();
    t.emit(50);
    t.h.flush();
    // a batch handed over, then the writer ended at once (whether it got to that batch or not, nothing may be lost)
    t.emit(50);
    void t.h.storedEvents; // hands the batch over
    await t.h.killWriter();
    t.emit(50);
    expect(t.h.query({ limit: 1000 }).events).toHaveLength(150);
    expect(t.log.join('\n')).toMatch(/the writer thread stopped; events are written on the relay's main thread from now on/);
    t.emit(25);
    t.h.flush();
    expect(onDisk(t.file).ids).toEqual(Array.from({ length: 175 }, (_, i) => i + 1));
    expect(t.h.storedEvents).toBe(175);
    expect(t.h.droppedEvents).toBe(0);
  });

  it('close() hands over the last events and waits for the writer to close its connection (the WAL is checkpointed and gone)', () => {
    const t = setup();
    t.emit(1000);
    void t.h.storedEvents;
    t.emit(7);
    open.splice(open.indexOf(t.h), 1);
    t.h.close();
    // the last connection to close removes the -wal file: neither the main one nor the writer's is left open
    expect(fs.existsSync(`${t.file}-wal`)).toBe(false);
    expect(onDisk(t.file).n).toBe(1007);
    const again = EventHistory.open({ file: t.file, now: () => t0, flushMs: 3_600_000 });
    open.push(again);
    expect(again.storedEvents).toBe(1007);
    expect(again.lastEventId()).toBe(1007);
  });

  it('events that are not a rising bus batch (a bulk load, a repeated id) are written on the main thread, after the writer', () => {
    const t = setup();
    t.emit(20);
    void t.h.storedEvents;
    const replay: RelayEvent = { id: 3, at: t0, kind: 'connect', sessionId: 'again', ip: '198.51.100.1', port: 1 };
    t.h.record(replay);
    expect(t.h.storedEvents).toBe(20);
    expect(t.h.query({ ip: '198.51.100.1', limit: 10 }).events).toEqual([replay]);
    t.h.load([{ id: 500, at: t0, kind: 'connect', sessionId: 'bulk', ip: '198.51.100.2', port: 2 }]);
    expect(t.h.storedEvents).toBe(21);
    // the bus goes on above the loaded id range's start; a batch below topId is not rising and still lands
    t.emit(3);
    expect(t.h.storedEvents).toBe(24);
    expect(onDisk(t.file).n).toBe(24);
  });

  it('maxPending counts only batches the writer has not finished: one it stored keeps no new event out', async () => {
    const t = setup({ maxPending: 100 });
    t.emit(80);
    void t.h.storedEvents; // handed over
    await until(() => onDisk(t.file).n === 80);
    // the writer is done with those 80: the next 80 fit under the bound of 100
    t.emit(80);
    expect(t.h.droppedEvents).toBe(0);
    expect(t.h.storedEvents).toBe(160);
    t.h.flush();
    expect(onDisk(t.file).n).toBe(160);
  });

  it('an unfinished batch the main thread cannot store either is dropped, and storedEvents no longer counts it', async () => {
    const t = setup();
    const other = new Database(t.file);
    other.exec("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.id = 5 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    other.close();
    t.emit(10);
    void t.h.storedEvents; // starts the writer and hands the batch over
    await t.h.killWriter(); // ended before it could take the batch: the main thread writes it, and fails
    expect(t.h.query({ limit: 100 }).events).toHaveLength(0);
    expect(t.h.droppedEvents).toBe(10);
    expect(t.h.storedEvents).toBe(0);
    expect(t.log.join('\n')).toMatch(/could not store 10 events .*refused by the test/);
  });

  it('a writer that dies on its own while a read waits for it is replaced at once, not after WRITER_WAIT_MS', () => {
    const t = setup();
    // the writer cannot open the file (a directory stands at its path) and ends; the main thread keeps its connection
    fs.renameSync(t.file, `${t.file}.moved`);
    fs.mkdirSync(t.file);
    t.emit(10);
    void t.h.storedEvents; // starts the writer and hands the batch over
    const start = Date.now();
    // the main thread blocks in this read: the worker's 'exit' event cannot reach it
    expect(t.h.query({ limit: 100 }).events).toHaveLength(10);
    expect(Date.now() - start).toBeLessThan(3000);
    expect(t.log.join('\n')).toMatch(/the writer thread stopped; events are written on the relay's main thread/);
    expect(t.h.storedEvents).toBe(10);
    expect(t.h.droppedEvents).toBe(0);
  }, 20_000);
});
