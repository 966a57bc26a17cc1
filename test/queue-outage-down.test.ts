/**
 * A destination that is down (a listener that accepts and never greets; a port where nothing listens), on a fake
 * clock: one connection at a time to it (a probe), the other messages deferred without a connection with a reason
 * that says so; and when it takes mail again, the messages that waited for it at the connection level are brought
 * forward at once, not those a server deferred with a 4xx.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { FakeClock } from './helpers/queue-clock.ts';
import { deadPort, silentServer } from './helpers/outage.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import type { RelayEvent } from '../shared/events.ts';

const { sink, harness } = deliveryFixtures();
const MIN = 60_000;

type Deferred = Extract<RelayEvent, { kind: 'deferred' }>;

describe('a destination that is down', () => {
  it('a server that closes every connection before its greeting is down (a connection-level failure), said in words', async () => {
    // (a tryout: nodemailer handed that close to the connect callback, which took it as "ready"; the destination was
    // never down, every message got a connection of its own, and its reason was nodemailer's "already destroyed")
    const clock = new FakeClock();
    const server = net.createServer((sock) => sock.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const h = await harness(
        { smtp: { hostname: 'relay.test' }, domains: { 'corp.test': { deliverTo: `127.0.0.1:${port}`, recipients: '*' } }, delivery: { tls: 'off' } },
        { now: clock.now, timers: clock, random: () => 0.5 },
      );
      await h.queue.start();
      await h.submit('alice@sender.test', ['a@corp.test']);
      await expect.poll(() => h.events.filter((e) => e.kind === 'deferred').length, { interval: 5 }).toBe(1);
      const [d] = h.queue.summary().destinations;
      expect(d).toMatchObject({ down: true, lastError: `127.0.0.1:${port}: the server closed the connection unexpectedly` });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a 421 to MAIL is about that message, not the destination (as Postfix): deferred, the destination not down, the next message gets its own connection', async () => {
    const clock = new FakeClock();
    let mails = 0;
    // (the server closes after its 421, as RFC 5321 3.8 says it does)
    const dest = await sink({ onMailFrom: () => (++mails <= 2 ? { code: 421, message: '4.3.2 too busy, closing' } : undefined) });
    const h = await harness(localDomains({ 'corp.test': dest }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await h.submit('alice@sender.test', [`u${i}@corp.test`]));
    await expect.poll(() => dest.messages.length).toBe(1);
    await expect.poll(() => deferred().length).toBe(2);
    for (const d of deferred()) {
      expect(d.reason).toMatch(/421 4\.3\.2 too busy, closing/);
      expect(d.reason).not.toMatch(/not tried/);
    }
    // each message had a connection of its own (none was deferred without one), and the destination is not down
    expect(dest.connections).toBe(3);
    const [summary] = h.queue.summary().destinations;
    expect(summary).toMatchObject({ down: false, messages: 2, lastError: expect.stringMatching(/421 4\.3\.2/) });
    // their retry is a message's step (1 min), not a probe of a dead destination
    expect(deferred().map((d) => d.nextAttemptAt - d.at)).toEqual([1 * MIN, 1 * MIN]);
  });

  it('a server that never greets: one connection at a time while N messages come due, the others deferred without one', async () => {
    const clock = new FakeClock();
    const hung = await silentServer();
    try {
      const h = await harness(
        { smtp: { hostname: 'relay.test' }, domains: { 'corp.test': { deliverTo: hung.address, recipients: '*' } }, delivery: { tls: 'off' } },
        // (the greeting timeout is real time: short here; the schedule is the fake clock's)
        { now: clock.now, timers: clock, random: () => 0.5, connectTimeoutMs: 300 },
      );
      await h.queue.start();
      const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
      const first = await h.submit('alice@sender.test', ['a0@corp.test']);
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(1);
      const failedAt = clock.now();
      expect(hung.stats.connections).toBe(1);
      expect(deferred()[0]!.reason).toMatch(/[Gg]reeting|[Tt]imeout/);
      const dest = `local:${hung.address}`;
      expect(h.queue.summary().destinations).toEqual([
        { destination: dest, messages: 1, down: true, lastError: expect.stringMatching(/[Gg]reeting|[Tt]imeout/), nextAttemptAt: failedAt + 1 * MIN, connections: 0, waitingForConnection: 0, scheduledLater: 1 },
      ]);

      // 10 more arrive: none connects; each is deferred at once, saying why and until when, and is no attempt
      const ids: string[] = [];
      for (let i = 1; i <= 10; i++) ids.push(await h.submit('alice@sender.test', [`a${i}@corp.test`]));
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(11);
      expect(hung.stats.connections).toBe(1);
      const hhmmss = (t: number) => new Date(t).toISOString().slice(11, 19);
      for (const e of deferred().slice(1)) {
        expect(e.reason).toMatch(new RegExp(`^not tried: 127\\.0\\.0\\.1:${hung.port} did not answer the last attempt \\(.*at ${hhmmss(failedAt)} UTC\\); next try ${hhmmss(failedAt + MIN + 3000)} UTC$`));
        // the next probe, plus jitter (random 0.5: 5% of the interval): the time the reason says
        expect(e.nextAttemptAt).toBe(failedAt + MIN + 3000);
      }
      for (const id of ids) expect(h.queue.list().find((i) => i.id === id)).toMatchObject({ attempts: 0, status: 'deferred', lastError: expect.stringMatching(/^not tried: /) });

      // the probe time: all 11 are due; exactly one connects (the probe), the 10 others are deferred without one
      clock.advance(MIN + 3000);
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(22);
      expect(hung.stats.connections).toBe(2);
      expect(hung.stats.maxOpen).toBe(1);
      const probe = deferred().slice(11).find((e) => !e.reason.startsWith('not tried'))!;
      expect(probe.queueId).toBe(first);
      // the probe failed: the next one in 5 min (the interval grows as the retry delays do)
      const probedAt = clock.now();
      expect(h.queue.summary().destinations[0]).toMatchObject({ messages: 11, down: true, nextAttemptAt: probedAt + 5 * MIN });
      for (const id of ids) {
        const item = h.queue.list().find((i) => i.id === id)!;
        expect(item.attempts).toBe(0);
        expect(item.nextAttemptAt).toBeGreaterThanOrEqual(probedAt + 5 * MIN);
      }
    } finally {
      await hung.close();
    }
  });

  it('a refused connection marks it down too; retry(id) probes at once; expiry still bounces what was not tried', async () => {
    const clock = new FakeClock();
    const port = await deadPort();
    const senderSink = await sink();
    const h = await harness(
      {
        smtp: { hostname: 'relay.test' },
        domains: { 'corp.test': { deliverTo: `127.0.0.1:${port}`, recipients: '*' }, 'sender.test': { deliverTo: senderSink.address, recipients: '*' } },
        delivery: { tls: 'off', maxQueueHours: 1 },
      },
      { now: clock.now, timers: clock, random: () => 0.5 },
    );
    await h.queue.start();
    const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
    await h.submit('alice@sender.test', ['a@corp.test']);
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(1);
    expect(deferred()[0]!.reason).toMatch(/the connection was refused/);
    const other = await h.submit('alice@sender.test', ['b@corp.test']);
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(2);
    expect(deferred()[1]!.reason).toMatch(/^not tried: .*the connection was refused.*next try/);

    // Retry: the destination is probed now (one connection), the message counts that attempt
    clock.advance(10_000);
    h.queue.retry(other);
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(3);
    expect(deferred()[2]!.reason).toMatch(/the connection was refused/);
    expect(deferred()[2]!.reason).not.toMatch(/not tried/);
    expect(h.queue.list().find((i) => i.id === other)).toMatchObject({ attempts: 1 });

    // an hour later both have expired: bounced, the last error said
    for (let i = 0; i < 40 && h.queue.size > 0; i++) {
      clock.fireNext();
      await new Promise((r) => setTimeout(r, 20));
    }
    await expect.poll(() => h.queue.size).toBe(0);
    const bounced = h.events.filter((e) => e.kind === 'bounced');
    expect(bounced).toHaveLength(2);
    for (const b of bounced) expect(b.kind === 'bounced' && b.reason).toMatch(/could not be delivered for 1 hours.*the connection was refused/);
  });
});

describe('when the destination comes back', () => {
  it('the messages that waited for it at the connection level go at once, not those a server deferred with a 4xx', async () => {
    const clock = new FakeClock();
    const greylist = (rcpt: string) => (rcpt.startsWith('grey') ? { code: 451, message: '4.7.1 greylisted, try later' } : undefined);
    let up = await sink({ onRcpt: greylist });
    const port = up.port;
    const logs: string[] = [];
    const h = await harness(localDomains({ 'corp.test': up }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5, log: (l) => logs.push(l) });
    await h.queue.start();
    const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
    const grey = await h.submit('alice@sender.test', ['grey@corp.test']);
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(1);
    const greyItem = h.queue.list()[0]!;
    expect(greyItem).toMatchObject({ attempts: 1, nextAttemptAt: clock.now() + 1 * MIN });

    // the server goes away: refused
    await up.close();
    clock.advance(1000);
    const waiting: string[] = [];
    for (let i = 0; i < 5; i++) waiting.push(await h.submit('alice@sender.test', [`u${i}@corp.test`]));
    await expect.poll(() => deferred().length, { interval: 5 }).toBe(6);
    // (one has tried and failed; after it, the others were not tried)
    const due = new Map(h.queue.list().map((i) => [i.id, i.nextAttemptAt]));

    // it is back on the same port; the administrator retries one message: it is delivered, and every message that
    // waited for it at the connection level goes now (the clock does not move), the greylisted one keeps its time
    up = await sink({ port, onRcpt: greylist });
    try {
      h.queue.retry(waiting[0]!);
      await up.waitFor(5);
      await expect.poll(() => h.queue.size).toBe(1);
      expect(up.messages.flatMap((m) => m.to).sort()).toEqual(['u0@corp.test', 'u1@corp.test', 'u2@corp.test', 'u3@corp.test', 'u4@corp.test']);
      expect(h.queue.list()).toEqual([expect.objectContaining({ id: grey, attempts: 1, nextAttemptAt: greyItem.nextAttemptAt })]);
      expect(deferred().filter((e) => e.queueId === grey)).toHaveLength(1);
      for (const id of waiting.slice(1)) expect(due.get(id)).toBeGreaterThan(clock.now());
      expect(h.queue.summary().destinations[0]).toMatchObject({ down: false });
      // said once for the recovery (a chaos test saw it 16 times in one, each later delivery bringing forward one or two
      // more that were being delivered at the moment it came back)
      expect(logs.filter((l) => l.includes('takes mail again'))).toEqual([`queue: ${up.address} takes mail again: 4 messages waiting for it are due now`]);
    } finally {
      await up.close();
    }
  });

  it('the recovery is said once: a message still being delivered elsewhere at that moment is brought forward later without another line', async () => {
    const clock = new FakeClock();
    let corp = await sink();
    const port = corp.port;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const other = await sink({ holdData: () => held });
    const logs: string[] = [];
    const h = await harness(localDomains({ 'corp.test': corp, 'other.test': other }, { tls: 'off' }), {
      now: clock.now,
      timers: clock,
      random: () => 0.5,
      log: (l) => logs.push(l),
    });
    await h.queue.start();
    await corp.close();
    // M goes to both: corp.test refuses (down), other.test holds it; N waits for corp.test only
    const m = await h.submit('alice@sender.test', ['x@corp.test', 'y@other.test']);
    await expect.poll(() => other.activeTransactions).toBe(1);
    const n = await h.submit('alice@sender.test', ['z@corp.test']);
    await expect.poll(() => h.events.some((e) => e.kind === 'deferred' && e.queueId === n), { interval: 5 }).toBe(true);
    corp = await sink({ port });
    try {
      // the administrator's retry of N probes corp.test: back (M is still being delivered to other.test)
      h.queue.retry(n);
      await corp.waitFor(1);
      await expect.poll(() => logs.some((l) => l.includes('answers again')), { interval: 5 }).toBe(true);
      // M's attempt ends (other.test delivered), then any delivery to corp.test brings M forward: not said again
      release();
      await h.waitEvent('delivered', (e) => e.queueId === m);
      await expect.poll(() => h.queue.list().find((i) => i.id === m)?.status, { interval: 5 }).toBe('deferred');
      const p = await h.submit('alice@sender.test', ['p@corp.test']);
      await h.waitEvent('delivered', (e) => e.queueId === p);
      await expect.poll(() => h.queue.size, { interval: 5 }).toBe(0);
      expect(corp.messages.flatMap((x) => x.to).sort()).toEqual(['p@corp.test', 'x@corp.test', 'z@corp.test']);
      expect(logs.filter((l) => l.includes('takes mail again'))).toEqual([]);
    } finally {
      await corp.close();
    }
  });

  it('messages brought forward that fail again at once keep their backoff', async () => {
    const clock = new FakeClock();
    // after the restart it takes u0 and defers the others with a 4xx at RCPT
    let up = await sink();
    const port = up.port;
    await up.close();
    const h = await harness(localDomains({ 'corp.test': up }, { tls: 'off' }), { now: clock.now, timers: clock, random: () => 0.5 });
    await h.queue.start();
    const deferred = () => h.events.filter((e): e is Deferred => e.kind === 'deferred');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(await h.submit('alice@sender.test', [`u${i}@corp.test`]));
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(i + 1);
    }
    const before = new Map(h.queue.list().map((i) => [i.id, i]));
    up = await sink({ port, onRcpt: (rcpt) => (rcpt === 'u0@corp.test' ? undefined : { code: 452, message: '4.3.1 out of space for now' }) });
    try {
      h.queue.retry(ids[0]!);
      await up.waitFor(1);
      await expect.poll(() => deferred().length, { interval: 5 }).toBe(7);
      for (const id of ids.slice(1)) {
        const item = h.queue.list().find((i) => i.id === id)!;
        const was = before.get(id)!;
        // shown as an attempt, but no step of the schedule. These had not been tried (the destination was down): the
        // time they had was only its next probe, no schedule of their own to go back to, so the delay of their
        // unchanged step (none yet: the first, 1 min) from now
        expect(was.attempts).toBe(0);
        expect(item).toMatchObject({ attempts: 1, nextAttemptAt: clock.now() + 60_000, lastError: expect.stringContaining('452 4.3.1') });
      }
    } finally {
      await up.close();
    }
  });
});
