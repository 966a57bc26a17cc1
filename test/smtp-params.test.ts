/**
 * ESMTP parameters and internationalised addresses (the protocol tryout of session 9):
 * - an unknown parameter on MAIL or RCPT is refused with 555 5.5.4 (RFC 5321 4.1.1.11), not silently ignored: a client
 *   that asked for DSN (NOTIFY, ORCPT, RET, ENVID; not offered) believed its request was taken;
 * - an address with non-ASCII characters needs SMTPUTF8 declared on MAIL FROM (RFC 6531 3.4; Postfix: 553 5.6.7);
 * - REQUIRETLS (RFC 8689) is not offered over TLS: delivery here does not promise verified TLS on every hop.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readQueuedMessage } from '../relay/queue/files.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});
const DOMAINS = { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' as const } };

describe('ESMTP parameters', () => {
  it('MAIL takes SIZE, BODY, SMTPUTF8 and AUTH; anything else gets 555 5.5.4 naming it; RCPT takes none', async () => {
    t = await startTestRelay({ domains: DOMAINS });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    for (const p of ['FOO=bar', 'RET=FULL', 'ENVID=abc']) {
      expect(await c.cmd(`MAIL FROM:<a@example.org> ${p}`)).toMatchObject({ code: 555, text: `5.5.4 Unsupported parameter: ${p.split('=')[0]}.` });
    }
    expect((await c.cmd('MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME SMTPUTF8 AUTH=<>')).code).toBe(250);
    for (const p of ['NOTIFY=NEVER', 'ORCPT=rfc822;a@example.com', 'SMTPUTF8', 'SIZE=1', '<bob@elsewhere.example>']) {
      const r = await c.cmd(`RCPT TO:<alice@example.com> ${p}`);
      expect(r.code).toBe(555);
      expect(r.text).toMatch(/^5\.5\.4 Unsupported parameter: /);
    }
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
  });

  it('a non-ASCII address needs SMTPUTF8 on MAIL FROM: 553 5.6.7 without it, 250 with it', async () => {
    t = await startTestRelay({ domains: DOMAINS, checks: { senderDomain: { mode: 'off' } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect(await c.cmd('MAIL FROM:<jürgen@example.org>')).toMatchObject({ code: 553, text: '5.6.7 This address has non-ASCII characters: declare SMTPUTF8 on MAIL FROM to use it.' });
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<jürgen@example.com>')).code).toBe(553);
    await c.cmd('RSET');
    // a refused MAIL that declared SMTPUTF8 does not declare it for the next one (smtp-server's envelope flag would)
    expect((await c.cmd('MAIL FROM:<jürgen@example.org> SMTPUTF8 FOO=1')).code).toBe(555);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<jürgen@example.com>')).code).toBe(553);
    await c.cmd('RSET');
    expect((await c.cmd('MAIL FROM:<jürgen@example.org> SMTPUTF8')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<jürgen@example.com>')).code).toBe(250);
    expect((await c.data('Subject: grüße\r\n\r\nx')).code).toBe(250);
    // RFC 6531 3.7.3: the Received header says UTF8SMTP for a transaction that declared SMTPUTF8
    const acc = t.events.find((e) => e.kind === 'accepted') as { queueId: string };
    const stored = await readQueuedMessage(path.join(t.dir, 'spool', 'queue'), acc.queueId);
    expect(stored!.data.toString('utf8')).toMatch(/^Received: from client\.test \([^)]*\)\r\n\tby \S+ \(Relay Warden\) with UTF8SMTP id /);
  });

  it('REQUIRETLS is not offered, also after STARTTLS', async () => {
    t = await startTestRelay({ domains: DOMAINS });
    const c = await open(t.port, '127.0.0.5');
    const plain = await c.hello();
    const secure = await c.starttls();
    expect(secure.code).toBe(250);
    expect(JSON.stringify([plain, secure])).not.toContain('REQUIRETLS');
    expect(JSON.stringify(secure)).toContain('8BITMIME');
    // and asked for anyway, over TLS, it is refused, not taken as a promise
    expect(await c.cmd('MAIL FROM:<a@example.org> REQUIRETLS')).toMatchObject({ code: 555, text: '5.5.4 Unsupported parameter: REQUIRETLS.' });
  });
});
