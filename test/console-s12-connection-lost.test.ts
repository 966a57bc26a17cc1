/**
 * The console tryout of session 12, finding 5: after a SIGTERM (or a kill -9) of the relay the console was connected
 * to, the status bar said within 300 ms "nothing listens on ...; is the relay running, and is manage.listen that
 * address?" for the whole outage: a configuration hint for an address that worked a second ago, and the reason and
 * time of the stop gone. Now the hint is only for a relay this connection never reached; otherwise the words keep
 * what ended it and when ("The relay stopped at HH:MM:SS (it said: ...)", "The connection to the relay was lost at
 * HH:MM:SS") and add what the retries meet. Finding 11: "Connected to relay.test as admin (admin)".
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ConnectionState } from '../shared/console-api.ts';
import { type ConsoleClock, consoleConnectionFixtures } from './helpers/console-connection.ts';
import { waitFor } from './helpers/wait.ts';

const { cleanups, ownRelay: relayWith, newCore } = consoleConnectionFixtures();

const hhmmss = (t: number) => {
  const d = new Date(t);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
};

const ownRelay = () => relayWith({ smtp: { hostname: 'relay.test' } });

/** A TCP forwarder in front of the relay: cut() drops every connection without a word and stops listening (a kill -9 on the wire). */
async function forwarder(target: number) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((a) => {
    const b = net.connect(target, '127.0.0.1');
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    a.pipe(b);
    b.pipe(a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const cut = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  cleanups.push(() => (server.listening ? cut() : undefined));
  return { port: (server.address() as net.AddressInfo).port, cut };
}

/** let the pending retry run, and wait until its attempt has failed (a new reconnecting state, another attempt number) */
async function nextFailedAttempt(clock: ConsoleClock, state: () => ConnectionState): Promise<ConnectionState> {
  const before = state().attempt;
  clock.advance(1000);
  await waitFor(() => state().status === 'reconnecting' && state().attempt > before, 'the retry refused', 5000);
  return state();
}

describe('the relay the console was connected to goes away (finding 5)', () => {
  it('a graceful stop (SIGTERM): the words keep "the relay stopped at HH:MM:SS (it said: ...)", never the manage.listen hint', async () => {
    const r = await ownRelay();
    const { core, clock, save, state, states } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: r.token });
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState).status).toBe('connected');
    // finding 11: the token's name and its role, said as such
    expect(state().message).toBe('Connected to relay.test with the token "admin" (admin role).');

    const mark = states.length;
    const at = hhmmss(clock.now());
    await r.stop();
    await waitFor(() => state().status === 'reconnecting', 'the stop noticed', 5000);
    const stopped = `The relay stopped at ${at} (it said: the relay is shutting down).`;
    expect(state().message).toBe(stopped);
    // the retries meet a closed port: they say so after the stop, and nothing suggests a wrong address
    for (let i = 0; i < 3; i++) {
      const s = await nextFailedAttempt(clock, state);
      expect(s.message).toBe(`${stopped} Not back yet: nothing listens on 127.0.0.1:${r.port}.`);
    }
    for (const s of states.slice(mark)) expect(s.message).not.toMatch(/manage\.listen|is the relay running/);
    expect(states.slice(mark).filter((s) => s.status === 'connecting').every((s) => s.message === `${stopped} Reconnecting…`)).toBe(true);
  });

  it('a connection dropped without a word (kill -9): "lost at HH:MM:SS"; a relay never reached keeps the configuration hint', async () => {
    const r = await ownRelay();
    const fw = await forwarder(r.port);
    const { core, clock, save, state, states } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: fw.port, token: r.token });
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState).status).toBe('connected');
    const mark = states.length;
    const at = hhmmss(clock.now());
    await fw.cut();
    await waitFor(() => state().status === 'reconnecting', 'the drop noticed', 5000);
    const lost = `The connection to the relay was lost at ${at}.`;
    expect(state().message).toBe(lost);
    const s = await nextFailedAttempt(clock, state);
    expect(s.message).toBe(`${lost} Not back yet: nothing listens on 127.0.0.1:${fw.port}.`);
    for (const x of states.slice(mark)) expect(x.message).not.toMatch(/manage\.listen/);

    // connect() anew to that address (a new life, the relay never reached in it): the hint is right there
    const st = (await core.invoke('connection.connect', [p.id])) as ConnectionState;
    expect(st.status).toBe('reconnecting');
    expect(st.message).toBe(`Cannot reach the relay: nothing listens on 127.0.0.1:${fw.port}; is the relay running, and is manage.listen that address?`);
  });
});
