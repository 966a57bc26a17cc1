/**
 * The console tryout of session 12, finding 10: after a kill -9 and a restart of the relay, Live traffic just went on
 * (19:00:37 deferred, then 19:01:18 connect) with nothing to say the console had been away, or that the relay had
 * restarted meanwhile, which is why its per-IP counters and blocks were gone. Now the resync batch of a reconnect to the
 * same stream carries the break (EventBatch.away: from, to, and the relay's new start time when it restarted), the
 * live store keeps it, and the live view says it in words.
 *
 * A real relay (restarted on its data directory and manage port), a TCP forwarder that drops the console's connection
 * without a word, the console core on a fake clock, and the renderer's own store fed as the app feeds it.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ConnectionState, EventBatch } from '../shared/console-api.ts';
import { LiveStore, MAX_BREAKS } from '../renderer/src/state/live.ts';
import { breakNotice } from '../renderer/src/state/gaps.ts';
import { fmtTime } from '../renderer/src/components/format.ts';
import { type ConsoleClock, consoleConnectionFixtures } from './helpers/console-connection.ts';
import { waitFor } from './helpers/wait.ts';

const { cleanups, ownRelay, newCore } = consoleConnectionFixtures();

/** A forwarder to the relay whose drop() ends the connections under way (no close handshake) and keeps listening. */
async function forwarder(target: number) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((a) => {
    const b = net.connect(target, '127.0.0.1');
    for (const [x, y] of [[a, b], [b, a]] as const) {
      sockets.add(x);
      x.on('error', () => y.destroy());
      x.on('close', () => {
        sockets.delete(x);
        y.destroy();
      });
    }
    a.pipe(b);
    b.pipe(a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return {
    port: (server.address() as net.AddressInfo).port,
    drop: () => {
      for (const s of sockets) s.resetAndDestroy();
    },
  };
}

async function connected(port: number, r: { token: string; fp: string }) {
  const c = newCore();
  const batches: EventBatch[] = [];
  const store = new LiveStore(1000, { request: (fn) => fn() });
  c.core.on('events', (b) => {
    batches.push(b as EventBatch);
    store.ingest(b as EventBatch);
  });
  const p = await c.save({ name: 'Edge relay', host: '127.0.0.1', port, token: r.token });
  expect(((await c.core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState).status).toBe('connected');
  return { ...c, batches, store };
}

/** let retries run until the console is connected again */
async function backAgain(clock: ConsoleClock, state: () => ConnectionState): Promise<void> {
  await waitFor(() => state().status === 'reconnecting', 'the break noticed', 5000);
  await waitFor(() => {
    if (state().status === 'connected') return true;
    clock.advance(500);
    return false;
  }, 'the console back', 10_000);
}

describe('Live traffic marks the time the console was away (finding 10)', () => {
  it('the relay restarted meanwhile: the resync batch says from when to when, and when the relay started again', async () => {
    const r = await ownRelay();
    const c = await connected(r.port, r);
    const lostAt = c.clock.now();
    const before = c.batches.length;
    const next = r.restart();
    await backAgain(c.clock, c.state);
    const restarted = await next;
    const away = c.batches.slice(before).find((b) => b.away)?.away;
    expect(away).toEqual({ from: lostAt, to: expect.any(Number), restartedAt: expect.any(Number) });
    expect(away!.to).toBeGreaterThanOrEqual(away!.from);
    // (the relay's start is on the real clock, the console's times on the test's fake one: only its presence is checked)
    expect(away!.restartedAt).toBeGreaterThan(0);
    expect(restarted.manageAddress.port).toBe(r.port);
    expect(c.store.breaks).toEqual([away]);
    expect(breakNotice(away!, away!.to)).toMatch(/^Not connected to the relay from .+ to .+: the relay restarted at .+\. Its per-IP counters and blocks started afresh/);
  });

  it('a connection dropped and back, the relay still the same: the break without a restart', async () => {
    const r = await ownRelay();
    const fw = await forwarder(r.port);
    const c = await connected(fw.port, r);
    const before = c.batches.length;
    fw.drop();
    await backAgain(c.clock, c.state);
    const batch = c.batches.slice(before).find((b) => b.away);
    expect(batch).toMatchObject({ resync: true, away: { restartedAt: null } });
    expect(batch!.reset).toBeUndefined();
    expect(c.store.breaks).toHaveLength(1);
    expect(breakNotice(batch!.away!, batch!.away!.to)).toMatch(/^Not connected to the relay from \S+ to \S+; the events of that time are below, caught up from its history\.$/);
  });
});

describe('the live store and the words', () => {
  it('keeps the newest breaks of its stream; another stream (reset) drops them', () => {
    const store = new LiveStore(100, { request: (fn) => fn() });
    const t0 = Date.UTC(2026, 10, 29, 19, 0, 0);
    for (let i = 0; i < MAX_BREAKS + 2; i++) store.ingest({ events: [], resync: true, away: { from: t0 + i * 60_000, to: t0 + i * 60_000 + 5000, restartedAt: null } });
    expect(store.breaks.map((b) => b.from)).toEqual(Array.from({ length: MAX_BREAKS }, (_, i) => t0 + (i + 2) * 60_000));
    // a break on a batch that starts another stream is no break of this one
    store.ingest({ events: [], resync: true, reset: true, away: { from: t0, to: t0 + 1, restartedAt: null } });
    expect(store.breaks).toEqual([]);
  });

  it('says when, in the console\'s local time, and what a restart took with it', () => {
    const t = Date.UTC(2026, 10, 29, 19, 0, 43);
    expect(breakNotice({ from: t, to: t + 23_000, restartedAt: t + 20_000 }, t + 30_000)).toBe(
      `Not connected to the relay from ${fmtTime(t)} to ${fmtTime(t + 23_000)}: the relay restarted at ${fmtTime(t + 20_000)}. ` +
        "Its per-IP counters and blocks started afresh, and so did the Dashboard's figures; the events of that time are below, caught up from its history.",
    );
  });
});
