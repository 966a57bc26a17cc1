/**
 * The console core (main/core) with a reset pending while its management connection drops between auth.login and
 * events.subscribe, against real relays and their real wss channel. The views must get exactly one start-over (the
 * batch marked reset) and then the new stream, complete: no event of the old stream mixed in, none of the new one lost
 * or repeated, whichever way the reset came (a switch to another relay, or a relay back with a fresh history). And
 * the old relay's batch that was still on its way at a switch does not pass for the new relay's.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectionState, EventBatch } from '../shared/console-api.ts';
import type { RelayEvent } from '../shared/events.ts';
import { ConsoleCore } from '../main/core/console-core.ts';
import { memoryJson } from '../main/core/json-file.ts';
import type { Timers } from '../main/core/ports.ts';
import { LiveStore } from '../renderer/src/state/live.ts';
import { Relay } from '../relay/relay.ts';
import { testSecretStore } from './e2e/harness.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import { RawSmtp } from './helpers/smtp-client.ts';
import { waitFor } from './helpers/wait.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The queue's fake clock with the jitter the console's Timers ask for: the retry fires only when a test says so. */
class ConsoleClock extends FakeClock implements Timers {
  random = (): number => 0.5;
}

/** A relay of its own (fresh data dir), removed after the test; restart() keeps its ports and may change its files. */
async function ownRelay() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-core-reset-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ checks: { reverseDns: { mode: 'off' }, senderDomain: { mode: 'off' } } }));
  const start = (managePort = 0) => Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', manageListen: `127.0.0.1:${managePort}`, log: () => {} });
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
    /** stop, drop the event history (a fresh one: a new historyId, ids from 1 again), start on the same port */
    async restartWithFreshHistory() {
      const port = current.manageAddress.port;
      await current.stop();
      for (const f of ['history.sqlite', 'history.sqlite-wal', 'history.sqlite-shm']) fs.rmSync(path.join(dir, f), { force: true });
      current = await start(port);
    },
  };
}
type OwnRelay = Awaited<ReturnType<typeof ownRelay>>;

/**
 * A TCP proxy in front of a relay's management port that, once armed, cuts the connection (both sides) between the
 * console's auth.login and its events.subscribe. The wss stream is TLS, so it tells them apart by the relay's state:
 * after sending auth.login the core sends nothing until the answer, then events.subscribe at once; so the first bytes
 * from the console after the relay counts the session as logged in are the subscribe, and they never reach the relay.
 */
async function cutAfterLoginProxy(target: () => Relay) {
  let armed = false;
  /** what the relay had at the cut: a logged-in session and no subscription */
  const cuts: { authenticated: number; subscribed: number }[] = [];
  const pipes = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(target().manageAddress.port, '127.0.0.1');
    pipes.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pipes.delete(client);
      pipes.delete(upstream);
    };
    client.on('data', (d) => {
      const manage = target().manage!;
      if (armed && manage.authenticatedCount() > 0) {
        armed = false;
        cuts.push({ authenticated: manage.authenticatedCount(), subscribed: manage.subscribedSessions });
        end();
        return;
      }
      upstream.write(d);
    });
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
    /** cut the next connection that logs in, at its subscribe */
    arm() {
      armed = true;
    },
    cuts,
  };
}

/** A TCP proxy that can hold back what the relay sends (buffered, in order) and release it later: a slow link. */
async function holdingProxy(targetPort: number) {
  let holding = false;
  const held: Array<() => void> = [];
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
    upstream.on('data', (d) => (holding ? held.push(() => client.write(d)) : client.write(d)));
    // a close from the relay waits behind what is held, like its data
    upstream.on('end', () => (holding ? held.push(() => client.end()) : client.end()));
    client.on('close', end).on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => {
    for (const s of pipes) s.destroy();
    return new Promise<void>((r) => proxy.close(() => r()));
  });
  return {
    port: (proxy.address() as net.AddressInfo).port,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const f of held.splice(0)) f();
    },
    get heldChunks() {
      return held.length;
    },
  };
}

function newCore(clock: ConsoleClock) {
  const core = new ConsoleCore({
    secrets: testSecretStore(),
    files: { profiles: memoryJson() as never, knownHosts: memoryJson() as never },
    connection: { backoffBaseMs: 50, backoffMaxMs: 300, heartbeatMs: 15_000, callTimeoutMs: 3000, timers: clock },
  });
  const batches: EventBatch[] = [];
  // the renderer's live store, fed as the app feeds it, frames applied at once
  const store = new LiveStore(10_000, { request: (fn) => fn() });
  core.on('events', (b) => {
    batches.push(b as EventBatch);
    store.ingest(b as EventBatch);
  });
  cleanups.push(() => core.connection.disconnect());
  return { core, batches, store };
}

const status = (core: ConsoleCore) => core.connection.state.status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function traffic(r: OwnRelay, ip: string): Promise<void> {
  const c = await RawSmtp.connect(r.relay.smtpAddress.port, { localAddress: ip });
  await c.hello();
  await c.quit();
}

/** every event the relay has stored, oldest first (its writer thread flushed first) */
function stored(r: OwnRelay): RelayEvent[] {
  r.relay.history.flush();
  return r.relay.history.query({ order: 'asc', limit: 10_000 }).events;
}

const ids = (events: RelayEvent[]) => events.map((e) => e.id);
const ipsOf = (events: RelayEvent[]) => new Set(events.map((e) => e.ip));

describe('a drop between login and subscribe while a reset is pending', () => {
  it('switching to another relay: one empty reset batch at the switch, then all of the new relay\'s events once, none of the old one\'s', async () => {
    const a = await ownRelay();
    const b = await ownRelay();
    const proxy = await cutAfterLoginProxy(() => b.relay);
    const clock = new ConsoleClock();
    const { core, batches, store } = newCore(clock);
    const pa = (await core.invoke('profiles.save', [{ name: 'a', host: '127.0.0.1', port: a.relay.manageAddress.port, token: a.token }])) as { id: string };
    const pb = (await core.invoke('profiles.save', [{ name: 'b', host: '127.0.0.1', port: proxy.port, token: b.token }])) as { id: string };
    // b has events of its own before the console sees it (its ids overlap a's)
    await traffic(b, '127.0.0.61');
    expect(((await core.invoke('connection.acceptFingerprint', [pa.id, a.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await traffic(a, '127.0.0.60');
    await waitFor(() => store.toArray().some((e) => e.ip === '127.0.0.60' && e.kind === 'disconnect'), "a's events", 5000);
    // more of a's traffic, its batch still on its way (the relay sends every 100 ms) when the console switches
    await traffic(a, '127.0.0.62');

    const mark = batches.length;
    proxy.arm();
    const cutState = (await core.invoke('connection.acceptFingerprint', [pb.id, b.relay.identity.fingerprint256])) as ConnectionState;
    // cut where it should be: b took the login, never the subscribe; the core was still logging in, and will retry
    expect(proxy.cuts).toEqual([{ authenticated: 1, subscribed: 0 }]);
    expect(cutState.status).toBe('reconnecting');
    expect(cutState.relay).toBeNull();
    // the views dropped a's events at the switch, and hold nothing of b yet
    expect(batches.slice(mark)).toEqual([{ events: [], reset: true }]);
    expect(store.size).toBe(0);

    // b logs more while the console is away; then the retry (on the fake clock) comes back
    await traffic(b, '127.0.0.63');
    await waitFor(() => b.relay.manage!.authenticatedCount() === 0, 'b sees the cut session closed', 5000);
    expect(clock.fireNext()).toBe(true);
    await waitFor(() => status(core) === 'connected', 'connected to b after the retry', 10_000);
    await waitFor(() => store.toArray().some((e) => e.ip === '127.0.0.63' && e.kind === 'disconnect'), 'what b logged meanwhile', 5000);
    // and live traffic from there
    await traffic(b, '127.0.0.64');
    await waitFor(() => store.toArray().some((e) => e.ip === '127.0.0.64' && e.kind === 'disconnect'), "b's live events", 5000);
    await sleep(150);

    const after = batches.slice(mark);
    const events = after.flatMap((x) => x.events);
    // exactly one start-over, the empty batch at the switch; the rest continue it
    expect(after[0]).toEqual({ events: [], reset: true });
    expect(after.slice(1).some((x) => x.reset)).toBe(false);
    expect(store.streamResets).toBe(1);
    // nothing of a's (its late batch included) after the switch
    expect([...ipsOf(events)].filter((ip) => ip === '127.0.0.60' || ip === '127.0.0.62')).toEqual([]);
    // every event b stored, once each, in order: its backlog from before, what came during the drop, the live ones
    const all = stored(b);
    expect(ipsOf(all)).toEqual(new Set(['127.0.0.61', '127.0.0.63', '127.0.0.64']));
    expect(ids(events)).toEqual(ids(all));
    expect(ids(store.toArray())).toEqual(ids(all));
  });

  it('a relay back with a fresh history: the drop keeps the reset pending, and the retry\'s backlog carries it, once', async () => {
    const r = await ownRelay();
    const proxy = await cutAfterLoginProxy(() => r.relay);
    const clock = new ConsoleClock();
    const { core, batches, store } = newCore(clock);
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: proxy.port, token: r.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await traffic(r, '127.0.0.70');
    await waitFor(() => store.toArray().some((e) => e.ip === '127.0.0.70' && e.kind === 'disconnect'), 'the old history\'s events', 5000);
    const seen = Math.max(...ids(store.toArray()));

    await r.restartWithFreshHistory();
    await waitFor(() => status(core) === 'reconnecting', 'the core notices the relay is gone', 5000);
    // the fresh history logs past the console's last id before the console is back (ids alone cannot tell)
    while (r.relay.bus.lastId <= seen + 2) await traffic(r, '127.0.0.71');
    const mark = batches.length;
    // the retry logs in, learns of the fresh history (a reset is now pending), and loses the link at its subscribe
    proxy.arm();
    expect(clock.fireNext()).toBe(true);
    await waitFor(() => proxy.cuts.length === 1 && status(core) === 'reconnecting', 'the cut at the subscribe', 5000);
    expect(proxy.cuts).toEqual([{ authenticated: 1, subscribed: 0 }]);
    // nothing was sent to the views meanwhile: they still show the old stream, to be dropped with the new one's first batch
    expect(batches.slice(mark)).toEqual([]);

    await traffic(r, '127.0.0.72');
    await waitFor(() => r.relay.manage!.authenticatedCount() === 0, 'the relay sees the cut session closed', 5000);
    expect(clock.fireNext()).toBe(true);
    await waitFor(() => status(core) === 'connected', 'connected after the retry', 10_000);
    await traffic(r, '127.0.0.73');
    await waitFor(() => store.toArray().some((e) => e.ip === '127.0.0.73' && e.kind === 'disconnect'), 'live events of the new stream', 5000);
    await sleep(150);

    const after = batches.slice(mark);
    const events = after.flatMap((x) => x.events);
    // one start-over: the first batch, the new history's backlog from its first event
    expect(after[0]!.reset).toBe(true);
    expect(after[0]!.resync).toBe(true);
    expect(after.slice(1).some((x) => x.reset)).toBe(false);
    expect(store.streamResets).toBe(1);
    // the new history, all of it, once each, in order; nothing of the old
    const all = stored(r);
    expect(all[0]!.id).toBeLessThanOrEqual(seen);
    expect(ipsOf(all).has('127.0.0.70')).toBe(false);
    expect(ids(events)).toEqual(ids(all));
    expect(store.toArray()).toEqual(events);
    expect(ipsOf(store.toArray()).has('127.0.0.70')).toBe(false);
  });
});

describe('the old relay after a switch', () => {
  it("the old relay's batch that arrives late, on the socket being closed, is not taken for the new relay's (same subscription id)", async () => {
    const a = await ownRelay();
    const b = await ownRelay();
    const slow = await holdingProxy(a.relay.manageAddress.port);
    const clock = new ConsoleClock();
    const { core, batches, store } = newCore(clock);
    const pa = (await core.invoke('profiles.save', [{ name: 'a', host: '127.0.0.1', port: slow.port, token: a.token }])) as { id: string };
    const pb = (await core.invoke('profiles.save', [{ name: 'b', host: '127.0.0.1', port: b.relay.manageAddress.port, token: b.token }])) as { id: string };
    const subscription = () => (core.connection as unknown as { subscriptionId: string | null }).subscriptionId;
    expect(((await core.invoke('connection.acceptFingerprint', [pa.id, a.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    const onA = subscription();
    // a's link gets slow: its next batch is on the way when the console switches
    slow.hold();
    await traffic(a, '127.0.0.80');
    await waitFor(() => slow.heldChunks > 0, "a's batch sent (and held on the way)", 5000);
    const mark = batches.length;
    expect(((await core.invoke('connection.acceptFingerprint', [pb.id, b.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    // each relay numbers its sessions and subscriptions alike: b's is the one a's was
    expect(subscription()).toBe(onA);
    // a's batch arrives now, before a's answer to the close
    slow.release();
    await traffic(b, '127.0.0.81');
    await waitFor(() => store.toArray().some((e) => e.ip === '127.0.0.81' && e.kind === 'disconnect'), "b's events", 5000);
    await sleep(150);
    const events = batches.slice(mark).flatMap((x) => x.events);
    expect(ipsOf(events).has('127.0.0.80')).toBe(false);
    expect(ids(events)).toEqual(ids(stored(b)));
    expect(ids(store.toArray())).toEqual(ids(stored(b)));
  });
});
