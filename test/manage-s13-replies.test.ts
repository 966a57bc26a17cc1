/**
 * Replies are held to back-pressure like events (hostile-client tryout s13, findings 5 and 12): a console that does not
 * read gets no more served (its requests wait, unread, until it reads), a batch stops running requests once its
 * replies reach maxBatchReplyBytes (the rest are told to ask in smaller batches), no frame the relay sends is over
 * maxReplyBytes (a reply past it is replaced by an error saying so), and an events.batch is cut by size too.
 */
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../shared/protocol.ts';
import { manageRelayPerTest, recordSessions } from './helpers/wss-client.ts';

const startRelay = manageRelayPerTest();

const socketOf = (ws: unknown) => (ws as { _socket: net.Socket })._socket;

describe('back-pressure on replies', () => {
  it('a console that does not read gets no more replies queued for it; once it reads, every request is answered', async () => {
    const maxBufferedBytes = 256 * 1024;
    const t = await startRelay({}, { relay: { manageLimits: { maxBufferedBytes, stallTimeoutMs: 30_000 } } });
    await recordSessions(t, 2000, { helo: true, rejected: true });
    const { client } = await t.clientWithRole('viewer');
    const one = await client.call('events.query', { limit: 2000 });
    const replyBytes = JSON.stringify(one).length;
    expect(replyBytes).toBeGreaterThan(200_000);
    socketOf(client.ws).pause();
    const n = 100;
    const replies = Array.from({ length: n }, () => client.request({ jsonrpc: '2.0', method: 'events.query', params: { limit: 2000 } }, 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    // without back-pressure the relay held n replies for it (about 20 MB past what the kernel took); now it holds the
    // replies of the requests under way (maxInFlightRequests) at most
    // (the sessions' send buffers, read directly, so the check does not depend on the relay's own diagnostics)
    const sessions = (t.relay.manage as unknown as { sessions: Set<{ bufferedAmount: number }> }).sessions;
    const unsent = [...sessions].reduce((n, s) => n + s.bufferedAmount, 0);
    expect(unsent).toBe(t.relay.manage!.unsentBytes);
    expect(unsent).toBeLessThanOrEqual(maxBufferedBytes + (t.relay.manage!.limits.maxInFlightRequests + 2) * replyBytes);
    socketOf(client.ws).resume();
    const got = await Promise.all(replies);
    expect(got.filter((r) => 'result' in r)).toHaveLength(n);
  }, 60_000);
});

describe('the size of what the relay sends', () => {
  it('a batch whose replies reach maxBatchReplyBytes runs no more requests: the rest are told to ask in smaller batches', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { maxBatchReplyBytes: 300_000 } } });
    await recordSessions(t, 1000, { helo: true, rejected: true });
    const { client } = await t.clientWithRole('viewer');
    const n0 = client.frames.length;
    const batch = Array.from({ length: 10 }, (_, i) => ({ jsonrpc: '2.0', id: 100 + i, method: 'events.query', params: { limit: 1000 } }));
    client.send(JSON.stringify(batch));
    await client.waitFor(() => client.frames.slice(n0).some(Array.isArray), 10_000, 'the batch reply');
    const reply = client.frames.slice(n0).find(Array.isArray) as { id: number; result?: unknown; error?: { code: number; message: string } }[];
    expect(reply.map((r) => r.id)).toEqual(batch.map((b) => b.id));
    const ran = reply.filter((r) => r.result !== undefined);
    expect(ran.length).toBeGreaterThanOrEqual(1);
    expect(ran.length).toBeLessThan(10);
    for (const r of reply.slice(ran.length)) {
      expect(r.error).toMatchObject({ code: ErrorCode.InvalidRequest, message: expect.stringContaining('smaller batches') });
    }
    expect(JSON.stringify(reply).length).toBeLessThan(300_000 + 250_000);
  });

  it('a reply over maxReplyBytes is replaced by an error saying so (the relay never sends a bigger frame)', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { maxReplyBytes: 100_000 } } });
    await recordSessions(t, 1000, { helo: true });
    const { client } = await t.clientWithRole('viewer');
    const e = await client.callError('events.query', { limit: 2000 });
    expect(e.code).toBe(ErrorCode.InvalidRequest);
    expect(e.message).toMatch(/the reply would be \d+ bytes, more than a frame from the relay carries \(at most 100000 bytes\)/);
    // a smaller one is served
    expect((await client.call('events.query', { limit: 50 })).events).toHaveLength(50);
  });

  it('an events.batch is cut by size as well as by count: the rest follow in the next batches', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { maxReplyBytes: 400_000 } } });
    const { client } = await t.clientWithRole('viewer');
    const sub = await client.call('events.subscribe', { filter: { kinds: ['delivered'] } });
    const pad = 'x'.repeat(4000);
    for (let i = 0; i < 300; i++) t.relay.bus.emit({ kind: 'delivered', sessionId: null, ip: null, queueId: `Q${i}`, to: ['a@b'], host: pad, tls: false, response: '250 ok' });
    await client.waitFor(() => client.events(sub.subscriptionId).length === 300, 10_000, 'all 300 events');
    const batches = client.of('events.batch').filter((b) => b.subscriptionId === sub.subscriptionId);
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches) expect(JSON.stringify(b).length).toBeLessThan(400_000);
  });
});
