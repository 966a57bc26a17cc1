/**
 * What a stop and a restart (Queue.stop(), as the relay's SIGTERM does, then a new Queue on the same spool) do to the
 * retry schedule. A deferred message keeps the attempts and nextAttemptAt stored in its .state file. A delivery the
 * stop cut short got no answer: it is tried again as soon as the queue starts, is no step of the retry schedule, and
 * the message keeps its last real answer as lastError (Postfix does the same with what its queue manager had in its
 * active queue). A reply that arrives while the stop waits for deliveries under way is a real attempt: it counts and
 * gets the usual delay. So is any other failure that merely ends while the stop waits: a refused connection, a server
 * that drops the connection by itself, a DNS failure; only what the stop itself ended (a job it never started, a
 * connection it closed) is cut. Real SMTP sessions (the relay's delivery worker), a fake clock for the schedule.
 */
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WorkerDeliverer, type DeliveryRequest } from '../relay/queue/deliverer.ts';
import type { DnsAnswer, MxRecord, MxResolver } from '../relay/queue/spool.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import { deliveryFixtures, localDomains, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import type { Sink } from './helpers/sink.ts';

const { sink, harness } = deliveryFixtures();
const MIN = 60_000;

interface StateFile {
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
}
const readState = async (dir: string, id: string): Promise<StateFile> => JSON.parse(await fsp.readFile(path.join(dir, 'queue', `${id}.state`), 'utf8')) as StateFile;

/** A downstream server whose reply at the end of DATA the test gives when it wants (a raw net server). */
const raws: net.Server[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of raws.splice(0)) await new Promise((r) => s.close(r));
});
/** data(): the reply at the end of DATA, or null to drop the connection instead (the server's own doing) */
async function gatedServer(opts: { rcpt: (n: number) => string; data: () => Promise<string | null> }): Promise<{ address: string; rcpts: () => number; datas: () => number }> {
  let rcpts = 0;
  let datas = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const say = (line: string) => void (!sock.destroyed && sock.write(`${line}\r\n`));
    let buf = '';
    let inData = false;
    say('220 gated.test ESMTP');
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            datas++;
            void opts.data().then((reply) => (reply === null ? sock.destroy() : say(reply)));
          }
          continue;
        }
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO') say('250 gated.test');
        else if (verb === 'RCPT') say(opts.rcpt(++rcpts));
        else if (verb === 'DATA') {
          inData = true;
          say('354 go ahead');
        } else if (verb === 'QUIT') {
          say('221 bye');
          sock.end();
        } else say('250 ok');
      }
    });
  });
  raws.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origClose = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return origClose(cb);
  }) as typeof server.close;
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, rcpts: () => rcpts, datas: () => datas };
}

/** a loopback port nothing listens on: a connection to it is refused */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Calls stop() the moment the queue hands a delivery to its delivery worker: whatever that delivery ends with comes
 * while stop() waits, and nothing of it can have happened before (the worker answers in a later turn of the loop).
 */
function stopWhenDeliveryStarts(h: Awaited<ReturnType<typeof harness>>, port?: number): () => Promise<void> | null {
  let stopping: Promise<void> | null = null;
  const deliver = WorkerDeliverer.prototype.deliver;
  vi.spyOn(WorkerDeliverer.prototype, 'deliver').mockImplementation(function (this: WorkerDeliverer, req: DeliveryRequest) {
    const answer = deliver.call(this, req);
    if (port === undefined || req.target.port === port) stopping ??= h.queue.stop();
    return answer;
  });
  return () => stopping;
}

/** a resolver whose MX answer the test gives when it wants (A and AAAA: none) */
function gatedResolver(): { resolver: MxResolver; asked: () => boolean; answer: (a: DnsAnswer<MxRecord>) => void } {
  let answer: ((a: DnsAnswer<MxRecord>) => void) | null = null;
  return {
    resolver: {
      mx: () => new Promise((r) => (answer = r)),
      a: async () => ({ status: 'nodata' }) as DnsAnswer<string>,
      aaaa: async () => ({ status: 'nodata' }) as DnsAnswer<string>,
    },
    asked: () => answer !== null,
    answer: (a) => answer!(a),
  };
}

/** deferred twice (451 to RCPT): attempts 2, the next attempt 5 minutes after the second */
async function deferredTwice(h: Awaited<ReturnType<typeof harness>>, clock: FakeClock): Promise<string> {
  await h.queue.start();
  const id = await h.submit('alice@sender.test', ['bob@example.test']);
  const deferrals = () => h.events.filter((e) => e.kind === 'deferred').length;
  await expect.poll(deferrals, { interval: 5 }).toBe(1);
  clock.advance(1 * MIN);
  await expect.poll(deferrals, { interval: 5 }).toBe(2);
  expect(h.queue.list()[0]).toMatchObject({ id, attempts: 2, nextAttemptAt: clock.now() + 5 * MIN, status: 'deferred' });
  return id;
}

describe('a stop and a restart keep the retry schedule', () => {
  it('a deferred message keeps its attempts and nextAttemptAt, and is not tried before it is due', async () => {
    const clock = new FakeClock();
    let rcpts = 0;
    const dest = await sink({ onRcpt: () => (rcpts++, { code: 451, message: '4.3.0 not now' }) });
    const h = await harness(plainLocalDomains({ 'example.test': dest }), { now: clock.now, timers: clock, random: () => 0.5 });
    const id = await deferredTwice(h, clock);
    const due = clock.now() + 5 * MIN;
    await h.queue.stop();
    expect(await readState(h.dir, id)).toMatchObject({ attempts: 2, nextAttemptAt: due });

    clock.advance(MIN);
    const q = h.reopen();
    await q.start();
    expect(q.list()).toEqual([expect.objectContaining({ id, attempts: 2, nextAttemptAt: due, status: 'deferred' })]);
    expect(q.activeDeliveries).toBe(0); // a due message would have started its attempt inside start()
    expect(clock.nextAt()).toBe(due); // its timer is armed for the stored time
    clock.advance(due - 1 - clock.now());
    expect(q.activeDeliveries).toBe(0);
    expect(rcpts).toBe(2);

    clock.advance(1);
    await expect.poll(() => h.events.filter((e) => e.kind === 'deferred').length, { interval: 5 }).toBe(3);
    expect(rcpts).toBe(3);
    // the third attempt, one step further: 15 minutes
    expect(q.list()[0]).toMatchObject({ attempts: 3, nextAttemptAt: due + 15 * MIN });
  });

  it('a delivery the stop cut short is tried again as soon as the queue starts, is not counted, and keeps the last real answer', async () => {
    const clock = new FakeClock();
    // RCPT 1 and 2: 451; the third attempt reaches the end of DATA and gets no answer before the stop closes it; then 451
    const dest: Sink = await sink({
      onRcpt: (_r, n) => (n === 3 ? undefined : { code: 451, message: '4.3.0 not now' }),
      dataDelayMs: 60_000,
    });
    const h = await harness(plainLocalDomains({ 'example.test': dest }), { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 200 });
    const id = await deferredTwice(h, clock);
    clock.advance(5 * MIN);
    await expect.poll(() => dest.activeTransactions).toBe(1);
    const stoppedAt = clock.now();
    await h.queue.stop();
    // no answer came: not an attempt, no deferred event, the 451 stays the last error, due now
    expect(h.events.filter((e) => e.kind === 'deferred')).toHaveLength(2);
    const state = await readState(h.dir, id);
    expect(state).toMatchObject({ attempts: 2, lastError: expect.stringMatching(/451 4\.3\.0 not now/) });
    expect(state.nextAttemptAt).toBeLessThanOrEqual(stoppedAt);

    clock.advance(MIN);
    const q = h.reopen();
    await q.start();
    expect(q.activeDeliveries).toBe(1); // at once
    await expect.poll(() => h.events.filter((e) => e.kind === 'deferred').length, { interval: 5 }).toBe(3);
    // the first answered attempt after the restart is the third: 15 minutes, not 30
    expect(q.list()[0]).toMatchObject({ attempts: 3, nextAttemptAt: clock.now() + 15 * MIN });
  });

  it('an answer that arrives while the stop waits for the delivery is a real attempt: counted, the usual delay, a deferred event', async () => {
    const clock = new FakeClock();
    let release!: (reply: string) => void;
    const dest = await gatedServer({
      rcpt: (n) => (n <= 2 ? '451 4.3.0 not now' : '250 ok'),
      data: () => new Promise<string>((r) => (release = r)),
    });
    const h = await harness(plainLocalDomains({ 'example.test': dest as unknown as Sink }), { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 30_000 });
    const id = await deferredTwice(h, clock);
    clock.advance(5 * MIN);
    await expect.poll(dest.datas).toBe(1);
    const stopping = h.queue.stop();
    release('451 4.7.1 greylisted, come back later');
    await stopping;
    const deferred = h.events.filter((e) => e.kind === 'deferred');
    expect(deferred).toHaveLength(3);
    expect(deferred[2]).toMatchObject({ queueId: id, reason: expect.stringMatching(/greylisted/), nextAttemptAt: clock.now() + 15 * MIN });
    expect(await readState(h.dir, id)).toMatchObject({ attempts: 3, nextAttemptAt: clock.now() + 15 * MIN, lastError: expect.stringMatching(/greylisted/) });

    const q = h.reopen();
    await q.start();
    expect(q.activeDeliveries).toBe(0);
    expect(q.list()[0]).toMatchObject({ attempts: 3, nextAttemptAt: clock.now() + 15 * MIN });
    expect(dest.rcpts()).toBe(3);
  });
});

describe('a failure that merely ends while the stop waits is a real attempt; only what the stop ended is cut', () => {
  it('a destination that refuses connections: counted, the usual delay, a deferred event, not due at the restart', async () => {
    const clock = new FakeClock();
    const port = await closedPort();
    const h = await harness(plainLocalDomains({ 'example.test': { address: `127.0.0.1:${port}` } as Sink }), { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 30_000 });
    const stopping = stopWhenDeliveryStarts(h);
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    await expect.poll(stopping).not.toBeNull();
    await stopping();
    const due = clock.now() + 1 * MIN;
    const deferred = h.events.filter((e) => e.kind === 'deferred');
    expect(deferred).toEqual([expect.objectContaining({ queueId: id, reason: expect.stringMatching(/ECONNREFUSED|refused/), nextAttemptAt: due })]);
    expect(await readState(h.dir, id)).toMatchObject({ attempts: 1, nextAttemptAt: due, lastError: expect.stringMatching(/ECONNREFUSED|refused/) });

    const q = h.reopen();
    await q.start();
    expect(q.activeDeliveries).toBe(0); // not retried at once: it waits for its delay
    expect(q.list()).toEqual([expect.objectContaining({ id, attempts: 1, nextAttemptAt: due })]);
    expect(clock.nextAt()).toBe(due);
  });

  it('a refused connection of an expired message during the stop bounces it', async () => {
    const clock = new FakeClock();
    const port = await closedPort();
    const h = await harness(localDomains({ 'example.test': { address: `127.0.0.1:${port}` } as Sink }, { tls: 'off', maxQueueHours: 1 }), {
      now: clock.now,
      timers: clock,
      random: () => 0.5,
      stopTimeoutMs: 30_000,
    });
    const stopping = stopWhenDeliveryStarts(h);
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test'], undefined, { receivedAt: clock.now() - 2 * 3_600_000 });
    await expect.poll(stopping).not.toBeNull();
    await stopping();
    expect(h.events.filter((e) => e.kind === 'bounced')).toEqual([expect.objectContaining({ queueId: id, reason: expect.stringMatching(/maxQueueHours.*(ECONNREFUSED|refused)/) })]);
    const q = h.reopen();
    await q.start();
    // the message is gone; what is left is the bounce to alice
    expect(q.list().map((m) => m.id)).not.toContain(id);
  });

  it('a server that drops the connection by itself while the stop waits: a real attempt', async () => {
    const clock = new FakeClock();
    let drop!: (reply: string | null) => void;
    const dest = await gatedServer({ rcpt: () => '250 ok', data: () => new Promise((r) => (drop = r)) });
    const h = await harness(plainLocalDomains({ 'example.test': dest as unknown as Sink }), { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 30_000 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    await expect.poll(dest.datas).toBe(1);
    const stopping = h.queue.stop();
    drop(null);
    await stopping;
    const due = clock.now() + 1 * MIN;
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([expect.objectContaining({ queueId: id, nextAttemptAt: due })]);
    expect(await readState(h.dir, id)).toMatchObject({ attempts: 1, nextAttemptAt: due });
  });

  it('a DNS failure (SERVFAIL) while the stop waits: counted, the usual delay, a deferred event', async () => {
    const clock = new FakeClock();
    const dns = gatedResolver();
    const h = await harness({ smtp: { hostname: 'relay.test' }, delivery: { tls: 'off' } }, { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 30_000, resolver: dns.resolver });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@dead.test']);
    await expect.poll(dns.asked).toBe(true);
    const stopping = h.queue.stop();
    dns.answer({ status: 'temperror', reason: 'SERVFAIL' });
    await stopping;
    const due = clock.now() + 1 * MIN;
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([expect.objectContaining({ queueId: id, reason: expect.stringMatching(/MX lookup for dead\.test failed: SERVFAIL/), nextAttemptAt: due })]);
    expect(await readState(h.dir, id)).toMatchObject({ attempts: 1, nextAttemptAt: due, lastError: expect.stringMatching(/SERVFAIL/) });
    const q = h.reopen();
    await q.start();
    expect(q.activeDeliveries).toBe(0);
    expect(q.list()).toEqual([expect.objectContaining({ id, attempts: 1, nextAttemptAt: due })]);
  });

  it('the first address refused while the stop waits: a real attempt; the other addresses are not tried during the stop', async () => {
    const clock = new FakeClock();
    const port = await closedPort();
    const resolver: MxResolver = {
      mx: async () => ({ status: 'ok', records: [{ exchange: '127.0.0.1', priority: 10 }, { exchange: '127.0.0.2', priority: 20 }], ttl: 300 }),
      a: async () => ({ status: 'nodata' }) as DnsAnswer<string>,
      aaaa: async () => ({ status: 'nodata' }) as DnsAnswer<string>,
    };
    const h = await harness({ smtp: { hostname: 'relay.test' }, delivery: { tls: 'off' } }, { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 30_000, resolver, mxPort: port });
    const stopping = stopWhenDeliveryStarts(h);
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@mx.test']);
    await expect.poll(stopping).not.toBeNull();
    await stopping();
    expect(WorkerDeliverer.prototype.deliver).toHaveBeenCalledTimes(1);
    const due = clock.now() + 1 * MIN;
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([
      expect.objectContaining({ queueId: id, reason: expect.stringMatching(/(ECONNREFUSED|refused).*the relay stopped before trying the other addresses/), nextAttemptAt: due }),
    ]);
    expect(await readState(h.dir, id)).toMatchObject({ attempts: 1, nextAttemptAt: due });
  });

  it('a DNS answer that comes after the stop began: no address is tried, not counted, due at the restart', async () => {
    const clock = new FakeClock();
    const dns = gatedResolver();
    const h = await harness({ smtp: { hostname: 'relay.test' }, delivery: { tls: 'off' } }, { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 30_000, resolver: dns.resolver });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@dead.test']);
    await expect.poll(dns.asked).toBe(true);
    const stopping = h.queue.stop();
    dns.answer({ status: 'ok', records: [{ exchange: '127.0.0.1', priority: 10 }], ttl: 300 });
    await stopping;
    expect(h.events.filter((e) => e.kind === 'deferred')).toHaveLength(0);
    const state = await readState(h.dir, id);
    expect(state).toMatchObject({ attempts: 0, lastError: null });
    expect(state.nextAttemptAt).toBeLessThanOrEqual(clock.now());
  });

  it('one recipient refused and one cut in the same attempt: counted, due at the restart for the cut one, an expired refused one is bounced', async () => {
    const clock = new FakeClock();
    const port = await closedPort();
    // never answers: if its delivery got as far as the end of DATA, the stop's close would cut it (it is not tried at all here)
    const hung = await gatedServer({ rcpt: () => '250 ok', data: () => new Promise<string>(() => {}) });
    const h = await harness(
      localDomains({ 'refused.test': { address: `127.0.0.1:${port}` } as Sink, 'hung.test': hung as unknown as Sink }, { tls: 'off', maxQueueHours: 1 }),
      { now: clock.now, timers: clock, random: () => 0.5, stopTimeoutMs: 30_000 },
    );
    // the stop begins when the refused destination's delivery starts: the other job is not tried (or, if it got that far, closed)
    const stopping = stopWhenDeliveryStarts(h, port);
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refused.test', 'carol@hung.test'], undefined, { receivedAt: clock.now() - 2 * 3_600_000 });
    await expect.poll(stopping).not.toBeNull();
    await stopping();
    // the refused recipient had its real last try: bounced; the cut one stays, due at once, with no deferred event
    expect(h.events.filter((e) => e.kind === 'bounced')).toEqual([expect.objectContaining({ queueId: id, to: ['bob@refused.test'] })]);
    expect(h.events.filter((e) => e.kind === 'deferred')).toHaveLength(0);
    const state = await readState(h.dir, id);
    expect(state).toMatchObject({ attempts: 1 });
    expect(state.nextAttemptAt).toBeLessThanOrEqual(clock.now());
    expect((state as unknown as { rcpts: Record<string, { status: string }> }).rcpts).toMatchObject({ 'bob@refused.test': { status: 'bounced' }, 'carol@hung.test': { status: 'pending' } });
  });
});
