/**
 * The console's core (main/core) in plain Node against a real relay with its real wss management channel:
 * pin on first use, refuse a changed certificate without sending anything, reconnect and resync after the
 * relay restarts, survive a relay that stalls, and a bridge that only lets allow-listed operations through.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type WebSocket from 'ws';
import type { ConnectionState, EventBatch } from '../shared/console-api.ts';
import { ConsoleCore, BridgeFailure } from '../main/core/console-core.ts';
import { memoryJson } from '../main/core/json-file.ts';
import { LOCKED_OUT_RETRY_MS } from '../main/core/connection.ts';
import { PinError, openPinned } from '../main/core/pinned-socket.ts';
import type { Timers } from '../main/core/ports.ts';
import { Relay, type RelayOptions } from '../relay/relay.ts';
import { generateSelfSigned } from '../relay/tls/cert.ts';
import { testSecretStore } from './e2e/harness.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import { RawSmtp } from './helpers/smtp-client.ts';
import { waitFor } from './helpers/wait.ts';
import { WssClient } from './helpers/wss-client.ts';
import { ErrorCode } from '../shared/protocol.ts';
import { LiveStore } from '../renderer/src/state/live.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startRelay(dir?: string, managePort = 0, extra: Partial<RelayOptions> = {}): Promise<{ relay: Relay; dir: string; token: string }> {
  const d = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rw-core-'));
  if (!dir) {
    fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ checks: { reverseDns: { mode: 'off' }, senderDomain: { mode: 'off' } } }));
  }
  const relay = await Relay.start({ dataDir: d, smtpListen: '127.0.0.1:0', manageListen: `127.0.0.1:${managePort}`, log: () => {}, ...extra });
  return { relay, dir: d, token: fs.readFileSync(path.join(d, 'admin-token'), 'utf8').trim() };
}

/** The queue's fake clock with the jitter the console's Timers also ask for: time moves only when a test says so. */
class ConsoleClock extends FakeClock implements Timers {
  random = (): number => 0.5;
}

function newCore(opts: { heartbeatMs?: number; timers?: Timers } = {}) {
  const core = new ConsoleCore({
    secrets: testSecretStore(),
    files: { profiles: memoryJson() as never, knownHosts: memoryJson() as never },
    connection: { backoffBaseMs: 50, backoffMaxMs: 300, heartbeatMs: opts.heartbeatMs ?? 15_000, callTimeoutMs: 3000, timers: opts.timers },
  });
  const states: ConnectionState[] = [];
  const batches: EventBatch[] = [];
  core.on('state', (s) => states.push(s as ConnectionState));
  core.on('events', (b) => batches.push(b as EventBatch));
  cleanups.push(() => core.connection.disconnect());
  return { core, states, batches };
}

const status = (core: ConsoleCore) => core.connection.state.status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * An impostor: a TLS server with a certificate of its own on `port` (0: any free one), recording every byte it gets
 * after the handshake and counting handshakes; closed after the test.
 */
async function startImpostor(port: number): Promise<{ received: Buffer[]; handshakes: () => number; port: number; cert: string }> {
  const other = await generateSelfSigned('impostor.test');
  const received: Buffer[] = [];
  let handshakes = 0;
  const impostor = tls.createServer({ key: other.key, cert: other.cert }, (s) => {
    handshakes++;
    s.on('data', (d) => received.push(d));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => impostor.listen(port, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => impostor.close(() => r())));
  return { received, handshakes: () => handshakes, port: (impostor.address() as net.AddressInfo).port, cert: other.cert };
}

/** A TCP proxy in front of the relay's management port that can freeze (stop forwarding both ways) like a hung relay. */
async function freezableProxy(targetPort: number): Promise<{ port: number; freeze(on: boolean): void }> {
  let frozen = false;
  const pipes = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    pipes.add(client).add(upstream);
    client.on('data', (d) => !frozen && upstream.write(d));
    upstream.on('data', (d) => !frozen && client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
      pipes.delete(client);
      pipes.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => {
    for (const s of pipes) s.destroy();
    return new Promise<void>((r) => proxy.close(() => r()));
  });
  return { port: (proxy.address() as net.AddressInfo).port, freeze: (on) => (frozen = on) };
}

describe('console core against a real relay', () => {
  it('pins the certificate on first use: asks first, sends nothing, then connects once accepted', async () => {
    const { relay, dir, token } = await startRelay();
    cleanups.push(async () => {
      await relay.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const { core } = newCore();
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: relay.manageAddress.port, token }])) as { id: string };
    const first = (await core.invoke('connection.connect', [p.id])) as ConnectionState;
    expect(first.status).toBe('fingerprint-unknown');
    expect(first.certificate?.fingerprint256).toBe(relay.identity.fingerprint256);
    expect(first.message).toContain(relay.identity.fingerprint256);
    // not accepted yet: no session was logged in on the relay
    expect(relay.manage!.authenticatedCount()).toBe(0);
    const accepted = (await core.invoke('connection.acceptFingerprint', [p.id, relay.identity.fingerprint256])) as ConnectionState;
    expect(accepted.status).toBe('connected');
    expect(accepted.role).toBe('admin');
    const cfg = (await core.invoke('call', ['config.get', {}])) as { revision: number };
    expect(cfg.revision).toBeGreaterThan(0);
    // the next connect needs no prompt
    await core.invoke('connection.disconnect', []);
    expect(((await core.invoke('connection.connect', [p.id])) as ConnectionState).status).toBe('connected');
    expect(((await core.invoke('profiles.list', [])) as { fingerprint256: string }[])[0]!.fingerprint256).toBe(relay.identity.fingerprint256);
  });

  it('refuses a changed certificate as a hard stop, showing both fingerprints, before sending a single byte', async () => {
    const { relay, dir, token } = await startRelay();
    const port = relay.manageAddress.port;
    // the console's timers on a fake clock: a retry would be a timer armed (a status read after a real-time wait
    // could not tell: each retry meets the same certificate and ends in fingerprint-mismatch again)
    const clock = new ConsoleClock();
    const { core, states } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port, token }])) as { id: string };
    await core.invoke('connection.acceptFingerprint', [p.id, relay.identity.fingerprint256]);
    await core.invoke('connection.disconnect', []);
    await relay.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    // an impostor on the same address with another certificate, recording what it receives after the handshake
    const { received } = await startImpostor(port);
    const st = (await core.invoke('connection.connect', [p.id])) as ConnectionState;
    expect(st.status).toBe('fingerprint-mismatch');
    expect(st.pinnedFingerprint).toBe(relay.identity.fingerprint256);
    expect(st.certificate?.fingerprint256).not.toBe(relay.identity.fingerprint256);
    expect(st.message).toContain('CHANGED');
    await new Promise((r) => setTimeout(r, 200));
    expect(Buffer.concat(received).length).toBe(0);
    // no automatic retry from a mismatch: nothing armed, and nothing comes however long one waits
    expect(clock.nextAt()).toBeNull();
    const mark = states.length;
    clock.advance(3_600_000);
    await new Promise((r) => setTimeout(r, 400)); // a negative check: nothing is armed, so nothing may come
    expect(states.slice(mark).map((s) => s.status)).toEqual([]);
    expect(status(core)).toBe('fingerprint-mismatch');
  });

  it("never lets acceptFingerprint replace a pin: the impostor's fingerprint is refused with a message, nothing reaches it, the pin on disk stays", async () => {
    const { relay, dir, token } = await startRelay();
    const port = relay.manageAddress.port;
    const realFp = relay.identity.fingerprint256;
    // the console's files on disk, as in the app (known-hosts.json is what must not change)
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-core-pin-'));
    const core = new ConsoleCore({
      secrets: testSecretStore(),
      dataDir,
      connection: { backoffBaseMs: 50, backoffMaxMs: 300, callTimeoutMs: 3000, timers: new ConsoleClock() },
    });
    cleanups.push(async () => {
      await core.connection.disconnect();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port, token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, realFp])) as ConnectionState).status).toBe('connected');
    await core.invoke('connection.disconnect', []);
    await relay.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    const knownHostsFile = path.join(dataDir, 'known-hosts.json');
    const pinOnDisk = fs.readFileSync(knownHostsFile, 'utf8');
    expect(pinOnDisk).toContain(realFp);
    // an impostor on the same address with another certificate, recording every byte after the handshake
    const { received, handshakes } = await startImpostor(port);
    const st = (await core.invoke('connection.connect', [p.id])) as ConnectionState;
    expect(st.status).toBe('fingerprint-mismatch');
    const impostorFp = st.certificate!.fingerprint256;
    expect(impostorFp).not.toBe(realFp);
    const dialled = handshakes();
    // the bridge op any renderer code can call, with the certificate the impostor presents (any case)
    for (const fp of [impostorFp, impostorFp.toLowerCase()]) {
      const err = (await core.invoke('connection.acceptFingerprint', [p.id, fp]).catch((e: unknown) => e)) as BridgeFailure;
      expect(err).toBeInstanceOf(BridgeFailure);
      expect(err.payload).toMatchObject({ code: 'pinned', data: { pinned: realFp } });
      // words the Servers view can show as they are: what happened, that nothing was sent, and the only way on
      expect(err.payload.message).toContain(realFp);
      expect(err.payload.message).toMatch(/nothing was sent/i);
      expect(err.payload.message).toMatch(/forget the old fingerprint first/);
    }
    await sleep(300);
    // refused before dialling: no new handshake, not a byte (no upgrade request, no token)
    expect(handshakes()).toBe(dialled);
    expect(Buffer.concat(received).length).toBe(0);
    expect(status(core)).toBe('fingerprint-mismatch');
    expect(fs.readFileSync(knownHostsFile, 'utf8')).toBe(pinOnDisk);
    // the pinned fingerprint itself may still be "accepted" (the prompt's answer for the same certificate): it meets
    // the impostor's certificate, stops as a mismatch, and sends nothing either
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, realFp])) as ConnectionState).status).toBe('fingerprint-mismatch');
    await sleep(200);
    expect(Buffer.concat(received).length).toBe(0);
    expect(fs.readFileSync(knownHostsFile, 'utf8')).toBe(pinOnDisk);
    // the one way to another certificate: forget the pin, then accept on first contact
    await core.invoke('connection.forgetFingerprint', [p.id]);
    expect(((await core.invoke('connection.connect', [p.id])) as ConnectionState).status).toBe('fingerprint-unknown');
    expect(Buffer.concat(received).length).toBe(0);
  });

  it('openPinned checks an existing pin over any accepted fingerprint (the core, below the bridge)', async () => {
    const { received, port, cert } = await startImpostor(0);
    const impostorFp = new X509Certificate(cert).fingerprint256;
    const pinned = 'AA:'.repeat(31) + 'AA';
    const err = await openPinned({ host: '127.0.0.1', port, pinned, accept: impostorFp, timeoutMs: 3000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PinError);
    expect(err).toMatchObject({ kind: 'mismatch', pinned });
    await sleep(200);
    expect(Buffer.concat(received).length).toBe(0);
  });

  it('reconnects by itself after the relay restarts and resyncs the events it missed', async () => {
    const { relay, dir, token } = await startRelay();
    const port = relay.manageAddress.port;
    const { core, states, batches } = newCore();
    const configNotices: unknown[] = [];
    core.on('config', (c) => configNotices.push(c));
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port, token }])) as { id: string };
    await core.invoke('connection.acceptFingerprint', [p.id, relay.identity.fingerprint256]);
    const c1 = await RawSmtp.connect(relay.smtpAddress.port);
    await c1.hello();
    await c1.quit();
    await waitFor(() => batches.flatMap((b) => b.events).some((e) => e.kind === 'disconnect'), 'live events before the restart');
    await relay.stop();
    await waitFor(() => status(core) === 'reconnecting', 'the core notices the relay is gone');
    const restarted = await startRelay(dir, port);
    cleanups.push(async () => {
      await restarted.relay.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    // traffic on the restarted relay before the console is back
    const c2 = await RawSmtp.connect(restarted.relay.smtpAddress.port, { localAddress: '127.0.0.9' });
    await c2.hello();
    await c2.quit();
    await waitFor(() => status(core) === 'connected', 'connected again without anyone clicking', 10_000);
    await waitFor(() => batches.flatMap((b) => b.events).some((e) => e.kind === 'connect' && e.ip === '127.0.0.9'), 'the missed events after resync', 5000);
    expect(states.some((s) => s.status === 'reconnecting' && s.retryAt !== null)).toBe(true);
    expect(configNotices.length).toBeGreaterThan(0);
  });

  it('survives a relay that stalls: the heartbeat drops the dead link and it reconnects once the relay answers again', async () => {
    const { relay, dir, token } = await startRelay();
    cleanups.push(async () => {
      await relay.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const proxy = await freezableProxy(relay.manageAddress.port);
    const { core } = newCore({ heartbeatMs: 200 });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: proxy.port, token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    // the link the heartbeat watches: its pings, and who drops it
    const ws = (core.connection as unknown as { ws: WebSocket }).ws;
    const pings = vi.spyOn(ws, 'ping');
    // (the state when the socket is dropped: the heartbeat drops a link it still counts as connected)
    const statusAtDrop: string[] = [];
    const terminate = ws.terminate.bind(ws);
    const terminated = vi.spyOn(ws, 'terminate').mockImplementation(() => {
      statusAtDrop.push(status(core));
      terminate();
    });
    const pongs: number[] = [];
    ws.on('pong', () => pongs.push(Date.now()));
    await waitFor(() => pongs.length >= 1, 'the relay answers a heartbeat ping', 2000);
    const frozenAt = Date.now();
    proxy.freeze(true);
    await waitFor(() => status(core) === 'reconnecting' || status(core) === 'connecting', 'the stall is detected', 5000);
    const detectedMs = Date.now() - frozenAt;
    // the heartbeat found it: it pinged, got no pong, and terminated the socket itself, within two intervals (nothing
    // else notices a frozen link this soon: the calls wait 3 s, TCP itself minutes)
    expect(terminated).toHaveBeenCalledTimes(1);
    expect(statusAtDrop).toEqual(['connected']);
    const pingsBeforeDrop = pings.mock.invocationCallOrder.filter((o) => o < terminated.mock.invocationCallOrder[0]!);
    expect(pingsBeforeDrop.length).toBeGreaterThanOrEqual(1);
    expect(pongs.every((t) => t < frozenAt + 50)).toBe(true);
    expect(detectedMs).toBeLessThan(2 * 200 + 1000);
    expect(core.connection.state.message).toMatch(/connection to the relay was lost/);
    proxy.freeze(false);
    await waitFor(() => status(core) === 'connected', 'back after the stall', 10_000);
    // on a new socket, and working
    expect((core.connection as unknown as { ws: WebSocket }).ws).not.toBe(ws);
    // the relay holds this one session: the dropped one is gone on its side too
    const sessions = async () => ((await core.invoke('call', ['stats.get', {}])) as { manage: { sessions: number } }).manage.sessions;
    await expect.poll(sessions, { timeout: 3000 }).toBe(1);
  });

  it('stops on a refused token instead of hammering the relay, and says what to do', async () => {
    const { relay, dir } = await startRelay();
    cleanups.push(async () => {
      await relay.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    // the console's timers on a fake clock: a retry, however soon, would be a timer armed (a status read after a
    // real-time wait could not tell: each retry of a refused token ends in auth-failed again)
    const clock = new ConsoleClock();
    const { core, states } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: relay.manageAddress.port, token: 'rwt_wrong' }])) as { id: string };
    const st = (await core.invoke('connection.acceptFingerprint', [p.id, relay.identity.fingerprint256])) as ConnectionState;
    expect(st.status).toBe('auth-failed');
    expect(st.message).toMatch(/refused the token/);
    expect(clock.nextAt()).toBeNull();
    const mark = states.length;
    clock.advance(3_600_000);
    await sleep(300); // a negative check: nothing is armed, so nothing may come
    expect(states.slice(mark).map((s) => s.status)).toEqual([]);
    expect(status(core)).toBe('auth-failed');
  });
});

describe('console core on a fake clock (heartbeat, lockouts, revocation, disconnect)', () => {
  /** a relay of its own, removed after the test */
  async function ownRelay(extra: Partial<RelayOptions> = {}) {
    const r = await startRelay(undefined, 0, extra);
    let current = r.relay;
    cleanups.push(async () => {
      await current.stop();
      fs.rmSync(r.dir, { recursive: true, force: true });
    });
    return {
      ...r,
      get relay() {
        return current;
      },
      /**
       * stop, and start again on the same data directory and port (a new process would: fresh login guard);
       * `whileStopped` runs between the two (e.g. to remove the history)
       */
      async restart(whileStopped?: () => void) {
        const port = current.manageAddress.port;
        await current.stop();
        whileStopped?.();
        current = (await startRelay(r.dir, port, extra)).relay;
      },
    };
  }

  /** states pushed after index `from` */
  const since = (states: ConnectionState[], from: number) => states.slice(from).map((s) => s.status);

  it('runs the heartbeat on the injected timers: pings each interval, drops a link that stops answering, reconnects', async () => {
    const r = await ownRelay();
    const proxy = await freezableProxy(r.relay.manageAddress.port);
    const clock = new ConsoleClock();
    // a real-time interval of 15 s never fires within this test: only the fake clock can drive the heartbeat
    const { core, states } = newCore({ timers: clock, heartbeatMs: 15_000 });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: proxy.port, token: r.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    expect(clock.nextAt()).toBe(clock.now() + 15_000);
    const ws = (core.connection as unknown as { ws: WebSocket }).ws;
    let pongs = 0;
    ws.on('pong', () => pongs++);
    // a live relay answers every ping: the link stays up
    for (let i = 1; i <= 2; i++) {
      clock.advance(15_000);
      await waitFor(() => pongs === i, `pong ${i}`);
      expect(status(core)).toBe('connected');
    }
    // the relay hangs: one ping goes unanswered, and the next tick drops the link
    proxy.freeze(true);
    clock.advance(15_000);
    await sleep(100);
    expect(status(core)).toBe('connected');
    const mark = states.length;
    clock.advance(15_000);
    await waitFor(() => status(core) === 'reconnecting', 'the stalled link is dropped', 5000);
    expect(pongs).toBe(2);
    // the retry is on the fake clock too; once the relay answers again the console is back
    proxy.freeze(false);
    expect(clock.fireNext()).toBe(true);
    await waitFor(() => status(core) === 'connected', 'back after the stall', 10_000);
    expect(since(states, mark)).toEqual(['reconnecting', 'connecting', 'authenticating', 'connected']);
    expect(clock.nextAt()).toBe(clock.now() + 15_000);
    await core.invoke('connection.disconnect', []);
    expect(clock.nextAt()).toBeNull();
  });

  it('times out a call the relay does not answer on the injected timers: not before callTimeoutMs, at it', async () => {
    const r = await ownRelay();
    const proxy = await freezableProxy(r.relay.manageAddress.port);
    const clock = new ConsoleClock();
    // newCore's callTimeoutMs is 3 s; the heartbeat (15 s) stays out of the way
    const { core } = newCore({ timers: clock, heartbeatMs: 15_000 });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: proxy.port, token: r.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    proxy.freeze(true);
    let settled: unknown = null;
    const call = core.invoke('call', ['stats.get', {}]).then(
      (v) => (settled = { ok: v }),
      (e: unknown) => (settled = { err: e }),
    );
    // real time passes well beyond 3 s of nothing: only the fake clock may time the call out
    await sleep(300);
    clock.advance(2_999);
    await sleep(100);
    expect(settled).toBeNull();
    clock.advance(1);
    // at once, not 3 s of real time later
    await Promise.race([call, sleep(500)]);
    expect(settled).toMatchObject({ err: { payload: { message: expect.stringMatching(/did not answer stats\.get within 3 s/) } } });
    proxy.freeze(false);
    await core.invoke('connection.disconnect', []);
  });

  it('"connect now" during the countdown, to a relay that came back with a fresh history, asks the views to reload', async () => {
    const r = await ownRelay();
    // the automatic retry waits on the fake clock: the user's own connect comes first
    const clock = new ConsoleClock();
    const { core, batches } = newCore({ timers: clock });
    const notices: unknown[] = [];
    core.on('config', (c) => notices.push(c));
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    const c1 = await RawSmtp.connect(r.relay.smtpAddress.port, { localAddress: '127.0.0.13' });
    await c1.hello();
    await c1.quit();
    await waitFor(() => batches.flatMap((b) => b.events).some((e) => e.ip === '127.0.0.13' && e.kind === 'disconnect'), 'the first events');
    const oldDir = r.dir;
    await r.restart(() => {
      for (const f of ['history.sqlite', 'history.sqlite-wal', 'history.sqlite-shm']) fs.rmSync(path.join(oldDir, f), { force: true });
    });
    await waitFor(() => status(core) === 'reconnecting', 'the core notices the relay went away', 5000);
    expect(notices).toEqual([]);
    expect(((await core.invoke('connection.connect', [p.id])) as ConnectionState).status).toBe('connected');
    // the views drop the old stream (reset) and reload what they show from the relay (config notice)
    await waitFor(() => batches.some((b) => b.reset), 'a reset batch');
    await waitFor(() => notices.length === 1, 'a config notice');
    expect(notices[0]).toMatchObject({ by: 'resync', source: 'reconnect' });
  });

  it('ends in auth-failed when its token is revoked through the management API, with no reconnect loop', async () => {
    const r = await ownRelay();
    const admin = await WssClient.connect(r.relay.manageAddress.port, r.relay.identity.fingerprint256);
    cleanups.push(() => admin.close());
    await admin.login(r.token);
    const laptop = await admin.call('tokens.create', { name: 'laptop', role: 'admin' });
    const clock = new ConsoleClock();
    const { core, states } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: r.relay.manageAddress.port, token: laptop.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    expect(r.relay.manage!.authenticatedCount()).toBe(2);
    const mark = states.length;
    expect(await admin.call('tokens.revoke', { name: 'laptop' })).toEqual({ closedSessions: 1 });
    await waitFor(() => status(core) === 'auth-failed', 'auth-failed after the revocation', 5000);
    expect(core.connection.state.message).toMatch(/revoked.*Ask for a new token/);
    // nothing left to fire: no retry, no heartbeat
    expect(clock.nextAt()).toBeNull();
    clock.advance(3_600_000);
    await sleep(300);
    expect(since(states, mark)).toEqual(['auth-failed']);
    expect(r.relay.manage!.authenticatedCount()).toBe(1);
  });

  it('after a rate-limited login waits the 60 s the relay asks, stays away while the address is locked out, then logs in', async () => {
    const r = await ownRelay({ manageLimits: { maxLoginFailures: 1, lockoutMs: 60_000 } });
    const clock = new ConsoleClock();
    const { core, states } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: r.relay.manageAddress.port, token: 'rwt_mistyped' }])) as { id: string };
    const first = (await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState;
    // the wrong token locked this address out (one failure is the limit here): 4029 {retryAfterMs: 60000}
    expect(first).toMatchObject({ status: 'reconnecting', attempt: 2, retryAt: clock.now() + 60_000 });
    expect(first.message).toMatch(/locked it out/);
    // the user pastes the right token meanwhile; the console keeps to the relay's schedule
    await core.invoke('profiles.save', [{ id: p.id, name: 'edge', host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }]);
    let mark = states.length;
    clock.advance(59_999);
    await sleep(200);
    expect(since(states, mark)).toEqual([]);
    // at 60 s it tries; the relay (on its real clock) still has the address locked out and closes at once
    clock.advance(1);
    await waitFor(() => states.slice(mark).some((s) => s.status === 'reconnecting'), 'the retry meets the lockout', 5000);
    const locked = states.slice(mark).find((s) => s.status === 'reconnecting')!;
    expect(locked.attempt).toBe(3);
    expect(locked.message).toMatch(/too many failed logins/);
    // the relay said how much of its minute is left (its real clock moved on a little meanwhile)
    const left = locked.retryAt! - clock.now();
    expect(left).toBeGreaterThan(50_000);
    expect(left).toBeLessThanOrEqual(60_000);
    mark = states.length;
    clock.advance(left - 1);
    await sleep(200);
    expect(since(states, mark)).toEqual([]);
    // the lockout is over (a restarted relay forgets it): the next attempt logs in
    await r.restart();
    clock.advance(1);
    await waitFor(() => status(core) === 'connected', 'logged in after the lockout', 10_000);
  });

  it('meeting a lockout at connect (another client of this address failed its logins) waits as long as the relay says, not a fixed minute', async () => {
    // the relay's default lockout: five minutes
    const r = await ownRelay({ manageLimits: { maxLoginFailures: 1 } });
    const guesser = await WssClient.connect(r.relay.manageAddress.port, r.relay.identity.fingerprint256);
    expect((await guesser.callError('auth.login', { token: 'rwt_guess' })).code).toBe(ErrorCode.RateLimited);
    await guesser.closed;
    const clock = new ConsoleClock();
    const { core, states } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }])) as { id: string };
    await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256]);
    await waitFor(() => status(core) === 'reconnecting', 'refused at connect', 5000);
    const refused = core.connection.state;
    expect(refused.message).toMatch(/refused this address: too many failed logins/);
    const left = refused.retryAt! - clock.now();
    expect(left).toBeGreaterThan(290_000);
    expect(left).toBeLessThanOrEqual(300_000);
    // no attempt before the lockout is over (a minute's retry would only meet it again)
    const mark = states.length;
    clock.advance(left - 1);
    await sleep(200);
    expect(since(states, mark)).toEqual([]);
    clock.advance(1);
    await waitFor(() => states.slice(mark).some((s) => s.status === 'connecting'), 'the retry when the lockout ends');
  });

  it('waits as long as the relay asks after a rate-limited login, not a fixed minute', async () => {
    // the relay's default lockout: five minutes
    const r = await ownRelay({ manageLimits: { maxLoginFailures: 1 } });
    const clock = new ConsoleClock();
    const { core, states } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: r.relay.manageAddress.port, token: 'rwt_mistyped' }])) as { id: string };
    const first = (await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState;
    expect(first).toMatchObject({ status: 'reconnecting', retryAt: clock.now() + 300_000 });
    const mark = states.length;
    clock.advance(299_999);
    await sleep(200);
    expect(since(states, mark)).toEqual([]);
    clock.advance(1);
    await waitFor(() => states.slice(mark).some((s) => s.status === 'connecting'), 'the retry after five minutes');
  });

  it('a relay restarted with a fresh history whose ids already passed ours: resubscribes from 0, gets its first events, marks the batch reset', async () => {
    const r = await ownRelay();
    const clock = new ConsoleClock();
    const { core, batches } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    const c1 = await RawSmtp.connect(r.relay.smtpAddress.port);
    await c1.hello();
    await c1.quit();
    await waitFor(() => batches.flatMap((b) => b.events).some((e) => e.kind === 'disconnect'), 'live events from the first relay', 5000);
    const seen = Math.max(...batches.flatMap((b) => b.events).map((e) => e.id));
    expect(seen).toBeGreaterThan(0);
    expect(batches.some((b) => b.reset)).toBe(false);

    // the relay comes back with a fresh history (history.sqlite removed while it was down)
    const oldDir = r.dir;
    await r.restart(() => {
      for (const f of ['history.sqlite', 'history.sqlite-wal', 'history.sqlite-shm']) fs.rmSync(path.join(oldDir, f), { force: true });
    });
    await waitFor(() => status(core) === 'reconnecting', 'the core notices the relay is gone', 5000);
    // and logs more events than the console had seen before the console is back (the retry waits on the fake clock)
    while (r.relay.bus.lastId <= seen + 2) {
      const c = await RawSmtp.connect(r.relay.smtpAddress.port, { localAddress: '127.0.0.9' });
      await c.hello();
      await c.quit();
    }
    await sleep(100);
    r.relay.history.flush();
    const firstNew = r.relay.history.query({ order: 'asc', limit: 1 }).events[0]!;
    expect(firstNew.id).toBeLessThanOrEqual(seen);
    const mark = batches.length;
    expect(clock.fireNext()).toBe(true);
    await waitFor(() => status(core) === 'connected', 'connected again', 10_000);
    await waitFor(() => batches.length > mark, 'the new relay\'s events', 5000);
    const after = batches.slice(mark);
    // the first batch of the new stream says to start over, and holds the new relay's first events (ids we had seen)
    expect(after[0]!.reset).toBe(true);
    expect(after[0]!.events[0]?.id).toBe(firstNew.id);
    expect(after[0]!.events.some((e) => e.ip === '127.0.0.9' && e.id <= seen)).toBe(true);
    expect(after.slice(1).some((b) => b.reset)).toBe(false);
    // and from there it follows the new stream: live events arrive as usual
    const c3 = await RawSmtp.connect(r.relay.smtpAddress.port, { localAddress: '127.0.0.10' });
    await c3.hello();
    await c3.quit();
    await waitFor(() => batches.slice(mark).flatMap((b) => b.events).some((e) => e.ip === '127.0.0.10' && e.kind === 'disconnect'), 'live events of the new stream', 5000);
  });

  it('switching to another relay marks its first batch reset; back on the first relay after a disconnect, the stream goes on without a replay', async () => {
    const a = await ownRelay();
    const b = await ownRelay();
    const { core, batches } = newCore({ timers: new ConsoleClock() });
    const save = async (name: string, r: typeof a) => (await core.invoke('profiles.save', [{ name, host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }])) as { id: string };
    const pa = await save('a', a);
    const pb = await save('b', b);
    const traffic = async (r: typeof a, ip: string) => {
      const c = await RawSmtp.connect(r.relay.smtpAddress.port, { localAddress: ip });
      await c.hello();
      await c.quit();
    };
    const from = (mark: number) => batches.slice(mark);
    const has = (mark: number, ip: string) => from(mark).flatMap((x) => x.events).some((e) => e.ip === ip && e.kind === 'disconnect');
    // relay b has events of its own before the console ever sees it (its ids overlap a's)
    await traffic(b, '127.0.0.31');
    expect(((await core.invoke('connection.acceptFingerprint', [pa.id, a.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await traffic(a, '127.0.0.30');
    await waitFor(() => has(0, '127.0.0.30'), "a's events", 5000);
    // the first connection of all starts the first stream: nothing to drop
    expect(batches.some((x) => x.reset)).toBe(false);

    let mark = batches.length;
    expect(((await core.invoke('connection.acceptFingerprint', [pb.id, b.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await waitFor(() => has(mark, '127.0.0.31'), "b's backlog", 5000);
    // the first batch from b says to drop a's events; the rest go on
    expect(from(mark)[0]!.reset).toBe(true);
    expect(from(mark).slice(1).some((x) => x.reset)).toBe(false);

    // back to a, by way of a disconnect: a is another stream again (the views hold b's)
    await core.invoke('connection.disconnect', []);
    mark = batches.length;
    await core.invoke('connection.connect', [pa.id]);
    await waitFor(() => status(core) === 'connected', 'on a again', 5000);
    await waitFor(() => has(mark, '127.0.0.30'), "a's backlog", 5000);
    expect(from(mark)[0]!.reset).toBe(true);
    const seenOnA = Math.max(...from(mark).flatMap((x) => x.events).map((e) => e.id));

    // the same relay after a disconnect: more of the same stream, from after the last event taken in
    await core.invoke('connection.disconnect', []);
    await traffic(a, '127.0.0.32');
    mark = batches.length;
    await core.invoke('connection.connect', [pa.id]);
    await waitFor(() => has(mark, '127.0.0.32'), 'the events a logged meanwhile', 5000);
    expect(from(mark).some((x) => x.reset)).toBe(false);
    expect(Math.min(...from(mark).flatMap((x) => x.events).map((e) => e.id))).toBe(seenOnA + 1);
  });

  it('switching to another relay drops the old stream at once, before the new relay sends anything (its fingerprint prompt)', async () => {
    const a = await ownRelay();
    const b = await ownRelay();
    const { core, batches } = newCore({ timers: new ConsoleClock() });
    const save = async (name: string, r: typeof a) => (await core.invoke('profiles.save', [{ name, host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }])) as { id: string };
    const pa = await save('a', a);
    const pb = await save('b', b);
    const traffic = async (r: typeof a, ip: string) => {
      const c = await RawSmtp.connect(r.relay.smtpAddress.port, { localAddress: ip });
      await c.hello();
      await c.quit();
    };
    // b has events of its own: its backlog comes after the prompt
    await traffic(b, '127.0.0.33');
    expect(((await core.invoke('connection.acceptFingerprint', [pa.id, a.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await traffic(a, '127.0.0.34');
    await waitFor(() => batches.some((x) => x.events.some((e) => e.ip === '127.0.0.34')), "a's events", 5000);
    const mark = batches.length;
    // b is not pinned yet: it stops at the prompt and sends no events; what the views hold of a goes now
    expect(((await core.invoke('connection.connect', [pb.id])) as ConnectionState).status).toBe('fingerprint-unknown');
    expect(batches.slice(mark)).toEqual([{ events: [], reset: true }]);
    // once accepted, b's stream follows (the views start from nothing: no second reset)
    expect(((await core.invoke('connection.acceptFingerprint', [pb.id, b.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await waitFor(() => batches.slice(mark).flatMap((x) => x.events).some((e) => e.ip === '127.0.0.33'), "b's backlog", 5000);
    expect(batches.slice(mark).filter((x) => x.reset)).toHaveLength(1);
  });

  it('switching to another relay tells the views to refetch (what they cached is the other relay\'s); the first connection does not', async () => {
    const a = await ownRelay();
    const b = await ownRelay();
    const { core } = newCore({ timers: new ConsoleClock() });
    const notices: unknown[] = [];
    core.on('config', (c) => notices.push(c));
    const save = async (name: string, r: typeof a) => (await core.invoke('profiles.save', [{ name, host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }])) as { id: string };
    const pa = await save('a', a);
    const pb = await save('b', b);
    expect(((await core.invoke('connection.acceptFingerprint', [pa.id, a.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    // nothing was fetched before the first connection of all
    expect(notices).toEqual([]);
    // straight from a to b (the views hold a's config, clients, queue: react-query keys do not name the relay)
    expect(((await core.invoke('connection.acceptFingerprint', [pb.id, b.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    expect(notices).toEqual([{ revision: b.relay.configRevision, by: 'resync', source: 'reconnect' }]);
    // and by way of a disconnect, back to a
    await core.invoke('connection.disconnect', []);
    expect(((await core.invoke('connection.connect', [pa.id])) as ConnectionState).status).toBe('connected');
    expect(notices).toHaveLength(2);
  });

  it("the live view notes the events a reconnect caught up (the backlog the core marks resync), and not a new relay's backlog", async () => {
    const a = await ownRelay();
    const b = await ownRelay();
    const { core, batches } = newCore({ timers: new ConsoleClock() });
    // the renderer's store, fed as the app feeds it, with frames applied at once
    const store = new LiveStore(1000, { request: (fn) => fn() });
    core.on('events', (x) => store.ingest(x as EventBatch));
    const save = async (name: string, r: typeof a) => (await core.invoke('profiles.save', [{ name, host: '127.0.0.1', port: r.relay.manageAddress.port, token: r.token }])) as { id: string };
    const pa = await save('a', a);
    const pb = await save('b', b);
    const traffic = async (r: typeof a, ip: string) => {
      const c = await RawSmtp.connect(r.relay.smtpAddress.port, { localAddress: ip });
      await c.hello();
      await c.quit();
    };
    const held = (ip: string) => store.toArray().some((e) => e.ip === ip && e.kind === 'disconnect');
    await traffic(b, '127.0.0.52');
    await traffic(a, '127.0.0.50');
    const first = (await core.invoke('connection.acceptFingerprint', [pa.id, a.relay.identity.fingerprint256])) as ConnectionState;
    expect(first.status).toBe('connected');
    // what the renderer gets of the connection names no event id (the live store has the events themselves)
    expect(first).not.toHaveProperty('lastEventId');
    await waitFor(() => held('127.0.0.50'), "a's first events", 5000);
    // the first connection's backlog starts the stream: nothing was caught up
    expect(batches.some((x) => x.resync)).toBe(true);
    expect(store.lastCatchUp).toBeNull();
    const seen = Math.max(...store.toArray().map((e) => e.id));

    // away for a while; a logs more meanwhile
    await core.invoke('connection.disconnect', []);
    await traffic(a, '127.0.0.51');
    await sleep(100);
    const mark = batches.length;
    expect(((await core.invoke('connection.connect', [pa.id])) as ConnectionState).status).toBe('connected');
    await waitFor(() => held('127.0.0.51'), 'the events logged while away', 5000);
    const replay = batches.slice(mark).find((x) => x.resync)!;
    expect(replay.reset).toBeUndefined();
    expect(replay.events[0]!.id).toBe(seen + 1);
    expect(replay.events.every((e) => e.ip === '127.0.0.51')).toBe(true);
    expect(store.lastCatchUp).toMatchObject({ events: replay.events.length });
    expect(store.streamResets).toBe(0);

    // another relay: its backlog starts another stream, and the note went with a's events
    expect(((await core.invoke('connection.acceptFingerprint', [pb.id, b.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await waitFor(() => held('127.0.0.52'), "b's backlog", 5000);
    expect(store.streamResets).toBe(1);
    expect(store.lastCatchUp).toBeNull();
  });

  it('a disconnect while a retry is pending (or its attempt is under way) leaves no timer and never reconnects', async () => {
    const r = await ownRelay();
    const port = r.relay.manageAddress.port;
    const clock = new ConsoleClock();
    const { core, states } = newCore({ timers: clock });
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port, token: r.token }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.relay.identity.fingerprint256])) as ConnectionState).status).toBe('connected');
    await r.relay.stop();
    await waitFor(() => status(core) === 'reconnecting', 'the core notices the relay is gone', 5000);
    expect(clock.nextAt()).not.toBeNull();
    await core.invoke('connection.disconnect', []);
    expect(status(core)).toBe('disconnected');
    expect(clock.nextAt()).toBeNull();
    await r.restart();
    let mark = states.length;
    clock.advance(3_600_000);
    await sleep(300);
    expect(since(states, mark)).toEqual([]);
    expect(r.relay.manage!.authenticatedCount()).toBe(0);

    // the same with the retry's attempt already on its way (dialling) when the user disconnects
    expect(((await core.invoke('connection.connect', [p.id])) as ConnectionState).status).toBe('connected');
    await r.relay.stop();
    await waitFor(() => status(core) === 'reconnecting', 'gone again', 5000);
    await r.restart();
    expect(clock.fireNext()).toBe(true);
    expect(status(core)).toBe('connecting');
    await core.invoke('connection.disconnect', []);
    mark = states.length;
    clock.advance(3_600_000);
    await sleep(500);
    expect(since(states, mark)).toEqual([]);
    expect(status(core)).toBe('disconnected');
    expect(clock.nextAt()).toBeNull();
    expect(r.relay.manage!.authenticatedCount()).toBe(0);
  });
});

describe('a socket that drops during the login', () => {
  it('counts one attempt per drop: the close and the failed login call do not both schedule a retry', async () => {
    const https = await import('node:https');
    const { WebSocketServer } = await import('ws');
    const { cert, key } = await generateSelfSigned('flaky.test');
    const server = https.createServer({ cert, key });
    const wss = new WebSocketServer({ server });
    // accept the upgrade, then hang up on the first message (auth.login)
    wss.on('connection', (ws) => ws.once('message', () => ws.terminate()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(async () => {
      wss.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    const port = (server.address() as net.AddressInfo).port;
    const fp = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().fingerprint256);
        s.destroy();
      });
      s.on('error', reject);
    });
    const { core, states } = newCore();
    const p = (await core.invoke('profiles.save', [{ name: 'flaky', host: '127.0.0.1', port, token: 'rwt_whatever' }])) as { id: string };
    await core.invoke('connection.acceptFingerprint', [p.id, fp]);
    await waitFor(() => states.filter((s) => s.status === 'reconnecting').length >= 3, 'three reconnects');
    const retries = states.filter((s) => s.status === 'reconnecting');
    expect(retries.slice(0, 3).map((s) => s.attempt)).toEqual([2, 3, 4]);
    expect(retries.slice(0, 3).every((s) => /connection to the relay was lost/.test(s.message))).toBe(true);
  });
});

describe('the bridge', () => {
  it('lets only allow-listed operations and methods through, and returns errors as data', async () => {
    const { core } = newCore();
    await expect(core.invoke('fs.readFile', ['/etc/passwd'])).rejects.toMatchObject({ payload: { code: 'invalid' } });
    await expect(core.invoke('call', ['auth.login', { token: 'x' }])).rejects.toMatchObject({ payload: { code: -32601 } });
    await expect(core.invoke('call', ['events.subscribe', {}])).rejects.toBeInstanceOf(BridgeFailure);
    await expect(core.invoke('call', ['config.get', {}])).rejects.toMatchObject({ payload: { code: 'closed' } });
    const bad = core.invoke('profiles.save', [{ name: '', host: 'not a host!', port: 70000, token: 't' }]);
    await expect(bad).rejects.toMatchObject({ payload: { code: 'invalid' } });
    const err = (await bad.catch((e: BridgeFailure) => e)) as BridgeFailure;
    const paths = (err.payload.data as { issues: { path: string[] }[] }).issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['name', 'host', 'port']));
    await expect(core.invoke('profiles.save', [{ name: 'x', host: 'relay.example.com', port: 8465 }])).rejects.toMatchObject({ payload: { message: expect.stringMatching(/token/) } });
  });

  it('refuses an IPv6 host that is not one (unbalanced brackets, bare colons) on the host field, and keeps real ones', async () => {
    const { core } = newCore();
    for (const host of ['[::1', '::1]', ':::::']) {
      const err = (await core.invoke('profiles.save', [{ name: 'v6', host, port: 8465, token: 't' }]).catch((e: BridgeFailure) => e)) as BridgeFailure;
      expect(err.payload).toMatchObject({ code: 'invalid', data: { issues: [{ path: ['host'] }] } });
    }
    const saved = (await core.invoke('profiles.save', [{ name: 'v6', host: '[::1]', port: 8465, token: 't' }])) as { host: string };
    expect(saved.host).toBe('::1');
  });

  it('warns when tokens can only be stored with the plain-text backend', async () => {
    const core = new ConsoleCore({
      secrets: testSecretStore('basic_text'),
      files: { profiles: memoryJson() as never, knownHosts: memoryJson() as never },
    });
    expect(await core.invoke('profiles.storageWarning', [])).toMatch(/fixed key/);
    const stored = memoryJson<{ profiles: { token: string | null }[] }>();
    const plain = new ConsoleCore({
      secrets: { ...testSecretStore(), isEncryptionAvailable: () => false },
      files: { profiles: stored as never, knownHosts: memoryJson() as never },
    });
    await plain.invoke('profiles.save', [{ name: 'x', host: 'relay.example.com', port: 8465, token: 'rwt_secret' }]);
    // never written to disk in the clear
    expect(JSON.stringify(stored.value)).not.toContain('rwt_secret');
    expect(((await plain.invoke('profiles.list', [])) as { hasToken: boolean }[])[0]!.hasToken).toBe(true);
  });
});
