/**
 * A reconnect after more happened than the relay sends at once: events.subscribe's backlog holds at most the newest
 * `backlogMax` (10,000) events since the console's last id (`truncated` when cut). The console core (main/core),
 * against a real relay and its real wss channel behind a proxy that cuts the link, must say which stretch of the
 * stream the backlog left out (ids and times), the renderer's live store must keep it with the stream it belongs to,
 * and the live view's words must name it, with the limit the relay told. A reconnect whose backlog was not cut says
 * nothing of the kind.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectionState, EventBatch, EventGap } from '../shared/console-api.ts';
import type { RelayEvent } from '../shared/events.ts';
import { ConsoleCore } from '../main/core/console-core.ts';
import { memoryJson } from '../main/core/json-file.ts';
import type { Timers } from '../main/core/ports.ts';
import { LiveStore } from '../renderer/src/state/live.ts';
import { gapNotice } from '../renderer/src/state/gaps.ts';
import { fmtTime } from '../renderer/src/components/format.ts';
import { backlogGaps } from '../main/core/connection.ts';
import { Relay, type RelayOptions } from '../relay/relay.ts';
import { testSecretStore } from './e2e/harness.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import { waitFor } from './helpers/wait.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The queue's fake clock with the jitter the console's Timers ask for: the retry fires only when a test says so. */
class ConsoleClock extends FakeClock implements Timers {
  random = (): number => 0.5;
}

/** A relay of its own (fresh data dir), removed after the test; restart() keeps its files (its history) and ports. */
async function ownRelay(manageLimits?: RelayOptions['manageLimits']) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-core-gaps-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ checks: { reverseDns: { mode: 'off' }, senderDomain: { mode: 'off' } } }));
  const start = (managePort = 0) => Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', manageListen: `127.0.0.1:${managePort}`, log: () => {}, manageLimits });
  let current = await start();
  cleanups.push(async () => {
    await current.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    token: fs.readFileSync(path.join(dir, 'admin-token'), 'utf8').trim(),
    get relay() {
      return current;
    },
    async restart() {
      const port = current.manageAddress.port;
      await current.stop();
      current = await start(port);
    },
  };
}
type OwnRelay = Awaited<ReturnType<typeof ownRelay>>;

/** A TCP proxy in front of a relay's management port; cut() drops every connection through it (both sides). */
async function cuttingProxy(targetPort: number) {
  const pipes = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    pipes.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pipes.delete(client);
      pipes.delete(upstream);
    };
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => client.write(d));
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => {
    for (const s of pipes) s.destroy();
    return new Promise<void>((r) => proxy.close(() => r()));
  });
  return {
    port: (proxy.address() as net.AddressInfo).port,
    cut() {
      for (const s of pipes) s.destroy();
    },
  };
}

function newCore(clock: ConsoleClock) {
  const core = new ConsoleCore({
    secrets: testSecretStore(),
    files: { profiles: memoryJson() as never, knownHosts: memoryJson() as never },
    connection: { backoffBaseMs: 50, backoffMaxMs: 300, heartbeatMs: 15_000, callTimeoutMs: 10_000, timers: clock },
  });
  const batches: EventBatch[] = [];
  // the renderer's live store, fed as the app feeds it (its default cap), frames applied at once
  const store = new LiveStore(undefined, { request: (fn) => fn() });
  core.on('events', (b) => {
    batches.push(b as EventBatch);
    store.ingest(b as EventBatch);
  });
  cleanups.push(() => core.connection.disconnect());
  return { core, batches, store };
}

const status = (core: ConsoleCore) => core.connection.state.status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** n events on the relay's own bus (the volume of a busy relay without an SMTP load), in bursts a few ms apart */
async function emit(r: OwnRelay, n: number, ip: string): Promise<RelayEvent[]> {
  const out: RelayEvent[] = [];
  for (let i = 0; i < n; i++) {
    out.push(r.relay.bus.emit({ kind: 'connect', sessionId: `gap-${ip}-${i}`, ip, port: 1000 + (i % 60000) }));
    if (i % 2500 === 2499) await sleep(5);
  }
  return out;
}

/** how the notice names the times on either side of a gap (one time when both fall in the same second) */
const span = (a: number, b: number) => (fmtTime(a) === fmtTime(b) ? `at ${fmtTime(a)}` : `from ${fmtTime(a)} to ${fmtTime(b)}`);

const lastId = (store: LiveStore) => store.toArray().at(-1)?.id ?? 0;

/** the link drops; what `meanwhile` does happens while the console is away; the core's retry then reconnects */
async function awayAndBack(core: ConsoleCore, clock: ConsoleClock, proxy: { cut(): void }, meanwhile: () => Promise<unknown>) {
  proxy.cut();
  await waitFor(() => status(core) === 'reconnecting', 'the core notices the drop', 5000);
  await meanwhile();
  expect(clock.fireNext()).toBe(true);
  await waitFor(() => status(core) === 'connected', 'connected again after the retry', 10_000);
}

/** One relay behind a cutting proxy, a console core connected to it through the proxy, and its first live events seen. */
async function connectedThroughProxy(name: string, ip: string, manageLimits?: RelayOptions['manageLimits']) {
  const r = await ownRelay(manageLimits);
  const proxy = await cuttingProxy(r.relay.manageAddress.port);
  const clock = new ConsoleClock();
  const { core, batches, store } = newCore(clock);
  const p = (await core.invoke('profiles.save', [{ name, host: '127.0.0.1', port: proxy.port, token: r.token }])) as { id: string };
  expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
  const before = await emit(r, 10, ip);
  await waitFor(() => lastId(store) === before.at(-1)!.id, 'the live events', 5000);
  return { r, proxy, clock, core, batches, store, seen: before.at(-1)! };
}

describe('a reconnect whose backlog the relay cut (more than 10,000 events while away)', () => {
  it('the core reports the stretch left out (ids and times), the store keeps it with its stream, the live view names it; a small backlog says nothing', async () => {
    const a = await ownRelay();
    const b = await ownRelay();
    const proxy = await cuttingProxy(a.relay.manageAddress.port);
    const clock = new ConsoleClock();
    const { core, batches, store } = newCore(clock);
    const pa = (await core.invoke('profiles.save', [{ name: 'a', host: '127.0.0.1', port: proxy.port, token: a.token }])) as { id: string };
    const pb = (await core.invoke('profiles.save', [{ name: 'b', host: '127.0.0.1', port: b.relay.manageAddress.port, token: b.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [pa.id, a.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    const before = await emit(a, 20, '127.0.0.90');
    await waitFor(() => lastId(store) === before.at(-1)!.id, 'the live events', 5000);

    // a normal reconnect: a few events while away, all of them in the backlog; nothing was left out
    let mark = batches.length;
    let few: RelayEvent[] = [];
    await awayAndBack(core, clock, proxy, async () => (few = await emit(a, 30, '127.0.0.91')));
    await waitFor(() => lastId(store) === few.at(-1)!.id, 'the small backlog', 5000);
    const small = batches.slice(mark).find((x) => x.resync)!;
    expect(small.events.map((e) => e.id)).toEqual(few.map((e) => e.id));
    expect(small.gaps).toBeUndefined();
    expect(store.lastCatchUp).toMatchObject({ events: 30 });
    expect(store.gaps).toEqual([]);

    // a long drop from a busy relay: 12,345 events meanwhile, the relay sends the newest 10,000
    const seen = store.toArray().at(-1)!;
    mark = batches.length;
    let away: RelayEvent[] = [];
    await awayAndBack(core, clock, proxy, async () => (away = await emit(a, 12_345, '127.0.0.92')));
    await waitFor(() => lastId(store) === away.at(-1)!.id, 'the cut backlog', 10_000);
    const replay = batches.slice(mark).find((x) => x.resync)!;
    expect(replay.events).toHaveLength(10_000);
    const firstShown = away[2345]!;
    expect(replay.events[0]).toEqual(firstShown);
    // left out: the 2,345 oldest events of the drop, between the last event the console had and the first it got
    // (the relay says how many it sends at most; the gap keeps the number for the words)
    const gap: EventGap = { afterId: seen.id, from: seen.at, beforeId: firstShown.id, to: firstShown.at, backlogMax: 10_000 };
    expect(replay.gaps).toEqual([gap]);
    expect(away[0]!.id).toBe(seen.id + 1);
    expect(gap.beforeId - gap.afterId - 1).toBe(2345);
    // the store keeps it, next to the events on either side of it
    expect(store.gaps).toEqual([gap]);
    const held = store.toArray().map((e) => e.id);
    expect(held).toContain(seen.id);
    expect(held).not.toContain(seen.id + 1);
    expect(held).toContain(firstShown.id);
    expect(store.lastCatchUp).toMatchObject({ events: 10_000 });
    // what the live view says: the times on either side, and why
    const words = gapNotice(store.gaps[0]!, 7, firstShown.at);
    expect(words.whileAway).toBe(true);
    expect(words.text).toBe(
      `Events ${span(seen.at, firstShown.at)} are not shown here: more than 10,000 happened while the console was away, and the relay sends at most 10,000 when the console reconnects.`,
    );
    expect(words.where).toMatch(/relay's event history for 7 days/);
    expect(words.detail).toMatch(/^2,345 events \(ids #/);

    // live events after it leave the notice as it is
    const live = await emit(a, 5, '127.0.0.93');
    await waitFor(() => lastId(store) === live.at(-1)!.id, 'live events after the reconnect', 5000);
    expect(batches.slice(mark).filter((x) => x.gaps)).toHaveLength(1);
    expect(store.gaps).toEqual([gap]);

    // another relay: a's notice goes with a's stream; b's first backlog, cut too, leaves out b's older events
    const bOld = await emit(b, 10_050, '127.0.0.94');
    mark = batches.length;
    expect(((await core.invoke('connection.acceptFingerprint', [pb.id, b.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await waitFor(() => lastId(store) === bOld.at(-1)!.id, "b's backlog", 10_000);
    const bFirst = batches.slice(mark).find((x) => x.resync)!;
    expect(bFirst.events[0]).toEqual(bOld[50]);
    expect(bFirst.gaps).toEqual([{ afterId: 0, from: null, beforeId: bOld[50]!.id, to: bOld[50]!.at, backlogMax: 10_000 }]);
    expect(store.streamResets).toBe(1);
    expect(store.gaps).toEqual(bFirst.gaps);
    const first = gapNotice(store.gaps[0]!, null, bOld[50]!.at);
    expect(first.whileAway).toBe(false);
    expect(first.text).toBe(`Events before ${fmtTime(bOld[50]!.at)} are not shown here: the relay sends at most its newest 10,000 when the console connects.`);
  });

  it('a relay restarted while the console was away sends part of its history and then its memory: every event left out is in a reported gap', async () => {
    const { r, proxy, clock, core, batches, store, seen } = await connectedThroughProxy('edge', '127.0.0.95');
    const mark = batches.length;
    // away: 15,000 events, a restart (the relay's memory starts empty, its history goes on), 100 more
    let all: RelayEvent[] = [];
    await awayAndBack(core, clock, proxy, async () => {
      const old = await emit(r, 15_000, '127.0.0.96');
      await r.restart();
      all = [...old, ...(await emit(r, 100, '127.0.0.97'))];
    });
    await waitFor(() => lastId(store) === all.at(-1)!.id, 'the backlog', 10_000);
    const replay = batches.slice(mark).find((x) => x.resync)!;
    expect(replay.events.length).toBe(10_000);
    const gaps = replay.gaps!;
    // the relay sends the newest 10,000 in one piece, its memory (empty after the restart, then the 100) counting
    // first and its history below it read back from there: one gap, the oldest 5,100 of the drop
    expect(replay.events.map((e) => e.id)).toEqual(all.slice(-10_000).map((e) => e.id));
    expect(gaps).toEqual([{ afterId: seen.id, from: seen.at, beforeId: all.at(-10_000)!.id, to: all.at(-10_000)!.at, backlogMax: 10_000 }]);
    // (older relays read their history forward from the console's last id, leaving a hole inside the backlog; the
    // console's gaps cover any such hole too.) Every event of the drop is either in the backlog or in exactly one gap,
    // and each gap is named by the events on either side of it (the one before: the console's last, or one of the backlog)
    const shown = new Set(replay.events.map((e) => e.id));
    const byId = new Map([seen, ...all].map((e) => [e.id, e]));
    for (const e of all) {
      const inGaps = gaps.filter((g) => e.id > g.afterId && e.id < g.beforeId).length;
      expect(shown.has(e.id) ? 0 : 1).toBe(inGaps);
    }
    for (const g of gaps) {
      expect(g.from).toBe(byId.get(g.afterId)!.at);
      expect(g.to).toBe(byId.get(g.beforeId)!.at);
      expect(g.afterId === seen.id || shown.has(g.afterId)).toBe(true);
      expect(shown.has(g.beforeId)).toBe(true);
    }
    expect(store.gaps).toEqual(gaps);
  });
  it('the words use the limit the relay told (events.subscribe backlogMax), not a number of the console\'s own', async () => {
    // a relay that sends at most 500 at once
    const { r, proxy, clock, core, batches, store, seen } = await connectedThroughProxy('small', '127.0.0.98', { backlogMax: 500 });
    const mark = batches.length;
    let away: RelayEvent[] = [];
    await awayAndBack(core, clock, proxy, async () => (away = await emit(r, 1234, '127.0.0.99')));
    await waitFor(() => lastId(store) === away.at(-1)!.id, 'the cut backlog', 10_000);
    const replay = batches.slice(mark).find((x) => x.resync)!;
    expect(replay.events.map((e) => e.id)).toEqual(away.slice(-500).map((e) => e.id));
    const firstShown = away.at(-500)!;
    expect(replay.gaps).toEqual([{ afterId: seen.id, from: seen.at, beforeId: firstShown.id, to: firstShown.at, backlogMax: 500 }]);
    const words = gapNotice(store.gaps[0]!, 7, firstShown.at);
    expect(words.text).toBe(
      `Events ${span(seen.at, firstShown.at)} are not shown here: more than 500 happened while the console was away, and the relay sends at most 500 when the console reconnects.`,
    );
    expect(words.detail).toMatch(/^734 events \(ids #/);
    // a relay that does not say (older than the field): the gaps carry no number, and the words fall back to 10,000
    const told = backlogGaps(seen.id, seen.at, replay.events, 500);
    const untold = backlogGaps(seen.id, seen.at, replay.events);
    expect(told).toEqual(replay.gaps);
    expect(untold).toEqual([{ afterId: seen.id, from: seen.at, beforeId: firstShown.id, to: firstShown.at }]);
    expect(gapNotice(untold[0]!, 7, firstShown.at).text).toMatch(/more than 10,000 happened while the console was away, and the relay sends at most 10,000 when/);
  });
});
