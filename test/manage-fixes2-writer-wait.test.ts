/**
 * A history read waits for the history writer thread to store what it was handed (so the answer holds every event
 * recorded before the read). That wait must not hold the relay's event loop: with a slow disk the writer can take
 * seconds (up to WRITER_WAIT_MS before the main thread takes its work over), and every SMTP session would freeze.
 *
 * A real relay (its history's writer thread held by the test gate, HistoryOptions.writerGate, as a slow disk would
 * hold it), a real wss client and a real SMTP client: while an events.query (an events.subscribe reading its backlog
 * from the history, a policy.simulate) waits for the held writer, a whole SMTP transaction completes and setImmediate turns go
 * on; once the writer is let go, the answer holds the events recorded before the call.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sendMail } from './helpers/smtp-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

const startRelay = manageRelayPerTest();
const MARKERS = 300;

/** setImmediate ticks: each one is a turn of the event loop */
function ticker(): { ticks: () => number; stop: () => void } {
  let n = 0;
  let on = true;
  const tick = () => {
    if (!on) return;
    n++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return { ticks: () => n, stop: () => void (on = false) };
}

const gates: Int32Array[] = [];
afterEach(() => {
  // let a held writer go (the relay's close waits for its writer)
  for (const g of gates.splice(0)) {
    Atomics.store(g, 0, 0);
    Atomics.notify(g, 0);
  }
});

async function heldRelay() {
  const gate = new Int32Array(new SharedArrayBuffer(8));
  gates.push(gate);
  const t = await startRelay({}, { relay: { eventRing: 100, history: { flushMs: 20, writerGate: gate.buffer as SharedArrayBuffer } } });
  const admin = await t.admin();
  // the writer thread is running (started by a first batch, stored) before it is held
  t.relay.bus.emit({ kind: 'connect', sessionId: 'first', ip: '192.0.2.1', port: 25 });
  await waitFor(() => t.relay.history.query({ limit: 1 }).events.length > 0, 'a first stored event', 10_000);
  Atomics.store(gate, 0, 1);
  const firstMarker = t.relay.bus.lastId + 1;
  for (let i = 0; i < MARKERS; i++) t.relay.bus.emit({ kind: 'connect', sessionId: `marker${i}`, ip: '198.51.100.77', port: 1000 + i });
  void t.relay.history.storedEvents; // hands them to the writer
  // the writer holds the batch with the markers (or one before it): they are not stored
  await waitFor(() => Atomics.load(gate, 1) > 0, 'the writer to hold a batch', 10_000);
  const release = () => {
    Atomics.store(gate, 0, 0);
    Atomics.notify(gate, 0);
  };
  return { t, admin, release, firstMarker };
}

describe('history reads wait for the writer thread without holding the event loop', () => {
  it('events.query: an SMTP transaction completes while it waits; its answer holds the events recorded before it', async () => {
    const { t, admin, release, firstMarker } = await heldRelay();
    const tick = ticker();
    try {
      let answered = false;
      const q = admin.call('events.query', { ip: '198.51.100.77', order: 'asc', limit: 1000 }, 30_000).then((r) => {
        answered = true;
        return r;
      });
      // the relay has read the query (frames of one connection are read in order) and started it
      await admin.call('config.history', { limit: 1 }, 30_000);
      const before = tick.ticks();
      const mail = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.12' });
      expect(mail.data?.code).toBe(250);
      expect(answered, 'the query was answered before the SMTP transaction could complete: the event loop was held').toBe(false);
      expect(tick.ticks()).toBeGreaterThan(before);
      release();
      const r = await q;
      expect(r.events.map((e) => e.id)).toEqual(Array.from({ length: MARKERS }, (_, i) => firstMarker + i));
    } finally {
      tick.stop();
      release();
    }
  });

  it('events.subscribe reading its backlog from the history: same', async () => {
    const { t, admin, release, firstMarker } = await heldRelay();
    const tick = ticker();
    try {
      let answered = false;
      const sub = admin.call('events.subscribe', { sinceId: firstMarker - 1, filter: { ip: '198.51.100.77' } }, 30_000).then((r) => {
        answered = true;
        return r;
      });
      await admin.call('config.history', { limit: 1 }, 30_000);
      const before = tick.ticks();
      const mail = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.13' });
      expect(mail.data?.code).toBe(250);
      expect(answered, 'the subscribe was answered before the SMTP transaction could complete: the event loop was held').toBe(false);
      expect(tick.ticks()).toBeGreaterThan(before);
      release();
      const r = await sub;
      expect(r.truncated).toBe(false);
      expect(r.backlog.map((e) => e.id)).toEqual(Array.from({ length: MARKERS }, (_, i) => firstMarker + i));
    } finally {
      tick.stop();
      release();
    }
  });

  it('policy.simulate: same', async () => {
    const { t, admin, release } = await heldRelay();
    const { config } = await admin.call('config.get', {});
    const tick = ticker();
    try {
      let answered = false;
      const sim = admin.call('policy.simulate', { config, hours: 1 }, 30_000).then((r) => {
        answered = true;
        return r;
      });
      await admin.call('config.history', { limit: 1 }, 30_000);
      const before = tick.ticks();
      const mail = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.14' });
      expect(mail.data?.code).toBe(250);
      expect(answered, 'the simulation was answered before the SMTP transaction could complete: the event loop was held').toBe(false);
      expect(tick.ticks()).toBeGreaterThan(before);
      release();
      // the markers and the first event: connections of sessions that never disconnected, all replayed
      expect((await sim).replayed.connections).toBeGreaterThanOrEqual(MARKERS + 1);
    } finally {
      tick.stop();
      release();
    }
  });
});
