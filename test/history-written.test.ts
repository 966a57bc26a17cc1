/**
 * EventHistory.written(): flush() without blocking. With the writer thread held (HistoryOptions.writerGate, as a slow
 * disk holds it), the event loop runs while written() waits, and once it resolves every event recorded before the
 * call is in the database; a writer that stops while it waits is taken over (its batches written on the main thread),
 * as flush() does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../relay/events/bus.ts';
import { EventHistory } from '../relay/store/history.ts';
import { waitFor } from './helpers/wait.ts';

const dirs: string[] = [];
const open: EventHistory[] = [];
const gates: Int32Array[] = [];
afterEach(() => {
  for (const g of gates.splice(0)) {
    Atomics.store(g, 0, 0);
    Atomics.notify(g, 0);
  }
  for (const h of open.splice(0)) h.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const t0 = 1_700_000_000_000;

async function heldHistory(opts: { pruneMs?: number; now?: () => number; writerWaitMs?: number } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-history-written-'));
  dirs.push(dir);
  const gate = new Int32Array(new SharedArrayBuffer(8));
  gates.push(gate);
  const log: string[] = [];
  const h = EventHistory.open({
    file: path.join(dir, 'history.sqlite'),
    now: opts.now ?? (() => t0),
    flushMs: 3_600_000,
    pruneMs: opts.pruneMs,
    log: (l) => log.push(l),
    writerGate: gate.buffer as SharedArrayBuffer,
    writerWaitMs: opts.writerWaitMs,
  });
  open.push(h);
  const bus = new EventBus({ now: () => t0, firstId: h.lastEventId() + 1 });
  h.attach(bus);
  const emit = (n: number) => {
    for (let i = 0; i < n; i++) bus.emit({ kind: 'connect', sessionId: `s${i}`, ip: '192.0.2.1', port: 1000 + i });
  };
  // the writer is started (and has stored a first batch) before it is held
  emit(1);
  h.flush();
  Atomics.store(gate, 0, 1);
  emit(100);
  void h.storedEvents; // handed to the writer, which holds it
  // a worker thread's start can take seconds on a loaded machine
  await waitFor(() => Atomics.load(gate, 1) > 0, 'the writer to hold the batch', 15_000);
  const release = () => {
    Atomics.store(gate, 0, 0);
    Atomics.notify(gate, 0);
  };
  return { h, log, emit, release };
}

describe('EventHistory.written', () => {
  it('the event loop runs while it waits for a held writer; then everything recorded before the call is stored', async () => {
    const { h, log, emit, release } = await heldHistory();
    let resolved = false;
    const w = h.written().then(() => void (resolved = true));
    // turns of the event loop and timers go on meanwhile
    let turns = 0;
    for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(() => r(void turns++)));
    await new Promise((r) => setTimeout(r, 30));
    expect(turns).toBe(20);
    expect(resolved).toBe(false);
    // recorded after the call: not waited for
    emit(5);
    release();
    await w;
    expect(h.query({ limit: 1000 }, { noFlush: true }).events.map((e) => e.id)).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
    expect(log).toEqual([]);
    expect(h.droppedEvents).toBe(0);
    expect(h.storedEvents).toBe(106);
  });

  it('a writer that stops while it waits is taken over: its batches are written here, nothing is lost', async () => {
    const { h, log } = await heldHistory();
    let resolved = false;
    const w = h.written().then(() => void (resolved = true));
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBe(false);
    await h.killWriter();
    await w;
    expect(log.join('\n')).toMatch(/the writer thread stopped; events are written on the relay's main thread from now on/);
    expect(h.query({ limit: 1000 }, { noFlush: true }).events).toHaveLength(101);
    expect(h.storedEvents).toBe(101);
    expect(h.droppedEvents).toBe(0);
  });

  it('a writer that does not answer in time is taken over without blocking; its batch stored later counts once', async () => {
    const { h, log, emit, release } = await heldHistory({ writerWaitMs: 300 });
    let turns = 0;
    const ticking = setInterval(() => turns++, 10);
    const t = performance.now();
    await h.written();
    const waited = performance.now() - t;
    clearInterval(ticking);
    expect(waited).toBeGreaterThanOrEqual(250);
    // the event loop ran while it waited (a blocking wait would have let the interval fire at most once)
    expect(turns).toBeGreaterThan(1);
    expect(log.join('\n')).toMatch(/the writer thread did not answer within 0\.3 s; events are written on the relay's main thread from now on/);
    expect(h.query({ limit: 1000 }, { noFlush: true }).events).toHaveLength(101);
    // the held writer lets go after the takeover (terminated, or it stores the batch again): one row per event either way
    release();
    emit(5);
    h.flush();
    expect(h.query({ limit: 1000 }).events.map((e) => e.id)).toEqual(Array.from({ length: 106 }, (_, i) => i + 1));
    expect(h.storedEvents).toBe(106);
    expect(h.droppedEvents).toBe(0);
    expect(log).toHaveLength(1);
  });

  it('flush() (blocking) takes over a writer that does not answer in time, too', async () => {
    const { h, log } = await heldHistory({ writerWaitMs: 300 });
    h.flush();
    expect(log.join('\n')).toMatch(/did not answer within 0\.3 s/);
    expect(h.query({ limit: 1000 }, { noFlush: true }).events).toHaveLength(101);
    expect(h.storedEvents).toBe(101);
  });

  it('the retention prune timer waits for a held writer without blocking, then prunes', async () => {
    let now = t0;
    const { h, log, release } = await heldHistory({ pruneMs: 20, now: () => now });
    now = t0 + 8 * 86_400_000;
    // the prune timer fires many times meanwhile; the event loop runs (this timer is one of its turns)
    await new Promise((r) => setTimeout(r, 300));
    expect(h.pruned.prunes).toBe(0);
    expect(log).toEqual([]);
    release();
    await waitFor(() => h.pruned.prunes === 1, 'the prune');
    // all 101 events were older than the retention: the first one, and the 100 the writer held
    expect(h.query({ limit: 1000 }).events).toEqual([]);
    expect(h.storedEvents).toBe(0);
    expect(log).toEqual([]);
  });
});
