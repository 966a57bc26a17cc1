/**
 * What an administrator finds on the relay's output when more than one message is at stake: a client blocked (the
 * unknown-recipient or failed-login limit) and DNS lookups failing. A tryout saw every sender deferred by a dead DNS
 * server, and a password-guessing client blocked, with nothing on stdout. Bounded: block lines at most BLOCK_LINES a
 * minute (the rest counted in the next line), a DNS line at most once a minute (the failures between counted).
 */
import { describe, expect, it } from 'vitest';
import { BLOCK_LINES } from '../relay/events/fault-log.ts';
import { hashPassword } from '../relay/auth/passwords.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});
const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

describe('the fault log', () => {
  it('says when a client is blocked, once per block, and at most BLOCK_LINES times a minute', async () => {
    const lines: string[] = [];
    t = await startTestRelay(
      { users: { sales: { passwordHash: await hashPassword('correct horse') } }, limits: { authFailures: { max: 1, blockMinutes: 15 }, unknownRecipients: { max: 1, blockMinutes: 5 } } },
      { relay: { log: (l) => lines.push(l) } },
    );
    const guesser = await open(t.port, '127.0.0.30');
    await guesser.hello();
    expect((await guesser.cmd(`AUTH PLAIN ${plain('sales', 'nope')}`)).code).toBe(421);
    const harvester = await open(t.port, '127.0.0.31');
    await harvester.hello();
    await harvester.cmd('MAIL FROM:<a@example.org>');
    expect((await harvester.cmd('RCPT TO:<nobody@example.com>')).code).toBe(421);
    // a blocked client's next connection is the block's refusal, not a new block: no second line
    const again = await open(t.port, '127.0.0.30');
    expect((await again.read())?.code).toBe(421);
    await waitFor(() => again.closed, 'the refused connection to close');
    expect(lines.filter((l) => l.startsWith('blocked: '))).toEqual([
      'blocked: Too many failed logins from 127.0.0.30: 1 in 10 minutes (limit 1). Blocked for 15 minutes. (limits.authFailures; clients.unblock or trusting the address lifts it)',
      'blocked: Too many unknown recipients from 127.0.0.31: 1 in the last hour (limit 1). Blocked for 5 minutes. (limits.unknownRecipients; clients.unblock or trusting the address lifts it)',
    ]);

    // many clients blocked in one minute: BLOCK_LINES lines (two of them said above), the rest counted in the next line
    for (let i = 0; i < BLOCK_LINES + 1; i++) {
      const c = await open(t.port, `127.0.0.${40 + i}`);
      await c.hello();
      expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'nope')}`)).code).toBe(421);
    }
    expect(lines.filter((l) => l.startsWith('blocked: '))).toHaveLength(BLOCK_LINES);
    // the minute over, the relay's sweep says how many were not said one by one, and since when
    t.clock.advance(60_000);
    t.relay.sweepClients();
    expect(lines.at(-1)).toBe("blocked: 3 more clients blocked since 12:00:00Z, not shown one by one (the console's Clients view, or clients.list with blockedOnly, has them all)");
    const late = await open(t.port, '127.0.0.60');
    await late.hello();
    await late.cmd(`AUTH PLAIN ${plain('sales', 'nope')}`);
    expect(lines.at(-1)).toMatch(/^blocked: Too many failed logins from 127\.0\.0\.60: 1 in 10 minutes/);
    t.relay.sweepClients();
    expect(lines.filter((l) => l.includes('more clients blocked'))).toHaveLength(1);
  });

  it('says when a DNS lookup fails, at most once a minute, with the failures in between counted', async () => {
    const lines: string[] = [];
    t = await startTestRelay({ checks: { reverseDns: { mode: 'off' } } }, { relay: { log: (l) => lines.push(l) } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    const dnsLines = () => lines.filter((l) => l.startsWith('warning: a DNS lookup failed: '));
    for (let i = 0; i < 3; i++) expect((await c.cmd('MAIL FROM:<a@broken.example>')).code).toBe(451);
    expect(dnsLines()).toHaveLength(1);
    expect(dnsLines()[0]).toMatch(/^warning: a DNS lookup failed: .*broken\.example.*SERVFAIL.*; checks\.senderDomain told 127\.0\.0\.5 451 \(try again later\)$/);
    t.clock.advance(60_000);
    expect((await c.cmd('MAIL FROM:<a@broken.example>')).code).toBe(451);
    expect(dnsLines()).toHaveLength(2);
    // the two not said one by one are counted first, with the time they began and the last reason
    const counted = lines[lines.lastIndexOf(dnsLines()[1]!) - 1]!;
    expect(counted).toMatch(/^warning: 2 more DNS lookups failed since 12:00:00Z \(the last: .*broken\.example.*\)$/);
  });

  it('monitor mode: the DNS line says the client would have been told, and was let through', async () => {
    const lines: string[] = [];
    t = await startTestRelay({ checks: { reverseDns: { mode: 'off' }, senderDomain: { mode: 'monitor' } } }, { relay: { log: (l) => lines.push(l) } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@broken.example>')).code).toBe(250);
    expect(lines.filter((l) => l.startsWith('warning: a DNS lookup failed: '))).toEqual([
      expect.stringMatching(/; checks\.senderDomain would have told 127\.0\.0\.5 451 \(monitor mode: it was let through\)$/),
    ]);
  });

  it('says when the queue defers relayed mail for a failed DNS lookup (senders the DNS checks skip)', async () => {
    const lines: string[] = [];
    t = await startTestRelay(
      { dns: { timeoutMs: 200 }, relay: { allowGroups: ['Office'] }, groups: { Trusted: [], Office: [{ address: '127.0.0.5' }] } },
      { relay: { log: (l) => lines.push(l) } },
    );
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<someone@slow.example>')).code).toBe(250);
    expect((await c.data('Subject: out\r\n\r\nhi\r\n')).code).toBe(250);
    await waitFor(() => t!.events.some((e) => e.kind === 'deferred'), 'the message to be deferred', 10_000);
    expect(lines.filter((l) => l.startsWith('warning: a DNS lookup failed: '))).toEqual([
      expect.stringMatching(/^warning: a DNS lookup failed: DNS MX lookup for slow\.example timed out after 200 ms: .*; the queue deferred \S+ \(to someone@slow\.example; next try \S+\)$/),
    ]);
  });
});
