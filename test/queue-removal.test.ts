/**
 * Deleting or returning a message (queue.delete, with or without bounce) while the queue is delivering it, against
 * real sinks whose answer to the end of DATA a test holds for as long as it needs (no timing in the test).
 *
 * A delivery under way is never cut: the delete or return is pending until the attempt ends, and the reply says so
 * (Queue: { result: 'pending' }, queue.delete: { ok: true, pending: true }). Until then queue.list shows the message
 * with its pending removal, a repeated request gets the same answer, and a different one is refused (4009); the
 * pending removal is on disk before the reply, so a crash does not bring the message back to delivery. When the attempt
 * ends, the recipients it delivered are reported delivered, and the message leaves the queue (the other recipients
 * deleted, or returned in one DSN). A message whose attempt has not started any connection yet is removed at once,
 * and a return of an idle message answers once its DSN is stored and the message is gone.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode } from '../shared/protocol.ts';
import { isTombstone } from '../relay/queue/files.ts';
import type { DnsAnswer, FaultInjector, MxRecord, MxResolver } from '../relay/queue/spool.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import { FakeClock } from './helpers/queue-clock.ts';
import { copySpool, freshQueue, queueFiles, segmentsOf, until } from './helpers/spool-images.ts';
import { sendMail } from './helpers/smtp-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

const { sink, heldSink, refusingSink, harness } = deliveryFixtures();
const local = plainLocalDomains;
const startRelay = manageRelayPerTest();


const copies: string[] = [];
afterEach(() => {
  for (const d of copies.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** What a relay killed now would hold after its restart (the spool copied, then loaded without delivering). */
async function afterCrash(dir: string) {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-removal-'));
  copies.push(copy);
  copySpool(dir, copy);
  const q = freshQueue(copy);
  await q.start();
  // read at once: a return found pending is carried out next, which needs the disk first
  const items = q.list();
  await q.stop();
  return items;
}

describe('delete and return during a delivery (the queue)', () => {
  it('a delete while the message is being delivered is pending until the attempt ends, listed so, on disk, and answered the same when repeated', async () => {
    const held = await heldSink();
    const h = await harness(local({ 'slow.test': held.sink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@slow.test']);
    await held.arrived;
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: null })]);

    expect(await h.queue.delete(id)).toEqual({ result: 'pending', removal: 'delete' });
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: 'delete' })]);
    expect(await h.queue.delete(id)).toEqual({ result: 'pending', removal: 'delete' });
    expect(await h.queue.bounce(id)).toEqual({ result: 'conflict', removal: 'delete' });
    // killed now, the relay would not deliver it again
    expect(await afterCrash(h.dir)).toEqual([]);

    held.release();
    const delivered = await h.waitEvent('delivered', (e) => e.queueId === id);
    expect(delivered.to).toEqual(['bob@slow.test']);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.queue.list()).toEqual([]);
    expect(await h.queue.delete(id)).toEqual({ result: 'not-found' });
    expect(h.events.filter((e) => e.kind === 'deferred' || e.kind === 'bounced')).toEqual([]);
    expect(held.sink.messages).toHaveLength(1);
  });

  it('a delete of a message whose attempt waits for a connection slot removes it at once: it is never delivered', async () => {
    const held = await heldSink();
    const h = await harness(local({ 'slow.test': held.sink }), { perDestination: 1, connectionCacheMs: 0 });
    await h.queue.start();
    const a = await h.submit('alice@sender.test', ['first@slow.test']);
    await held.arrived;
    const b = await h.submit('alice@sender.test', ['second@slow.test']);
    // b's attempt is queued behind a's delivery (one connection to slow.test at a time)
    expect(h.queue.list().find((i) => i.id === b)).toMatchObject({ status: 'queued', removal: null });

    expect(await h.queue.delete(b)).toEqual({ result: 'removed' });
    expect(h.queue.list().map((i) => i.id)).toEqual([a]);
    expect(await h.queue.delete(b)).toEqual({ result: 'not-found' });

    held.release();
    await h.waitEvent('delivered', (e) => e.queueId === a);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.queue.activeDeliveries).toBe(0);
    expect(held.sink.messages.map((m) => m.to)).toEqual([['first@slow.test']]);
  });

  it('a return while the message is being delivered: the recipients the attempt delivered stay delivered, the others are returned in one DSN', async () => {
    const held = await heldSink({ onRcpt: (rcpt) => (rcpt === 'later@slow.test' ? { code: 451, message: '4.2.0 mailbox busy' } : undefined) });
    const senderSink = await sink();
    const h = await harness(local({ 'slow.test': held.sink, 'sender.test': senderSink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['now@slow.test', 'later@slow.test']);
    await held.arrived;

    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: 'bounce' })]);
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    expect(await h.queue.delete(id)).toEqual({ result: 'conflict', removal: 'bounce' });
    // killed now, the relay would return it after its restart, not deliver it
    expect(await afterCrash(h.dir)).toEqual([expect.objectContaining({ id, removal: 'bounce' })]);

    held.release();
    expect((await h.waitEvent('delivered', (e) => e.queueId === id)).to).toEqual(['now@slow.test']);
    const bounced = await h.waitEvent('bounced', (e) => e.queueId === id);
    expect(bounced.to).toEqual(['later@slow.test']);
    expect(bounced.reason).toMatch(/administrator.*451 4\.2\.0 mailbox busy/);
    const [dsn] = await senderSink.waitFor(1);
    const text = dsn!.data.toString();
    expect(text).toMatch(/Final-Recipient: rfc822; later@slow\.test/);
    expect(text).not.toMatch(/Final-Recipient: rfc822; now@slow\.test/);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([]);
  });

  it('a return of a message not being delivered answers once its DSN is stored and the message has left the queue', async () => {
    const refuse = await refusingSink();
    const senderSink = await sink();
    const h = await harness(local({ 'refuse.test': refuse, 'sender.test': senderSink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);

    expect(await h.queue.bounce(id)).toEqual({ result: 'removed', returned: true });
    expect(h.queue.list().some((i) => i.id === id)).toBe(false);
    expect(await h.queue.bounce(id)).toEqual({ result: 'not-found' });
    expect((await h.waitEvent('bounced', (e) => e.queueId === id)).to).toEqual(['bob@refuse.test']);
    await senderSink.waitFor(1);
  });
});

describe('a return whose DSN cannot be stored', () => {
  /** a spool whose segment commits (a DSN's) fail with ENOSPC while `full` is true */
  const diskFull = () => {
    const state = { full: false };
    const fault: FaultInjector = (op) => {
      if (state.full && op === 'open') throw Object.assign(new Error('ENOSPC: no space left on device, open'), { code: 'ENOSPC' });
    };
    return { state, fault };
  };

  it('asked of a message not being delivered: answered failed, and nothing changed (its error, schedule and recipients)', async () => {
    const refuse = await refusingSink();
    const disk = diskFull();
    const h = await harness(local({ 'refuse.test': refuse }), { fault: disk.fault, probeIntervalMs: 60_000 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    const before = h.queue.list();
    disk.state.full = true;
    const r = await h.queue.bounce(id);
    expect(r).toMatchObject({ result: 'failed', reason: expect.stringMatching(/ENOSPC/) });
    expect(h.queue.list()).toEqual(before);
    expect(h.events.filter((e) => e.kind === 'bounced')).toEqual([]);
    expect(h.events.filter((e) => e.kind === 'deferred')).toHaveLength(1);
  });

  it('pending during a delivery: it stays pending (listed, not delivered again) and is done at its next try', async () => {
    const clock = new FakeClock();
    const disk = diskFull();
    const held = await heldSink({ onRcpt: (rcpt) => (rcpt === 'later@slow.test' ? { code: 451, message: '4.2.0 mailbox busy' } : undefined) });
    const senderSink = await sink();
    const h = await harness(local({ 'slow.test': held.sink, 'sender.test': senderSink }), { now: clock.now, timers: clock, retryDelaysMs: [60_000], jitter: 0, fault: disk.fault, probeIntervalMs: 3_600_000 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['now@slow.test', 'later@slow.test']);
    await held.arrived;
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    disk.state.full = true;
    held.release();
    expect((await h.waitEvent('delivered', (e) => e.queueId === id)).to).toEqual(['now@slow.test']);
    await expect.poll(() => h.queue.list()[0]?.status).toBe('deferred');
    const [item] = h.queue.list();
    expect(item).toMatchObject({ id, removal: 'bounce', to: ['later@slow.test'], done: [{ to: 'now@slow.test', status: 'delivered' }], nextAttemptAt: clock.now() + 60_000 });
    expect(item!.lastError).toMatch(/return to the sender .* not done yet: its bounce could not be stored \(ENOSPC/);
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    // killed now, the relay would still return it after its restart
    expect(await afterCrash(h.dir)).toEqual([expect.objectContaining({ id, removal: 'bounce', to: ['later@slow.test'] })]);

    disk.state.full = false;
    clock.advance(60_000);
    expect((await h.waitEvent('bounced', (e) => e.queueId === id)).to).toEqual(['later@slow.test']);
    await expect.poll(() => senderSink.messages.length).toBe(1);
    await expect.poll(() => h.queue.size).toBe(0);
    // the recipient that got it once never got it again, the refused one was never tried again
    expect(held.sink.messages.map((m) => m.to)).toEqual([['now@slow.test']]);
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([]);
  });
});

describe('queue.delete during a delivery (the management channel)', () => {
  it('answers pending: true, queue.list shows removal "delete", a repeat agrees, a return is refused; the attempt delivers, then 4004', async () => {
    const held = await heldSink();
    const t = await startRelay({ domains: { 'example.com': { deliverTo: held.sink.address, recipients: '*' } }, delivery: { tls: 'off' } });
    const admin = await t.admin();
    const sent = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'] });
    expect(sent.data?.code).toBe(250);
    await held.arrived;
    const [item] = (await admin.call('queue.list', {})).items;
    expect(item).toMatchObject({ status: 'delivering', removal: null });
    const id = item!.id;

    expect(await admin.call('queue.delete', { id })).toEqual({ ok: true, pending: true });
    expect((await admin.call('queue.list', {})).items).toEqual([expect.objectContaining({ id, status: 'delivering', removal: 'delete' })]);
    expect(await admin.call('queue.delete', { id })).toEqual({ ok: true, pending: true });
    const refused = await admin.callError('queue.delete', { id, bounce: true });
    expect(refused.code).toBe(ErrorCode.Conflict);
    expect(refused.message).toMatch(/being deleted/);

    held.release();
    await held.sink.waitFor(1);
    await expect.poll(async () => (await admin.call('queue.list', {})).total).toBe(0);
    expect((await admin.callError('queue.delete', { id })).code).toBe(ErrorCode.NotFound);
  });

  it('answers pending: false for a message not being delivered: it is gone from queue.list at once', async () => {
    const t = await startRelay({ delivery: { tls: 'off' } });
    const admin = await t.admin();
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'] });
    // the first attempt (to 127.0.0.1:9, refused) is over
    await expect.poll(async () => (await admin.call('queue.list', {})).items[0]?.status).toBe('deferred');
    const [item] = (await admin.call('queue.list', {})).items;
    expect(await admin.call('queue.delete', { id: item!.id, bounce: true })).toEqual({ ok: true, pending: false, returned: true });
    expect((await admin.call('queue.list', {})).items.some((i) => i.id === item!.id)).toBe(false);
  });
});

/**
 * Holds the unlinks (fs.unlink, the queue's thread-pool unlink) of the files `which` picks until release():
 * `requested` resolves when the first is asked for. Others go through.
 */
function holdUnlinks(which: (file: string) => boolean) {
  const unlink = fs.unlink;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let request!: () => void;
  const requested = new Promise<void>((r) => (request = r));
  vi.spyOn(fs, 'unlink').mockImplementation(((file: fs.PathLike, cb: fs.NoParamCallback) => {
    if (!which(String(file))) return unlink(file, cb);
    request();
    void released.then(() => unlink(file, cb));
  }) as typeof fs.unlink);
  return { requested, release };
}

/** Lets the held unlinks go one turn of the event loop after the first is asked for: an answer given before is too early. */
function releaseAfterATurn(hold: ReturnType<typeof holdUnlinks>): void {
  void hold.requested.then(() => setImmediate(hold.release));
}

describe('a removal of a message not being delivered is durable before its answer (a crash right after it keeps it)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a delete of a message in its own file: answered once the file is unlinked and the directory fsynced', async () => {
    const refuse = await refusingSink();
    const h = await harness(local({ 'refuse.test': refuse }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    // copied to its own .msg, and the segment it came from gone
    await until(() => segmentsOf(h.dir).length === 0 && queueFiles(h.dir).includes(`${id}.msg`));
    const hold = holdUnlinks((file) => file.endsWith(`${id}.msg`));
    releaseAfterATurn(hold);

    expect(await h.queue.delete(id)).toEqual({ result: 'removed' });
    expect(await afterCrash(h.dir)).toEqual([]);
  });

  it('a return of a message in its own file: answered once its DSN is stored and the original is gone durably', async () => {
    const refuse = await refusingSink();
    const h = await harness(local({ 'refuse.test': refuse }), { perDestination: 1 });
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    await until(() => segmentsOf(h.dir).length === 0 && queueFiles(h.dir).includes(`${id}.msg`));
    // (the DSN waits in the queue: no DNS in this test)
    const hold = holdUnlinks((file) => file.endsWith(`${id}.msg`));
    releaseAfterATurn(hold);

    expect(await h.queue.bounce(id)).toEqual({ result: 'removed', returned: true });
    // the sender was told: the DSN is there after a crash, the original is not
    expect((await afterCrash(h.dir)).map((i) => [i.kind, i.to])).toEqual([['dsn', ['alice@sender.test']]]);
  });

  it('a delete of a message whose attempt waits for a slot, in a segment with another message: answered once its tombstone is written', async () => {
    const held = await heldSink();
    const h = await harness(local({ 'slow.test': held.sink }), { perDestination: 1, connectionCacheMs: 0 });
    await h.queue.start();
    const a = await h.submit('alice@sender.test', ['first@slow.test']);
    await held.arrived;
    // committed together: one segment; both wait behind a's delivery (one connection to slow.test at a time)
    const [b, c] = await Promise.all([h.submit('alice@sender.test', ['second@slow.test']), h.submit('alice@sender.test', ['third@slow.test'])]);
    expect(h.queue.list().filter((i) => i.id === b || i.id === c)).toEqual([expect.objectContaining({ status: 'queued' }), expect.objectContaining({ status: 'queued' })]);

    expect(await h.queue.delete(b!)).toEqual({ result: 'removed' });
    expect((await afterCrash(h.dir)).map((i) => i.id)).toEqual([a, c]);

    held.release();
    await h.waitEvent('delivered', (e) => e.queueId === c);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(held.sink.messages.map((m) => m.to)).toEqual([['first@slow.test'], ['third@slow.test']]);
  });

  it('a delete of a message alone in its segment, its attempt waiting for a slot: answered once the segment is gone durably', async () => {
    const held = await heldSink();
    const h = await harness(local({ 'slow.test': held.sink }), { perDestination: 1, connectionCacheMs: 0 });
    await h.queue.start();
    const a = await h.submit('alice@sender.test', ['first@slow.test']);
    await held.arrived;
    const b = await h.submit('alice@sender.test', ['second@slow.test']);
    const [segB] = segmentsOf(h.dir).filter((s) => !fs.readFileSync(path.join(h.dir, 'queue', s)).includes(a));
    const hold = holdUnlinks((file) => file.endsWith(segB!));
    releaseAfterATurn(hold);

    expect(await h.queue.delete(b)).toEqual({ result: 'removed' });
    expect((await afterCrash(h.dir)).map((i) => i.id)).toEqual([a]);
    held.release();
    await expect.poll(() => h.queue.size).toBe(0);
    expect(held.sink.messages.map((m) => m.to)).toEqual([['first@slow.test']]);
  });
});

/** Makes the writes of `id`'s .state file fail (ENOSPC at its temp file's open) until the returned function is called. */
function failStateWrites(id: string): () => void {
  const open = fs.promises.open;
  const spy = vi.spyOn(fs.promises, 'open').mockImplementation(((file: fs.PathLike, ...rest: unknown[]) => {
    if (path.basename(String(file)).startsWith(`${id}.state.`)) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, open'), { code: 'ENOSPC' }));
    return (open as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(file, ...rest);
  }) as typeof fs.promises.open);
  return () => spy.mockRestore();
}

describe('a pending removal whose record cannot be written', () => {
  afterEach(() => vi.restoreAllMocks());

  for (const kind of ['delete', 'bounce'] as const) {
    it(`${kind}: answered failed with nothing changed (the delivery goes on); asked again, the write is tried again`, async () => {
      const held = await heldSink();
      const senderSink = await sink();
      const h = await harness(local({ 'slow.test': held.sink, 'sender.test': senderSink }));
      await h.queue.start();
      const id = await h.submit('alice@sender.test', ['bob@slow.test']);
      await held.arrived;
      const restore = failStateWrites(id);

      expect(await h.queue[kind](id)).toEqual({ result: 'failed', what: 'record', reason: expect.stringMatching(/ENOSPC/) });
      expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: null })]);
      expect(await afterCrash(h.dir)).toEqual([expect.objectContaining({ id, removal: null })]);
      // the same again: the write is tried again (and fails again)
      expect(await h.queue[kind](id)).toMatchObject({ result: 'failed', what: 'record' });

      restore();
      expect(await h.queue[kind](id)).toEqual({ result: 'pending', removal: kind });
      expect(await afterCrash(h.dir)).toEqual(kind === 'delete' ? [] : [expect.objectContaining({ id, removal: 'bounce' })]);
      held.release();
      await expect.poll(() => h.queue.size).toBe(0);
      expect(held.sink.messages).toHaveLength(1);
    });
  }

  it('queue.delete answers -32603 saying nothing changed, and the message is delivered', async () => {
    const held = await heldSink();
    const t = await startRelay({ domains: { 'example.com': { deliverTo: held.sink.address, recipients: '*' } }, delivery: { tls: 'off' } });
    const admin = await t.admin();
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'] });
    await held.arrived;
    const [item] = (await admin.call('queue.list', {})).items;
    failStateWrites(item!.id);

    const err = await admin.callError('queue.delete', { id: item!.id });
    expect(err.code).toBe(ErrorCode.InternalError);
    expect(err.message).toMatch(/deletion of .* could not be recorded on disk \(ENOSPC.*nothing changed/);
    expect((await admin.call('queue.list', {})).items).toEqual([expect.objectContaining({ id: item!.id, removal: null })]);
    held.release();
    await held.sink.waitFor(1);
  });
});

describe('a pending removal stops the attempt before any new connection', () => {
  /** a resolver whose MX answer the test gives when it wants (A and AAAA: none) */
  function gatedResolver() {
    let answer: ((a: DnsAnswer<MxRecord>) => void) | null = null;
    let ask!: () => void;
    const asked = new Promise<void>((r) => (ask = r));
    const resolver: MxResolver = {
      mx: () =>
        new Promise((r) => {
          answer = r;
          ask();
        }),
      a: async () => ({ status: 'nodata' }),
      aaaa: async () => ({ status: 'nodata' }),
    };
    return { resolver, asked, answer: (a: DnsAnswer<MxRecord>) => answer!(a) };
  }

  for (const kind of ['delete', 'bounce'] as const) {
    it(`${kind} while the job is resolving the destination's MX: no connection is made after the answer`, async () => {
      const target = await sink();
      const senderSink = await sink();
      const dns = gatedResolver();
      const h = await harness({ smtp: { hostname: 'relay.test' }, domains: { 'sender.test': { deliverTo: senderSink.address, recipients: '*' } }, delivery: { tls: 'off' } }, { resolver: dns.resolver, mxPort: target.port });
      await h.queue.start();
      const id = await h.submit('alice@sender.test', ['bob@remote.test']);
      await dns.asked;
      expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering' })]);

      expect(await h.queue[kind](id)).toEqual({ result: 'pending', removal: kind });
      dns.answer({ status: 'ok', records: [{ exchange: '127.0.0.1', priority: 10 }], ttl: 300 });
      await expect.poll(() => h.queue.size).toBe(0);
      expect(target.connections).toBe(0);
      expect(h.events.filter((e) => e.kind === 'delivered' && e.queueId === id)).toEqual([]);
      if (kind === 'bounce') {
        expect((await h.waitEvent('bounced', (e) => e.queueId === id)).to).toEqual(['bob@remote.test']);
        await senderSink.waitFor(1);
      }
    });
  }

  it('delete while the first address does not answer (a dead first MX): the next address is not tried', async () => {
    // the first MX, 127.0.0.1:P, accepts the connection and gives its greeting (a 421) only when the test says
    let greet!: () => void;
    const greeting = new Promise<void>((r) => (greet = r));
    let connected!: () => void;
    const firstConnection = new Promise<void>((r) => (connected = r));
    const dead = net.createServer((sock) => {
      sock.on('error', () => {});
      connected();
      void greeting.then(() => sock.end('421 4.3.2 not now\r\n'));
    });
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as net.AddressInfo).port;
    // the second MX, 127.0.0.2:P, takes mail
    const second = await sink({ host: '127.0.0.2', port });
    try {
      const resolver: MxResolver = {
        mx: async () => ({ status: 'ok', records: [{ exchange: '127.0.0.1', priority: 10 }, { exchange: '127.0.0.2', priority: 20 }], ttl: 300 }),
        a: async () => ({ status: 'nodata' }),
        aaaa: async () => ({ status: 'nodata' }),
      };
      const h = await harness({ smtp: { hostname: 'relay.test' }, delivery: { tls: 'off' } }, { resolver, mxPort: port });
      await h.queue.start();
      const id = await h.submit('alice@sender.test', ['bob@remote.test']);
      await firstConnection;

      expect(await h.queue.delete(id)).toEqual({ result: 'pending', removal: 'delete' });
      greet();
      await expect.poll(() => h.queue.size).toBe(0);
      expect(second.connections).toBe(0);
      expect(second.messages).toEqual([]);
      expect(h.events.filter((e) => e.kind === 'delivered')).toEqual([]);
    } finally {
      await new Promise((r) => dead.close(r));
    }
  });
});

describe('a return asked for now whose DSN cannot be stored changes nothing', () => {
  it('of a message whose attempt has a job done and one waiting for a slot: the waiting job is queued again and delivers', async () => {
    const state = { full: false };
    const fault: FaultInjector = (op) => {
      if (state.full && op === 'open') throw Object.assign(new Error('ENOSPC: no space left on device, open'), { code: 'ENOSPC' });
    };
    const clock = new FakeClock();
    const held = await heldSink();
    let refused!: () => void;
    const refusedOnce = new Promise<void>((r) => (refused = r));
    const refuse = await sink({
      onRcpt: () => {
        refused();
        return { code: 451, message: '4.3.0 not now' };
      },
    });
    const h = await harness(local({ 'slow.test': held.sink, 'refuse.test': refuse }), { perDestination: 1, connectionCacheMs: 0, fault, now: clock.now, timers: clock, probeIntervalMs: 3_600_000 });
    await h.queue.start();
    // a holds slow.test's one slot; m's slow.test job waits for it, its refuse.test job runs and ends
    const a = await h.submit('alice@sender.test', ['first@slow.test']);
    await held.arrived;
    const m = await h.submit('alice@sender.test', ['p@refuse.test', 'q@slow.test']);
    await refusedOnce;
    await expect.poll(() => h.queue.activeDeliveries).toBe(1);
    const before = h.queue.list().find((i) => i.id === m);
    expect(before).toMatchObject({ status: 'delivering', attempts: 0, removal: null });

    state.full = true;
    expect(await h.queue.bounce(m)).toEqual({ result: 'failed', what: 'bounce', reason: expect.stringMatching(/ENOSPC/) });
    expect(h.queue.list().find((i) => i.id === m)).toEqual(before);
    state.full = false;

    // a's delivery ends: m's slow.test job gets the slot, as if nothing had been asked
    held.release();
    expect((await h.waitEvent('delivered', (e) => e.queueId === m)).to).toEqual(['q@slow.test']);
    const deferred = await h.waitEvent('deferred', (e) => e.queueId === m);
    expect(deferred.to).toEqual(['p@refuse.test']);
    expect(h.queue.list().find((i) => i.id === m)).toMatchObject({ attempts: 1, to: ['p@refuse.test'], removal: null });
    expect(held.sink.messages.map((x) => x.to)).toEqual([['first@slow.test'], ['q@slow.test']]);
    expect(h.events.filter((e) => e.kind === 'bounced')).toEqual([]);
    void a;
  });
});

describe('a return that fails unexpectedly', () => {
  afterEach(() => vi.restoreAllMocks());

  it('is answered failed and leaves the message free: a later return or delete is carried out', async () => {
    const refuse = await refusingSink();
    const senderSink = await sink();
    const h = await harness(local({ 'refuse.test': refuse, 'sender.test': senderSink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    vi.spyOn(h.queue as unknown as { returnToSender: () => Promise<unknown> }, 'returnToSender').mockRejectedValueOnce(new Error('a bug'));

    expect(await h.queue.bounce(id)).toEqual({ result: 'failed', what: 'internal', reason: 'a bug' });
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, removal: null })]);
    expect(await h.queue.bounce(id)).toEqual({ result: 'removed', returned: true });
    await senderSink.waitFor(1);
  });

  it('is answered failed, and a delete then removes the message', async () => {
    const refuse = await refusingSink();
    const h = await harness(local({ 'refuse.test': refuse }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    vi.spyOn(h.queue as unknown as { returnToSender: () => Promise<unknown> }, 'returnToSender').mockRejectedValueOnce(new Error('a bug'));

    expect(await h.queue.bounce(id)).toMatchObject({ result: 'failed', what: 'internal' });
    expect(await h.queue.delete(id)).toEqual({ result: 'removed' });
    expect(h.queue.size).toBe(0);
  });
});

describe('what the queue says about a removal', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a return that had no one to tell (a null sender) says no DSN was sent; queue.delete says returned: false', async () => {
    const refuse = await refusingSink();
    const h = await harness(local({ 'refuse.test': refuse }));
    await h.queue.start();
    const id = await h.submit('', ['bob@refuse.test']);
    await h.waitEvent('deferred', (e) => e.queueId === id);
    expect(await h.queue.bounce(id)).toEqual({ result: 'removed', returned: false });
    expect(h.queue.size).toBe(0);
  });

  it('queue.delete with bounce of a message from the null sender: returned: false (a bounce is never bounced)', async () => {
    const t = await startRelay({ delivery: { tls: 'off' } });
    const admin = await t.admin();
    await sendMail(t.port, { from: '', to: ['alice@example.com'] });
    await expect.poll(async () => (await admin.call('queue.list', {})).items[0]?.status).toBe('deferred');
    const [item] = (await admin.call('queue.list', {})).items;
    expect(await admin.call('queue.delete', { id: item!.id, bounce: true })).toEqual({ ok: true, pending: false, returned: false });
  });

  it('a message whose pending return is being carried out (its DSN being stored) is listed as delivering until that is done', async () => {
    const held = await heldSink({ onRcpt: (rcpt) => (rcpt === 'later@slow.test' ? { code: 451, message: '4.2.0 mailbox busy' } : undefined) });
    const senderSink = await sink();
    const h = await harness(local({ 'slow.test': held.sink, 'sender.test': senderSink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['now@slow.test', 'later@slow.test']);
    await held.arrived;
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    // the DSN's store held: the attempt is being recorded
    const q = h.queue as unknown as { returnToSender: (...a: unknown[]) => Promise<unknown> };
    const returnToSender = q.returnToSender.bind(h.queue);
    let letGo!: () => void;
    const storing = new Promise<void>((r) => (letGo = r));
    let asked!: () => void;
    const dsnAsked = new Promise<void>((r) => (asked = r));
    vi.spyOn(q, 'returnToSender').mockImplementation(async (...args: unknown[]) => {
      asked();
      await storing;
      return returnToSender(...args);
    });
    held.release();
    await dsnAsked;
    expect(h.queue.list()).toEqual([expect.objectContaining({ id, status: 'delivering', removal: 'bounce' })]);
    letGo();
    await expect.poll(() => h.queue.size).toBe(0);
    await senderSink.waitFor(1);
  });
});

describe('the record of a pending return', () => {
  it('reads as a deletion to a relay older than "returning" (never delivered there), as a return to this one', async () => {
    const held = await heldSink({ onRcpt: (rcpt) => (rcpt === 'later@slow.test' ? { code: 451, message: '4.2.0 mailbox busy' } : undefined) });
    const h = await harness(local({ 'slow.test': held.sink }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['now@slow.test', 'later@slow.test']);
    await held.arrived;
    expect(await h.queue.bounce(id)).toEqual({ result: 'pending', removal: 'bounce' });
    const stateFile = path.join(h.dir, 'queue', `${id}.state`);
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
    // every relay before it reads a version 1 state with deleted: true as deleted; a file of another version as no
    // state at all (it would deliver to every recipient), so the version stays 1
    expect(state).toMatchObject({ v: 1, deleted: true, returning: true });
    // not a tombstone: the message is still queued (to be returned)
    expect(await isTombstone(stateFile)).toBe(false);
    expect(await afterCrash(h.dir)).toEqual([expect.objectContaining({ id, removal: 'bounce' })]);

    // a state written by the relay that added "returning" (without deleted) is still a return here
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-removal-'));
    copies.push(copy);
    copySpool(h.dir, copy);
    const { deleted: _deleted, ...older } = state;
    fs.writeFileSync(path.join(copy, 'queue', `${id}.state`), JSON.stringify(older));
    const q = freshQueue(copy);
    await q.start();
    expect(q.list()).toEqual([expect.objectContaining({ id, removal: 'bounce' })]);
    await q.stop();
    held.release();
    // returned: only its DSN is left (no server for sender.test here)
    await expect.poll(() => h.queue.list().map((i) => i.kind)).toEqual(['dsn']);
  });
});
