/**
 * The event fan-out over a real relay and real wss consoles: only sessions holding a subscription are in it; each
 * subscription still gets exactly what its filter matches; a session that unsubscribes (its last subscription) or
 * closes (itself, or revoked by the relay) gets nothing more and leaves the fan-out set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '../shared/protocol.ts';
import type { EventInput } from '../shared/events.ts';
import { waitFor } from './helpers/wait.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';

let t: ManageRelay;
const fanout = () => t.relay.manage!.subscribedSessions;

beforeAll(async () => {
  t = await startManageRelay();
});
afterAll(async () => {
  await t?.stop();
});

const connect = (ip: string): EventInput => ({ kind: 'connect', sessionId: `c-${ip}`, ip });
const delivered = (queueId: string): EventInput => ({ kind: 'delivered', sessionId: null, ip: null, queueId, to: ['a@b'], host: 'mx.example.com', tls: false, response: '250 ok' });
const rejected = (ip: string): EventInput => ({
  kind: 'rejected',
  sessionId: `r-${ip}`,
  ip,
  stage: 'mail',
  rule: 'limits.messagesPerHour',
  code: 450,
  text: '4.7.1 too much',
  enforced: true,
});
/** what a subscription received, as "kind ip-or-queueId" */
const got = (c: WssClient, sub: string) =>
  c.events(sub).map((e) => `${e.kind} ${e.kind === 'delivered' ? (e as { queueId: string }).queueId : e.ip}`);

describe('event fan-out', () => {
  let a: WssClient;
  let b: WssClient;
  let idle: WssClient;
  let sa: string;
  let sb1: string;
  let sb2: string;

  it('reaches the subscribed sessions only, each subscription with its own filter', async () => {
    a = (await t.clientWithRole('viewer', 'fan-a')).client;
    b = (await t.clientWithRole('viewer', 'fan-b')).client;
    idle = (await t.clientWithRole('viewer', 'fan-idle')).client;
    const anon = await t.connect();
    expect(fanout()).toBe(0);
    sa = (await a.call('events.subscribe', { filter: { ip: '192.0.2.0/24' } })).subscriptionId;
    expect(fanout()).toBe(1);
    sb1 = (await b.call('events.subscribe', { filter: { kinds: ['delivered'] } })).subscriptionId;
    sb2 = (await b.call('events.subscribe', { filter: { rejectionsOnly: true } })).subscriptionId;
    // a session with two subscriptions is in the fan-out once
    expect(fanout()).toBe(2);
    expect((await idle.call('stats.get', {})).manage.subscriptions).toBe(3);

    const bus = t.relay.bus;
    bus.emit(connect('192.0.2.7'));
    bus.emit(connect('198.51.100.9'));
    bus.emit(delivered('Q1'));
    bus.emit(rejected('198.51.100.9'));
    // the last events of each subscription: once they are in, everything before them is
    bus.emit(rejected('192.0.2.8'));
    bus.emit(delivered('Q2'));
    await a.waitFor(() => got(a, sa).includes('rejected 192.0.2.8'), 5000, 'the ip subscription');
    await b.waitFor(() => got(b, sb1).includes('delivered Q2') && got(b, sb2).includes('rejected 192.0.2.8'), 5000, 'both subscriptions of b');
    expect(got(a, sa)).toEqual(['connect 192.0.2.7', 'rejected 192.0.2.8']);
    expect(got(b, sb1)).toEqual(['delivered Q1', 'delivered Q2']);
    expect(got(b, sb2)).toEqual(['rejected 198.51.100.9', 'rejected 192.0.2.8']);
    expect(idle.of('events.batch')).toEqual([]);
    expect(anon.of('events.batch')).toEqual([]);
    await anon.close();
  });

  it('an unsubscribed session gets nothing more and leaves the fan-out; one with a subscription left stays', async () => {
    expect(await b.call('events.unsubscribe', { subscriptionId: sb2 })).toEqual({ ok: true });
    expect(fanout()).toBe(2);
    expect(await a.call('events.unsubscribe', { subscriptionId: sa })).toEqual({ ok: true });
    expect(fanout()).toBe(1);
    const aBatches = a.of('events.batch').length;
    const sb2Events = got(b, sb2).length;

    t.relay.bus.emit(connect('192.0.2.9'));
    t.relay.bus.emit(rejected('192.0.2.10'));
    t.relay.bus.emit(delivered('Q3'));
    await b.waitFor(() => got(b, sb1).includes('delivered Q3'), 5000, 'the remaining subscription');
    // one more batch interval for anything that would still be on its way
    await new Promise((r) => setTimeout(r, 3 * t.relay.manage!.limits.batchIntervalMs));
    expect(a.of('events.batch')).toHaveLength(aBatches);
    expect(got(b, sb2)).toHaveLength(sb2Events);
    expect(got(b, sb1)).toEqual(['delivered Q1', 'delivered Q2', 'delivered Q3']);

    expect(await b.call('events.unsubscribe', { subscriptionId: sb1 })).toEqual({ ok: true });
    expect(fanout()).toBe(0);
    expect((await b.call('stats.get', {})).manage.subscriptions).toBe(0);
    // subscribing again puts it back
    const again = (await a.call('events.subscribe', { filter: { kinds: ['delivered'] } })).subscriptionId;
    expect(fanout()).toBe(1);
    t.relay.bus.emit(delivered('Q4'));
    await a.waitFor(() => got(a, again).includes('delivered Q4'), 5000, 'the new subscription');
    expect(got(a, again)).toEqual(['delivered Q4']);
    await a.call('events.unsubscribe', { subscriptionId: again });
    expect(fanout()).toBe(0);
  });

  it('a session that closes, or that the relay closes, gets nothing more and leaves the fan-out', async () => {
    const watcher = (await t.clientWithRole('viewer', 'fan-watch')).client;
    const closing = (await t.clientWithRole('viewer', 'fan-close')).client;
    const revoked = await t.clientWithRole('viewer', 'fan-revoke');
    const sw = (await watcher.call('events.subscribe', { filter: { kinds: ['delivered'] } })).subscriptionId;
    await closing.call('events.subscribe', {});
    const sr = (await revoked.client.call('events.subscribe', {})).subscriptionId;
    expect(fanout()).toBe(3);

    await closing.close();
    await waitFor(() => fanout() === 2, 'the closed session to leave the fan-out', 5000);

    const admin = await t.admin();
    expect((await admin.call('tokens.revoke', { name: revoked.name })).closedSessions).toBe(1);
    expect((await revoked.client.closed).code).toBe(CloseCode.TokenRevoked);
    await waitFor(() => fanout() === 1, 'the revoked session to leave the fan-out', 5000);
    const revokedEvents = got(revoked.client, sr).length;

    t.relay.bus.emit(delivered('Q5'));
    await watcher.waitFor(() => got(watcher, sw).includes('delivered Q5'), 5000, 'the watcher');
    expect(got(revoked.client, sr)).toHaveLength(revokedEvents);
    expect(fanout()).toBe(1);
    expect((await admin.call('stats.get', {})).manage.subscriptions).toBe(1);
    await watcher.close();
    await waitFor(() => fanout() === 0, 'the last session to leave the fan-out', 5000);
  });
});
