/**
 * A DNS server the relay cannot send to at all (no route, a link-local address on an interface that is not there):
 * the UDP socket's connect() fails, which Node reports to connect's callback, not as an 'error' event. Regression
 * (the user tryout of session 9): the transport ignored that error and called send() on the unconnected socket, which
 * throws ERR_SOCKET_BAD_PORT outside any handler: the relay process ended at the first MAIL FROM of an untrusted
 * client, and again at every start while a relayed message waited for its MX lookup. Now it is a DNS failure like any
 * other: a temporary SMTP reply, a deferral in the queue, and the relay goes on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { udpExchange, type Question } from '../relay/dns/transport.ts';
import { parseDnsServer } from '../relay/dns/servers.ts';
import { sendMail, smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});
afterEach(async () => {
  await t?.stop();
  t = null;
});

/** schema-valid, but no socket can be connected to it here: no interface of that name */
const NO_SUCH_LINK = 'fe80::53%rw-no-such-if';

describe('a DNS server that cannot be reached at all', () => {
  it('the UDP exchange reports the failure in words instead of throwing', async () => {
    const outcome = await udpExchange(parseDnsServer(NO_SUCH_LINK), { name: 'example.org', type: 'MX' } satisfies Question, 1000, new AbortController().signal);
    expect(outcome).toMatchObject({ kind: 'error' });
    expect((outcome as { reason: string }).reason).toMatch(/EINVAL|unreachable|not usable/);
  });

  it('SMTP: a temporary reply at MAIL FROM, and the relay keeps answering', async () => {
    t = await startTestRelay({ dns: { servers: [NO_SUCH_LINK], timeoutMs: 300 } });
    for (const ip of ['127.0.0.55', '127.0.0.56']) {
      const c = await open(t.port, ip);
      await c.hello();
      const r = await c.cmd('MAIL FROM:<someone@example.org>');
      // the reverse-DNS check (450 4.7.25) or the sender-domain check (451 4.4.3), whichever asks first: both temporary
      expect([450, 451]).toContain(r.code);
      expect(r.text).toMatch(/Try again later/);
      await c.quit();
    }
    const rejected = t.rejections();
    expect(rejected.length).toBe(2);
    expect(rejected[0]!.dns).toMatch(/fe80::53%rw-no-such-if/);
  });

  it('the queue: a relayed message waiting for its MX lookup is deferred with the reason, not the end of the relay', async () => {
    t = await startTestRelay({
      dns: { servers: [NO_SUCH_LINK], timeoutMs: 300 },
      checks: { senderDomain: { mode: 'off' }, reverseDns: { mode: 'off' } },
      // 127.0.0.1 may relay (the default trust group holds loopback's 127.0.0.1)
      groups: { Trusted: [{ address: '127.0.0.1' }] },
      relay: { allowGroups: ['Trusted'] },
    });
    const sent = await sendMail(t.port, { from: 'ann@example.com', to: ['someone@elsewhere.example'], localAddress: '127.0.0.1' });
    expect(sent.data?.code).toBe(250);
    await waitFor(() => t!.events.some((e) => e.kind === 'deferred'), 'the deferral', 15_000);
    const deferred = t.events.find((e) => e.kind === 'deferred') as { reason: string } | undefined;
    expect(deferred!.reason).toMatch(/elsewhere\.example/);
    expect(t.relay.queue.size).toBe(1);
  });
});
