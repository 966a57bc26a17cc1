/**
 * Trusted IP groups as the SMTP front applies them (CIDR, range, IPv6 on ::1, expiry on the fake clock,
 * IPv4-mapped IPv6), and the immediate effect of a config change on a session that is already open.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readQueuedMessage } from '../relay/queue/files.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { openAsRemote } from './helpers/remote-client.ts';
import { waitFor } from './helpers/wait.ts';
import { DEFAULT_ZONE, startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

let t: TestRelay | null = null;
const { clients, open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

const change = (fn: (d: import('../shared/config.ts').Config) => void) => t!.relay.config.modify(fn, { by: 'test', source: 'test' });

/** Two messages from ip: the second is refused (450) unless ip is exempt. Returns the second MAIL FROM code. */
async function secondMailCode(port: number, ip: string, host?: string): Promise<number> {
  const c = await open(port, ip, host);
  await c.hello();
  for (let i = 0; ; i++) {
    const r = await c.cmd('MAIL FROM:<a@example.org>');
    if (i === 1) {
      await c.quit();
      return r.code;
    }
    expect(r.code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
  }
}

describe('trusted groups', () => {
  it('CIDR and range entries exempt the addresses inside them, and only those', async () => {
    t = await startTestRelay({
      limits: { messagesPerHour: { max: 1 } },
      groups: { Trusted: [{ address: '127.0.0.24/30', comment: 'office' }, { address: '127.0.0.28-127.0.0.30' }] },
    });
    for (const ip of ['127.0.0.24', '127.0.0.27', '127.0.0.28', '127.0.0.30']) expect(await secondMailCode(t.port, ip), ip).toBe(250);
    for (const ip of ['127.0.0.23', '127.0.0.31']) expect(await secondMailCode(t.port, ip), ip).toBe(450);
  });

  it('an entry with expiresAt matches until that moment, then stops matching, in an open session too', async () => {
    t = await startTestRelay({
      limits: { messagesPerHour: { max: 1 } },
      groups: { Trusted: [{ address: '127.0.0.33', expiresAt: '2026-11-27T12:30:00Z', comment: 'for half an hour' }] },
    });
    const c = await open(t.port, '127.0.0.33');
    await c.hello();
    for (let i = 0; i < 2; i++) {
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(250); // Trusted is in relay.allowGroups
      expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    }
    t.clock.advance(30 * 60_000 - 1); // 12:29:59.999
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RSET')).code).toBe(250);
    t.clock.advance(1); // 12:30:00: expired; the two messages are still in the last hour
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(450);
    // and no longer relays either once expired
    const d = await open(t.port, '127.0.0.33');
    await d.hello();
    t.relay.anvil.forgive('127.0.0.33');
    expect((await d.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await d.cmd('RCPT TO:<user@remote.example>')).code).toBe(554);
  });

  it('an IPv6 client on ::1 matches IPv6 entries, is named in replies and counted per limits.ipv6Prefix', async () => {
    // (written another way in DNS than the socket gives it: the same address)
    const zone = { ...DEFAULT_ZONE, ptr: { ...DEFAULT_ZONE.ptr, '::1': ['localhost6.test'] }, aaaa: { 'localhost6.test': ['0:0:0:0:0:0:0:1'] } };
    t = await startTestRelay({ limits: { messagesPerHour: { max: 1 } }, groups: { Trusted: [] } }, { zone, relay: { smtpListen: '[::1]:0' } });
    const first = await open(t.port, '::1', '::1');
    await first.hello();
    await first.cmd('MAIL FROM:<a@example.org>');
    await first.cmd('RCPT TO:<alice@example.com>');
    expect((await first.data('Subject: x\r\n\r\nx')).code).toBe(250);
    await first.quit();
    // the Received header names it as RFC 5321's IPv6 address literal
    const acc = t.events.find((e) => e.kind === 'accepted') as { queueId: string };
    const stored = await readQueuedMessage(path.join(t.dir, 'spool', 'queue'), acc.queueId);
    expect(stored!.data.toString('latin1')).toMatch(/^Received: from \S+ \(localhost6\.test \[IPv6:::1\]\)\r\n/);
    const c = await open(t.port, '::1', '::1');
    await c.hello();
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatchObject({
      code: 450,
      text: '4.7.1 Too much mail from ::1: 1 message in the last hour (limit 1). Try again later.',
    });
    expect(t.relay.anvil.messagesLastHour('::/64')).toBe(1);
    expect(t.events.find((e) => e.kind === 'connect')).toMatchObject({ ip: '::1' });
    change((d) => void d.groups['Trusted']!.push({ address: '::/120' }));
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(250);
  });

  it('IPv4-mapped IPv6 is IPv4: on a dual-stack listener an IPv4 client is its IPv4 address, and a ::ffff: entry matches it', async () => {
    t = await startTestRelay(
      { limits: { messagesPerHour: { max: 1 } }, groups: { Trusted: [{ address: '::ffff:127.0.0.37' }] } },
      { relay: { smtpListen: '[::]:0' } },
    );
    expect(await secondMailCode(t.port, '127.0.0.37', '127.0.0.1')).toBe(250);
    expect(await secondMailCode(t.port, '127.0.0.38', '127.0.0.1')).toBe(450);
    const ips = new Set(t.events.filter((e) => e.kind === 'connect').map((e) => e.ip));
    expect([...ips].sort()).toEqual(['127.0.0.37', '127.0.0.38']);
    expect(t.relay.anvil.messagesLastHour('127.0.0.38')).toBe(1);
  });
});

describe('IPv6 clients are counted per limits.ipv6Prefix', () => {
  it('two addresses in one /64 share the per-IP limits; another /64 does not; a /128 prefix counts each address', async () => {
    t = await startTestRelay({ limits: { concurrentConnections: { max: 1 } } });
    const remote = async (ip: string) => {
      const c = await openAsRemote(t!.relay, ip);
      clients.push(c);
      return c;
    };
    const a = await remote('2001:db8:1:2::a');
    expect((await a.hello()).code).toBe(250);
    const b = await remote('2001:db8:1:2:ffff::b');
    expect(await b.read()).toMatchObject({
      code: 421,
      text: '4.7.0 Too many connections from 2001:db8:1:2:ffff::b: 2 open (limit 1). Close some and try again.',
    });
    expect(t.relay.anvil.connections('2001:db8:1:2::/64')).toBeGreaterThanOrEqual(1);
    const other = await remote('2001:db8:1:3::a');
    expect((await other.hello()).code).toBe(250);
    await waitFor(() => t!.relay.anvil.connections('2001:db8:1:2::/64') === 1, 'the refused connection to be uncounted');
    change((d) => void (d.limits.ipv6Prefix = 128));
    const c = await remote('2001:db8:1:2::c');
    expect((await c.hello()).code).toBe(250);
    expect(t.relay.anvil.connections('2001:db8:1:2::c')).toBe(1);
  });
});

describe('a config change applies to open sessions at their next command', () => {
  it('trusting the IP of an open session lets its next RCPT relay', async () => {
    t = await startTestRelay({});
    const c = await open(t.port, '127.0.0.34');
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(554);
    change((d) => void d.groups['Trusted']!.push({ address: '127.0.0.34', comment: 'trusted from the console' }));
    expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(250);
    // and removing it takes effect just as fast
    change((d) => void (d.groups['Trusted'] = []));
    expect((await c.cmd('RCPT TO:<user2@remote.example>')).code).toBe(554);
  });

  it('a lowered maxRecipients or maxFailedCommands, or a stricter mode, meets the very next command', async () => {
    t = await startTestRelay({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } } });
    const c = await open(t.port, '127.0.0.34');
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<r1@example.com>')).code).toBe(250);
    change((d) => void (d.checks.maxRecipients.max = 1));
    expect((await c.cmd('RCPT TO:<r2@example.com>')).code).toBe(452);
    // one failed command so far (the 452 for a recipient past checks.maxRecipients is not one: see smtp-checks)
    expect((await c.cmd('BOGUS')).code).toBe(500);
    change((d) => void (d.checks.maxFailedCommands.max = 2));
    expect((await c.cmd('BOGUS')).code).toBe(421);
  });

  it('a limit switched from monitor to enforce refuses at the next MAIL FROM', async () => {
    t = await startTestRelay({ checks: { senderDomain: { mode: 'monitor' } } });
    const c = await open(t.port, '127.0.0.34');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@nowhere.example>')).code).toBe(250);
    await c.cmd('RSET');
    change((d) => void (d.checks.senderDomain.mode = 'enforce'));
    expect((await c.cmd('MAIL FROM:<a@nowhere.example>')).code).toBe(550);
  });
});
