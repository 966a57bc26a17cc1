/**
 * Management calls that scan the stored history (events.subscribe's backlog, events.query by CIDR) must not hold the
 * relay's event loop, which runs every SMTP session, for the whole scan. Against a real relay (SMTP, wss, history on
 * disk with 200,000 stored events) in this process:
 *  - each page of a scan runs in an event-loop turn of its own (counted with setImmediate ticks, not timed), and an
 *    SMTP client that connects once the scan has begun is greeted before the call is answered;
 *  - a subscribe's backlog and the live events after it are one stream: ids consecutive, none missing, none twice,
 *    while events are emitted between the scan's pages;
 *  - the text filter tested on the stored JSON before parsing finds exactly what the filter on parsed events finds;
 *  - a session that closes mid-scan leaves no subscription behind, stops its scan, and the relay serves on.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import type { Params, Result } from '../shared/protocol.ts';
import { compileFilter } from '../relay/manage/filter.ts';
import { Relay } from '../relay/relay.ts';
import { EventHistory, eventJson } from '../relay/store/history.ts';
import { RawSmtp } from './helpers/smtp-client.ts';
import { WssClient } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

const STORED = 200_000;
const T0 = Date.now() - 3_600_000;

/** The stored load: connects and rejections from 192.0.2.0/24, a few with texts the filters look for. */
function storedEvent(id: number): RelayEvent {
  const ip = `192.0.2.${id % 250}`;
  const at = T0 + Math.floor(id / 100);
  if (id % 4 === 0) {
    // a few rejections carry texts a filter looks for: upper case, a quote (escaped in the JSON), non-ASCII
    const text =
      id % 20_000 === 0 ? '5.7.1 Needle in the HAYSTACK' : id % 30_004 === 0 ? '5.7.1 say "hi" to Ärger' : '5.1.1 no such user';
    return { id, at, kind: 'rejected', sessionId: `s${id}`, ip, stage: 'rcpt', rule: 'recipient.unknown', code: 550, text, enforced: true } as RelayEvent;
  }
  return { id, at, kind: 'connect', sessionId: `s${id}`, ip, port: 1000 + (id % 50_000) } as RelayEvent;
}

let dir: string;
let relay: Relay;
let token: string;
const clients: WssClient[] = [];
/** every event the relay's bus emitted (the live part) */
const emitted: RelayEvent[] = [];

async function client(): Promise<WssClient> {
  const c = await WssClient.connect(relay.manageAddress.port, relay.identity.fingerprint256);
  clients.push(c);
  await c.login(token);
  return c;
}

/** setImmediate ticks: each one is a turn of the event loop in which other work (SMTP, sockets) could run */
let ticks = 0;
let ticking = false;
function startTicking(): () => void {
  ticking = true;
  const tick = () => {
    if (!ticking) return;
    ticks++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return () => {
    ticking = false;
  };
}

type Wrapped = 'rangeDesc' | 'query';
/** Watch one history read method: the tick count at each page it reads, and a hook run at each page. */
function watchPages(method: Wrapped, onPage: (page: number) => void = () => {}): { pages: number[]; restore: () => void } {
  const h = relay.history as unknown as Record<Wrapped, (...a: unknown[]) => unknown>;
  const orig = h[method];
  const pages: number[] = [];
  h[method] = function (this: unknown, ...a: unknown[]) {
    pages.push(ticks);
    onPage(pages.length);
    return orig.apply(relay.history, a);
  };
  return {
    pages,
    restore: () => {
      h[method] = orig;
    },
  };
}

/** Run a call while watching its pages; an SMTP client connects at the first page. Says what arrived first. */
async function scanWithSmtp<T>(method: Wrapped, call: () => Promise<T>): Promise<{ result: T; pages: number[]; order: string[] }> {
  const order: string[] = [];
  let greeted: Promise<void> | null = null;
  const w = watchPages(method, (page) => {
    if (page !== 1) return;
    greeted = RawSmtp.connect(relay.smtpAddress.port).then(async (smtp) => {
      const g = await smtp.read(20_000);
      order.push(`greeting ${g?.code}`);
      await smtp.quit();
    });
  });
  const stop = startTicking();
  try {
    const result = await call();
    order.push('reply');
    await greeted;
    return { result, pages: w.pages, order };
  } finally {
    stop();
    w.restore();
  }
}

/** Each page was read in a turn of its own: the tick count differs from one page to the next. */
function expectOwnTurns(pages: number[]): void {
  expect(pages.length).toBeGreaterThan(10);
  for (let i = 1; i < pages.length; i++) expect(pages[i], `page ${i} read in the same event-loop turn as page ${i - 1}`).toBeGreaterThan(pages[i - 1]!);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-scan-yield-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ checks: { reverseDns: { mode: 'off' }, senderDomain: { mode: 'off' } } }));
  // the history the relay will open: 200,000 stored events, ids 1..200,000 (the bus goes on after them)
  const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), log: () => {} });
  h.load((function* () {
    for (let id = 1; id <= STORED; id++) yield storedEvent(id);
  })());
  h.close();
  relay = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', manageListen: '127.0.0.1:0', log: () => {}, history: { flushMs: 20 } });
  relay.bus.subscribe((e) => emitted.push(e));
  token = fs.readFileSync(path.join(dir, 'admin-token'), 'utf8').trim();
}, 60_000);

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await waitFor(() => relay.manage!.subscribedSessions === 0, 'the closed sessions to leave the fan-out');
});

afterAll(async () => {
  await relay?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Every matching event with id > sinceId: the stored load, then what the bus emitted, oldest first. */
function expected(sinceId: number, pred: (e: RelayEvent) => boolean): number[] {
  const out: number[] = [];
  for (let id = sinceId + 1; id <= STORED; id++) if (pred(storedEvent(id))) out.push(id);
  for (const e of emitted) if (e.id > sinceId && pred(e)) out.push(e.id);
  return out;
}

describe('history scans yield to the event loop', () => {
  it('events.subscribe with a text filter that matches nothing: every page in its own turn, SMTP greeted before the answer', async () => {
    const c = await client();
    const { result, pages, order } = await scanWithSmtp('rangeDesc', () => c.call('events.subscribe', { sinceId: 0, filter: { text: 'no such text anywhere' } }, 30_000));
    expect(result.backlog).toEqual([]);
    expectOwnTurns(pages);
    expect(order).toEqual(['greeting 220', 'reply']);
  });

  it('events.query by a CIDR that matches nothing: every page in its own turn, SMTP greeted before the answer', async () => {
    const c = await client();
    const { result, pages, order } = await scanWithSmtp('query', () => c.call('events.query', { ip: '203.0.113.0/24' }, 30_000));
    expect(result.events).toEqual([]);
    expectOwnTurns(pages);
    expect(order).toEqual(['greeting 220', 'reply']);
  });
});

describe('a backlog read while events go on', () => {
  /** Subscribe while the bus emits between the scan's pages; the backlog and the batches that follow, in order. */
  async function subscribeDuringEvents(params: Params<'events.subscribe'>, live: (n: number) => string, final: string) {
    const c = await client();
    let n = 0;
    const w = watchPages('rangeDesc', () => {
      // between this page and the next: two events, as SMTP sessions would emit them
      setImmediate(() => {
        for (let k = 0; k < 2; k++) relay.bus.emit({ kind: 'connect', sessionId: live(n++), ip: '127.0.0.9', port: 25 });
      });
    });
    let sub: Result<'events.subscribe'>;
    try {
      sub = await c.call('events.subscribe', params, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pages.length).toBeGreaterThan(2);
    // events after the answer too
    for (let k = 0; k < 3; k++) relay.bus.emit({ kind: 'connect', sessionId: live(n++), ip: '127.0.0.9', port: 25 });
    // the last one matches the filter: once it has come, everything before it has
    const last = relay.bus.emit({ kind: 'connect', sessionId: final, ip: '127.0.0.9', port: 25 }).id;
    await c.waitFor(() => c.events(sub.subscriptionId).length > 0 && c.events(sub.subscriptionId).at(-1)!.id >= last, 5000, 'the live events');
    const batches = c.of('events.batch').filter((b) => b.subscriptionId === sub.subscriptionId);
    expect(batches.every((b) => b.dropped === undefined)).toBe(true);
    return { sub, live: batches.flatMap((b) => b.events), emittedDuring: n - 3 };
  }

  it('unfiltered: ids consecutive from the backlog into the batches, none missing, none twice', async () => {
    // some events in the bus's memory before the call, the rest of the backlog from the history below it
    for (let k = 0; k < 5; k++) relay.bus.emit({ kind: 'connect', sessionId: `before-${k}`, ip: '127.0.0.8', port: 25 });
    const sinceId = STORED - 9_000;
    const { sub, live, emittedDuring } = await subscribeDuringEvents({ sinceId }, (n) => `live-${n}`, 'live-final');
    expect(emittedDuring).toBeGreaterThan(0);
    expect(sub.truncated).toBe(false);
    const ids = [...sub.backlog, ...live].map((e) => e.id);
    expect(ids[0]).toBe(sinceId + 1);
    expect(ids.at(-1)).toBe(relay.bus.lastId);
    for (let i = 1; i < ids.length; i++) expect(ids[i], `after ${ids[i - 1]}`).toBe(ids[i - 1]! + 1);
    // the backlog ends at lastId, the batches start right after it
    expect(sub.backlog.at(-1)!.id).toBe(sub.lastId);
    expect(live[0]!.id).toBe(sub.lastId + 1);
    // events emitted while the backlog was read came as live events, not in the backlog
    expect(live.filter((e) => e.sessionId?.startsWith('live-')).length).toBeGreaterThanOrEqual(emittedDuring);
  });

  it('with a text filter: exactly the matching events, backlog then batches, none twice', async () => {
    const sinceId = 0;
    const filter = { text: 'NEEDLE' };
    const test = compileFilter(filter).test;
    const { sub, live, emittedDuring } = await subscribeDuringEvents({ sinceId, filter }, (n) => (n % 2 ? `needle-${n}` : `other-${n}`), 'needle-final');
    expect(emittedDuring).toBeGreaterThan(2);
    const got = [...sub.backlog, ...live].map((e) => e.id);
    expect(new Set(got).size).toBe(got.length);
    expect(got).toEqual(expected(sinceId, test));
    expect(live.some((e) => e.sessionId!.startsWith('needle-'))).toBe(true);
    expect(got.filter((id) => id <= STORED)).toHaveLength(STORED / 20_000);
  });
});

describe('the text filter on the stored JSON', () => {
  it('the stored JSON of every event is exactly eventJson of the parsed event', () => {
    // the stored load (written by load() on the main thread) and the live events (written by the writer thread)
    const db = (relay.history as unknown as { db: { prepare(sql: string): { all(...a: unknown[]): { json: string }[] } } }).db;
    const raw = db.prepare('SELECT json FROM events WHERE id % 30004 = 0 OR id > ? ORDER BY id').all(STORED - 1000);
    expect(raw.length).toBeGreaterThan(1000);
    for (const r of raw) expect(eventJson(JSON.parse(r.json) as RelayEvent)).toBe(r.json);
  });

  for (const text of ['needle', 'HayStack', '"hi\\"', 'ärger', '"kind":"rejected","sessionid":"s19996"', 'no such text']) {
    it(`text ${JSON.stringify(text)}: the same events as the filter on parsed events`, async () => {
      const c = await client();
      const test = compileFilter({ text }).test;
      const want = expected(0, test);
      const sub = await c.call('events.subscribe', { sinceId: 0, filter: { text } }, 30_000);
      expect(sub.backlog.map((e) => e.id)).toEqual(want.slice(-10_000));
      if (text !== 'no such text') expect(want.length).toBeGreaterThan(0);
    });
  }

  it('events.query by a CIDR: the same events as the filter on parsed events, page after page', async () => {
    const c = await client();
    const test = compileFilter({ ip: '192.0.2.8/29' }).test;
    const want = expected(0, test).reverse();
    expect(want.length).toBeGreaterThan(5000);
    const got: number[] = [];
    let cursor: number | undefined;
    for (let calls = 0; ; calls++) {
      expect(calls).toBeLessThan(10);
      const r = await c.call('events.query', { ip: '192.0.2.8/29', limit: 2000, ...(cursor !== undefined ? { cursor } : {}) }, 30_000);
      got.push(...r.events.map((e) => e.id));
      if (!r.more) break;
      cursor = r.nextCursor!;
    }
    expect(got).toEqual(want);
  });
});

describe('a session that goes away mid-scan', () => {
  it('closed while its subscribe reads the history: the scan stops, no subscription is left, the relay serves the next client', async () => {
    const c = await client();
    const w = watchPages('rangeDesc', (page) => {
      if (page === 3) c.ws.terminate();
    });
    let seen: number;
    try {
      // never answered: the socket is gone
      void c.request({ jsonrpc: '2.0', method: 'events.subscribe', params: { sinceId: 0, filter: { text: 'no such text' } } }, 30_000).catch(() => {});
      await c.closed;
      await waitFor(() => relay.manage!.authenticatedCount() === 0, 'the server to see the close');
      seen = w.pages.length;
      // two more turns of the event loop: a scan that went on would read a page in each
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    } finally {
      w.restore();
    }
    // the scan read at most the page it was in when the close was seen, not all 80
    expect(w.pages.length).toBeLessThanOrEqual(seen + 1);
    expect(w.pages.length).toBeLessThan(20);
    expect(relay.manage!.subscribedSessions).toBe(0);
    // the next console and the next SMTP client are served
    const next = await client();
    const sub = await next.call('events.subscribe', { sinceId: relay.bus.lastId - 3 });
    expect(sub.backlog.length).toBeLessThanOrEqual(3);
    const stats = await next.call('stats.get', {});
    expect(stats.manage.subscriptions).toBe(1);
    const smtp = await RawSmtp.connect(relay.smtpAddress.port);
    expect((await smtp.hello()).code).toBe(250);
    await smtp.quit();
  });

  it('subscribes racing on one session: never more than the limit, whatever their scans', async () => {
    const c = await client();
    const all = await Promise.all(
      Array.from({ length: 10 }, () => c.request({ jsonrpc: '2.0', method: 'events.subscribe', params: { sinceId: 0, filter: { text: 'no such text' } } }, 30_000)),
    );
    expect(all.filter((r) => 'result' in r)).toHaveLength(8);
    // a limit, not a rate: -32600 (unsubscribe one first), not 4029 with nothing to wait for
    expect(all.filter((r) => 'error' in r).map((r) => (r.error as { code: number }).code)).toEqual([-32600, -32600]);
    const stats = await c.call('stats.get', {});
    expect(stats.manage.subscriptions).toBe(8);
  });
});
