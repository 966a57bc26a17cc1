/**
 * docs/protocol.md tells console authors how many refused (rate-limited) requests close a management connection. The
 * number must be what the relay does with its default limits: a real relay with DEFAULT_LIMITS, a real wss client that
 * floods requests, and the number of `4029` replies it gets before the relay closes the connection (the refusal that
 * reaches the limit closes it without a reply of its own).
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '../shared/protocol.ts';
import { DEFAULT_LIMITS } from '../relay/manage/server.ts';
import { startManageRelay, type ManageRelay } from './helpers/wss-client.ts';

let t: ManageRelay;

beforeAll(async () => {
  t = await startManageRelay();
});
afterAll(async () => {
  await t?.stop();
});

function documentedLimit(): number {
  const doc = fs.readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
  const m = /(\d[\d,]*) refused requests within 10 s close the connection/.exec(doc);
  if (!m) throw new Error('docs/protocol.md no longer says how many refused requests close the connection');
  return Number(m[1]!.replace(/,/g, ''));
}

describe('docs/protocol.md: refused requests that close a connection', () => {
  it('the documented number is the default limit', () => {
    expect(documentedLimit()).toBe(DEFAULT_LIMITS.floodCloseAfter);
  });

  it('with the default limits, the documented number of refused requests within 10 s closes the connection', async () => {
    const n = documentedLimit();
    const c = await t.admin();
    const frame = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'events.unsubscribe', params: { subscriptionId: 'none' } });
    // the burst, then more than enough refusals (the bucket refills a little while they are sent)
    for (let i = 0; i < DEFAULT_LIMITS.requestBurst + n + 500; i++) c.send(frame);
    const closed = await c.closed;
    expect(closed.code).toBe(CloseCode.RateLimited);
    expect(c.of('session.closed')).toEqual([expect.objectContaining({ reason: 'flood' })]);
    const refused = c.frames.filter((f) => (f as { error?: { code: number } }).error?.code === ErrorCode.RateLimited);
    // the nth refusal closes the connection: n - 1 of them were answered with 4029
    expect(refused.length).toBe(n - 1);
  });
});
