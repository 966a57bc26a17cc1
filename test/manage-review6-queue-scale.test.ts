/**
 * Review 6: queue.list built an item for every queued message (and its destinations), then filtered, sorted and kept
 * one page: about 170 ms of the relay's event loop per call with 100,000 queued messages (every SMTP session waited),
 * every 5 s for each console on the Queue view. Now only the page's items are built. Measured by what the queue
 * builds, not by time (no timing thresholds in tests): a real relay over wss, its queue filled in memory with message
 * records (no bytes; nothing is delivered: their next attempt is an hour away).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedMessage, type QueuedMessage } from '../relay/queue/spool.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';

const N = 5_000;

let t: ManageRelay;
let viewer: WssClient;

/** A queued-message record as the queue holds it, deferred once, due in an hour. */
function fake(i: number, now: number): QueuedMessage {
  const rcpt = `u${i}@d${i % 10}.example`;
  return {
    ...queuedMessage({
      id: `R6${String(i).padStart(10, '0')}`,
      file: `/nonexistent/${i}.msg`,
      seg: null,
      offset: 0,
      envelope: { from: 's@example.org', to: [rcpt], sessionId: `s${i}`, clientIp: '127.0.0.1', clientHostname: null, helo: 'h', authUser: null, receivedAt: now - N + i },
      kind: 'message',
      size: 1000,
      nextAttemptAt: now + 3_600_000,
      data: null,
      hasState: false,
    }),
    attempts: 1,
    lastError: 'connection refused',
  };
}

/** How many queue items the relay builds while `fn` runs (its private item(), counted). */
async function built<T>(fn: () => Promise<T>): Promise<{ items: number; value: T }> {
  const q = t.relay.queue as unknown as { item: (...a: unknown[]) => unknown };
  const orig = q.item;
  let items = 0;
  q.item = function (...a: unknown[]) {
    items++;
    return orig.apply(this, a);
  };
  try {
    const value = await fn();
    return { items, value };
  } finally {
    q.item = orig;
  }
}

beforeAll(async () => {
  t = await startManageRelay({});
  viewer = (await t.clientWithRole('viewer', 'r6-viewer')).client;
  const messages = (t.relay.queue as unknown as { messages: Map<string, unknown> }).messages;
  const now = Date.now();
  // inserted newest first: the page must still come oldest first
  for (let i = N - 1; i >= 0; i--) {
    const m = fake(i, now);
    messages.set(m.id, m);
  }
  expect(t.relay.queue.size).toBe(N);
}, 60_000);
afterAll(async () => {
  (t?.relay.queue as unknown as { messages: Map<string, unknown> } | undefined)?.messages.clear();
  await t?.stop();
});

describe(`queue.list with ${N.toLocaleString('en-US')} queued messages builds only its page`, () => {
  it('a page of 10, oldest first, and the total', async () => {
    const { items, value } = await built(() => viewer.call('queue.list', { limit: 10, offset: 20 }));
    expect(items).toBe(10);
    expect(value.total).toBe(N);
    expect(value.items.map((i) => i.id)).toEqual(Array.from({ length: 10 }, (_, k) => `R6${String(20 + k).padStart(10, '0')}`));
  });

  it("a destination's page of 10 (a console's filter), and that destination's total", async () => {
    const { items, value } = await built(() => viewer.call('queue.list', { limit: 10, offset: 0, destination: 'mx:d7.example' }));
    expect(items).toBe(10);
    expect(value.total).toBe(N / 10);
    expect(value.items.every((i) => i.destinations?.includes('mx:d7.example'))).toBe(true);
  });
});
