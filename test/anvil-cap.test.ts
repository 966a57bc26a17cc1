/**
 * The anvil's client table has a cap (MAX_CLIENTS): a sender rotating through IPv6 networks, or a large botnet, used to
 * grow it without limit (about 850 bytes a client with its rejections; 200,000 clients took 169 MB, and every
 * clients.list sorted them all on the event loop). Past the cap the least recently seen idle client is forgotten; a
 * client with an open connection never is. Unit tests with a fake clock, then a real relay with real SMTP clients.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Anvil, MAX_CLIENTS } from '../relay/clients/anvil.ts';
import { RawSmtp } from './helpers/smtp-client.ts';
import { waitFor } from './helpers/wait.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

function setup(maxClients: number) {
  let now = Date.parse('2026-11-27T12:00:00Z');
  const anvil = new Anvil({ now: () => now, maxClients });
  return { anvil, advance: (ms: number) => void (now += ms) };
}

describe('Anvil at its cap', () => {
  it('defaults to 100,000 clients', () => {
    expect(MAX_CLIENTS).toBe(100_000);
  });

  it('forgets the least recently seen idle client to make room, and counts it', () => {
    const { anvil, advance } = setup(3);
    for (const k of ['a', 'b', 'c']) {
      anvil.connectionOpened(k);
      anvil.messageAccepted(k);
      anvil.connectionClosed(k);
      advance(1000);
    }
    // a is seen again: b is now the least recently seen
    anvil.connectionOpened('a');
    anvil.connectionClosed('a');
    anvil.connectionOpened('d');
    expect(anvil.size).toBe(3);
    expect(anvil.evictions).toBe(1);
    expect(anvil.state('b')).toBeNull();
    expect(anvil.messagesLastHour('a')).toBe(1);
    expect(anvil.messagesLastHour('c')).toBe(1);
  });

  it('never forgets a client with an open connection, however long ago it was seen', () => {
    const { anvil, advance } = setup(2);
    anvil.connectionOpened('held');
    anvil.connectionOpened('held');
    for (let i = 0; i < 50; i++) {
      advance(1000);
      anvil.connectionOpened(`x${i}`);
      anvil.messageAccepted(`x${i}`);
      anvil.connectionClosed(`x${i}`);
    }
    expect(anvil.connections('held')).toBe(2);
    expect(anvil.size).toBe(2);
    expect(anvil.evictions).toBe(49);
  });

  it('making room by dropping a client with nothing left (aged out, not yet swept) is not counted as forgetting', () => {
    const { anvil, advance } = setup(2);
    anvil.connectionOpened('old');
    anvil.messageAccepted('old');
    anvil.connectionClosed('old');
    anvil.connectionOpened('idle');
    anvil.connectionClosed('idle');
    advance(3_600_000);
    anvil.connectionOpened('n1');
    anvil.connectionOpened('n2');
    expect(anvil.state('old')).toBeNull();
    expect(anvil.state('idle')).toBeNull();
    expect(anvil.evictions).toBe(0);
  });

  it('a message accepted counts as seen: the busy client stays, the quiet one goes', () => {
    const { anvil, advance } = setup(2);
    anvil.connectionOpened('busy');
    anvil.connectionOpened('quiet');
    anvil.connectionClosed('quiet');
    advance(1000);
    anvil.messageAccepted('busy');
    anvil.connectionClosed('busy');
    anvil.unknownRecipient('new');
    expect(anvil.state('quiet')).toBeNull();
    expect(anvil.state('busy')).not.toBeNull();
  });

  it('recent() lists the newest first, up to the limit, and counts every match', () => {
    const { anvil, advance } = setup(100);
    for (const k of ['k1', 'k2', 'k3', 'k4', 'k5']) {
      anvil.connectionOpened(k);
      anvil.connectionClosed(k);
      advance(1000);
    }
    anvil.block('k2', { rule: 'limits.unknownRecipients', since: 0, until: Date.parse('2026-11-28T00:00:00Z'), reason: 'test' });
    anvil.connectionOpened('k1');
    expect(anvil.recent(3)).toMatchObject({ total: 5, clients: [{ key: 'k1' }, { key: 'k5' }, { key: 'k4' }] });
    expect(anvil.recent(10, (_k, blocked) => blocked)).toMatchObject({ total: 1, clients: [{ key: 'k2', blocked: { rule: 'limits.unknownRecipients' } }] });
    expect(anvil.recent(0).total).toBe(5);
  });

  it('busiest() gives the top talkers by messages, then connections, leaving idle clients out', () => {
    const { anvil } = setup(100);
    for (const [k, n] of [['m1', 1], ['m5', 5], ['m3', 3], ['m0', 0]] as const) {
      anvil.connectionOpened(k);
      for (let i = 0; i < n; i++) anvil.messageAccepted(k);
      anvil.connectionClosed(k);
    }
    anvil.connectionOpened('open');
    anvil.connectionOpened('open');
    expect(anvil.busiest(3).map((c) => c.key)).toEqual(['m5', 'm3', 'm1']);
    expect(anvil.busiest(10).map((c) => c.key)).toEqual(['m5', 'm3', 'm1', 'open']);
  });
});

describe('a relay whose client table is full', () => {
  const startRelay = manageRelayPerTest();
  const sockets: RawSmtp[] = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
  });
  const open = async (port: number, ip: string) => {
    const s = await RawSmtp.connect(port, { localAddress: ip });
    sockets.push(s);
    return s;
  };

  /** A client that leaves a trace for an hour (an unknown recipient), so the minute's sweep does not forget it. */
  const visit = async (port: number, ip: string) => {
    const s = await open(port, ip);
    expect((await s.hello()).code).toBe(250);
    expect((await s.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await s.cmd('RCPT TO:<nobody@example.com>')).code).toBe(550);
    await s.quit();
  };

  it('keeps enforcing the connection limit for a connected client while others are forgotten, lists newest first, and says so in its log once an hour', async () => {
    const log: string[] = [];
    const t = await startRelay({ limits: { concurrentConnections: { max: 1 } } }, { relay: { maxClients: 3, log: (l) => log.push(l) } });
    const held = await open(t.port, '127.0.0.2');
    expect((await held.hello()).code).toBe(250);
    for (let i = 3; i <= 8; i++) {
      t.clock.advance(1000);
      await visit(t.port, `127.0.0.${i}`);
    }
    await waitFor(() => t.relay.anvil.evictions === 4, 'idle clients to be forgotten');
    // the held client's count survived: its second connection is still over the limit
    const second = await open(t.port, '127.0.0.2');
    expect(await second.read()).toMatchObject({ code: 421, text: expect.stringContaining('Too many connections from 127.0.0.2') });

    const viewer = (await t.clientWithRole('viewer')).client;
    const list = await viewer.call('clients.list', {});
    expect(list.total).toBe(3);
    // 127.0.0.2 was seen last (the refused second connection)
    expect(list.clients.map((c) => c.ip)).toEqual(['127.0.0.2', '127.0.0.8', '127.0.0.7']);
    expect(list.clients[1]!.recentRejections[0]).toMatchObject({ code: 550 });

    const warnings = () => log.filter((l) => l.includes('client table is full'));
    t.relay.sweepClients();
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatch(/^warning: the client table is full \(3 addresses seen in the last hour\); 4 idle clients were forgotten to make room/);
    // more forgotten within the hour: not said again
    await visit(t.port, '127.0.0.9');
    expect(t.relay.anvil.evictions).toBe(5);
    t.relay.sweepClients();
    expect(warnings()).toHaveLength(1);
    // an hour later, the table is still full of clients from more than an hour ago: making room for new ones loses
    // nothing of theirs, and is not counted; then two clients that are live are forgotten: said again, with the
    // count since the last time (the one at 127.0.0.9 included)
    t.clock.advance(3_600_000);
    for (const ip of ['127.0.0.10', '127.0.0.11']) await visit(t.port, ip);
    expect(t.relay.anvil.evictions).toBe(5);
    for (const ip of ['127.0.0.12', '127.0.0.13', '127.0.0.14']) await visit(t.port, ip);
    expect(t.relay.anvil.evictions).toBe(8);
    t.relay.sweepClients();
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]).toMatch(/; 4 idle clients were forgotten/);
    t.relay.sweepClients();
    expect(warnings()).toHaveLength(2);
  });
});
