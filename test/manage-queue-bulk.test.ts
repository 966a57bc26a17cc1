/**
 * The queue during an outage, over the management channel, against a real relay over wss: queue.retry {all: true}
 * (and {all: true, destination}) as one audited admin action that answers how many messages it made due and how many
 * were being delivered already; queue.list's `destinations` and its destination filter; stats.get / stats.tick's
 * queue summary (deferred messages, the oldest message, the destinations with their last error and next attempt) and
 * the per-second delivered and deferred counts, in messages. Bad input for every new param is refused with -32602
 * naming the problem.
 *
 * Two local domains deliver to ports where nothing listens (every attempt: connection refused), one to a real sink.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, Methods } from '../shared/protocol.ts';
import { startSink, type Sink } from './helpers/sink.ts';
import { sendMail } from './helpers/smtp-client.ts';
import { waitFor } from './helpers/wait.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';
import { deadPort } from './helpers/outage.ts';

let t: ManageRelay;
let admin: WssClient;
let viewer: WssClient;
let sink: Sink;
let corpPort: number;
let corp: string;
let other: string;

beforeAll(async () => {
  sink = await startSink();
  corpPort = await deadPort();
  const otherPort = await deadPort();
  corp = `local:127.0.0.1:${corpPort}`;
  other = `local:127.0.0.1:${otherPort}`;
  t = await startManageRelay({
    domains: {
      'corp.example': { deliverTo: `127.0.0.1:${corpPort}`, recipients: ['alice', 'bob', 'carol'] },
      'other.example': { deliverTo: `127.0.0.1:${otherPort}`, recipients: ['dan'] },
      'up.example': { deliverTo: `127.0.0.1:${sink.port}`, recipients: ['erin'] },
    },
  });
  admin = await t.admin();
  viewer = (await t.clientWithRole('viewer', 'night-watch')).client;
  // 3 messages for corp.example only, 1 for other.example only, 1 for both (two destinations)
  for (const to of [['alice@corp.example'], ['bob@corp.example'], ['carol@corp.example'], ['dan@other.example'], ['alice@corp.example', 'dan@other.example']]) {
    const r = await sendMail(t.port, { from: 'sender@example.org', to, localAddress: '127.0.0.21' });
    expect(r.data?.code).toBe(250);
  }
  // every message has had its first attempt (refused at once): 5 messages, 6 jobs
  await waitFor(() => t.events.filter((e) => e.kind === 'deferred').length >= 6, 'the first attempts to be deferred', 15_000);
  await waitFor(async () => (await viewer.call('queue.list', {})).items.every((i) => i.status === 'deferred'), 'the attempts to be recorded', 15_000);
});
afterAll(async () => {
  await t?.stop();
  await sink?.close();
});

describe('queue.list: destinations and the destination filter', () => {
  it('lists each message with the destinations its waiting recipients go to', async () => {
    const q = await viewer.call('queue.list', {});
    expect(q.total).toBe(5);
    const byTo = new Map(q.items.map((i) => [i.to.join(','), i.destinations]));
    expect(byTo.get('alice@corp.example')).toEqual([corp]);
    expect(byTo.get('dan@other.example')).toEqual([other]);
    expect(byTo.get('alice@corp.example,dan@other.example')).toEqual([corp, other]);
  });

  it('filters by destination (total counts the filtered list), pages within it, and an unknown destination is an empty list', async () => {
    const c = await viewer.call('queue.list', { destination: corp });
    expect(c.total).toBe(4);
    expect(c.items.every((i) => i.destinations?.includes(corp))).toBe(true);
    const o = await viewer.call('queue.list', { destination: other });
    expect(o.total).toBe(2);
    expect(o.items.map((i) => i.to.join(',')).sort()).toEqual(['alice@corp.example,dan@other.example', 'dan@other.example']);
    const page = await viewer.call('queue.list', { destination: corp, limit: 3, offset: 3 });
    expect(page).toMatchObject({ total: 4 });
    expect(page.items).toHaveLength(1);
    expect(await viewer.call('queue.list', { destination: 'mx:nowhere.example' })).toEqual({ items: [], total: 0 });
  });

  it('refuses a bad destination with -32602 naming it', async () => {
    for (const destination of ['', 7, null, 'x'.repeat(301), ' ', 'local: 127.0.0.1:25']) {
      const e = await viewer.callError('queue.list', { destination });
      expect(e.code, JSON.stringify(destination)).toBe(ErrorCode.InvalidParams);
      expect(e.message).toMatch(/^invalid params for queue\.list: destination: /);
    }
  });
});

describe('stats: the queue summary and the drain, in messages', () => {
  it('stats.get and stats.tick carry the queue summary: deferred messages, the oldest, the destinations with last error and next attempt', async () => {
    const s = await viewer.call('stats.get', {});
    expect(s.queue).toMatchObject({ size: 5, messages: 5, deferred: 5 });
    const oldest = Math.min(...(await viewer.call('queue.list', {})).items.map((i) => i.receivedAt));
    expect(s.queue.oldestReceivedAt).toBe(oldest);
    const dests = s.queue.destinations!;
    expect(dests.map((d) => [d.destination, d.messages])).toEqual([
      [corp, 4],
      [other, 2],
    ]);
    for (const d of dests) {
      expect(d.lastError, d.destination).toMatch(/refused|ECONNREFUSED/i);
      expect(d.nextAttemptAt).toBeGreaterThan(0);
    }
    // the same figures every second
    const n = viewer.of('stats.tick').length;
    await viewer.waitFor(() => viewer.of('stats.tick').length > n, 3000, 'a stats.tick');
    expect(viewer.of('stats.tick').at(-1)!.queue).toMatchObject({ messages: 5, deferred: 5, oldestReceivedAt: oldest });
  });

  it('the per-second series counts deferred messages (one per attempt of a message, not per destination) and delivered ones', async () => {
    // the message to two destinations made two deferred events in its attempt, the others one each
    expect(t.events.filter((e) => e.kind === 'deferred')).toHaveLength(6);
    const r = await sendMail(t.port, { from: 'sender@example.org', to: ['erin@up.example'], localAddress: '127.0.0.22' });
    expect(r.data?.code).toBe(250);
    await sink.waitFor(1, 10_000);
    await waitFor(() => t.events.some((e) => e.kind === 'delivered'), 'the delivered event');
    // a tick closes the second it was counted in
    const deliveredAt = t.events.find((e) => e.kind === 'delivered')!.id;
    await waitFor(async () => (await viewer.call('stats.get', {})).lastEventId >= deliveredAt, 'the stats to see the delivery');
    const ticks = viewer.of('stats.tick').length;
    await viewer.waitFor(() => viewer.of('stats.tick').length > ticks + 1, 5000, 'two more ticks');
    const s = await viewer.call('stats.get', {});
    const sum = (k: 'delivered' | 'deferred') => s.series.reduce((n, p) => n + (p[k] ?? 0), 0);
    expect(s.totals.deferred).toBe(6);
    expect(sum('deferred')).toBe(5);
    expect(s.totals.delivered).toBe(1);
    expect(sum('delivered')).toBe(1);
    expect(s.series.every((p) => typeof p.delivered === 'number' && typeof p.deferred === 'number')).toBe(true);
  });
});

describe('queue.retry {all: true}: one audited action', () => {
  it('a viewer is refused (4003), as for one message', async () => {
    expect((await viewer.callError('queue.retry', { all: true })).code).toBe(ErrorCode.Forbidden);
    expect((await viewer.callError('queue.retry', { all: true, destination: corp })).code).toBe(ErrorCode.Forbidden);
  });

  it("the result schema: a bulk answer that lost a count does not pass as the one-message answer", () => {
    const r = Methods['queue.retry'].result;
    expect(r.safeParse({ ok: true }).success).toBe(true);
    expect(r.safeParse({ ok: true, scheduled: 3, delivering: 0 }).success).toBe(true);
    expect(r.safeParse({ ok: true, scheduled: 3 }).success).toBe(false);
  });

  it('refuses every bad combination with -32602 naming the problem, and changes nothing', async () => {
    const before = t.auditLines().length;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{}, /id: give id \(one queued message\) or all: true/],
      [{ id: 'x', all: true }, /either id \(one message\) or all: true .*not both/],
      [{ all: false }, /all: all must be true/],
      [{ all: 'yes' }, /all: all must be true/],
      [{ all: null }, /all: all must be true/],
      [{ destination: corp }, /destination goes with all: true/],
      [{ id: 'x', destination: corp }, /destination goes with all: true .*not with id/],
      [{ all: true, destination: '' }, /destination: must not be empty/],
      [{ all: true, destination: 5 }, /destination: must be text/],
      [{ all: true, destination: 'x'.repeat(301) }, /destination: /],
      [{ all: true, destination: ' ' }, /destination: a destination is written without spaces/],
      [{ all: true, destination: 'mx: corp.test' }, /destination: a destination is written without spaces/],
      [{ all: true, limit: 10 }, /limit/],
      [{ id: 7 }, /id: must be text/],
    ];
    for (const [params, words] of cases) {
      const e = await admin.callError('queue.retry', params);
      expect(e.code, JSON.stringify(params)).toBe(ErrorCode.InvalidParams);
      const issues = (e.data as { issues: { path: (string | number)[]; message: string }[] }).issues;
      expect(issues.map((i) => `${i.path.join('.')}: ${i.message}`).join(' | '), JSON.stringify(params)).toMatch(words);
    }
    // the first issue is the error's message
    expect((await admin.callError('queue.retry', { id: 'x', all: true })).message).toBe(
      'invalid params for queue.retry: params: give either id (one message) or all: true (every queued message), not both',
    );
    // refused calls are audited as refused, one line each; nothing was retried
    const lines = t.auditLines().slice(before);
    expect(lines).toHaveLength(cases.length + 1);
    expect(lines.every((l) => l.method === 'queue.retry' && l.ok === false)).toBe(true);
    // the single-message form still works as before
    expect((await admin.callError('queue.retry', { id: 'nope' })).code).toBe(ErrorCode.NotFound);
  });

  it('{all: true, destination}: the messages waiting for that destination, in one call and one audit line', async () => {
    const before = t.auditLines().length;
    const r = await admin.call('queue.retry', { all: true, destination: other });
    // (its dead port makes it down: heldBack and down may come with the answer)
    expect(r).toMatchObject({ ok: true, scheduled: expect.any(Number), delivering: expect.any(Number) });
    const n = r as { scheduled: number; delivering: number };
    expect(n.scheduled + n.delivering).toBe(2);
    const lines = t.auditLines().slice(before);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'queue.retry', by: 'admin', ok: true, params: { all: true, destination: other } });
    // an unknown destination: nothing to do, not an error
    expect(await admin.call('queue.retry', { all: true, destination: 'mx:nowhere.example' })).toEqual({ ok: true, scheduled: 0, delivering: 0 });
  });

  it('{all: true}: every queued message in one call (no flood limit to meet), one audit line, the counts in the answer', async () => {
    // let the attempts of the call above end first, so that every message is waiting again
    await waitFor(async () => (await viewer.call('queue.list', {})).items.every((i) => i.status !== 'delivering'), 'the attempts to end', 15_000);
    const before = t.auditLines().length;
    const since = t.events.length;
    const r = (await admin.call('queue.retry', { all: true })) as { ok: true; scheduled: number; delivering: number };
    expect(r.ok).toBe(true);
    expect(r.scheduled + r.delivering).toBe(5);
    expect(r.scheduled).toBeGreaterThan(0);
    const lines = t.auditLines().slice(before);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'queue.retry', ok: true, params: { all: true } });
    // and it was done: every message was tried again at once (a deferred event for each after the call; the next
    // scheduled attempts are minutes away on the relay's clock, which this test does not move)
    const ids = new Set((await viewer.call('queue.list', {})).items.map((i) => i.id));
    await waitFor(() => {
      const tried = new Set(t.events.slice(since).flatMap((e) => (e.kind === 'deferred' ? [e.queueId] : [])));
      return [...ids].every((id) => tried.has(id));
    }, 'every message to have been tried again', 15_000);
  });
});
