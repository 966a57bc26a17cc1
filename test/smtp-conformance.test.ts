/**
 * What the inbound conformance tryout of session 12 found, each against RFC 5321/4954/5890 and Postfix's smtpd:
 * - an A-label domain (xn--...) written in ASCII was taken as non-ASCII (smtp-server decodes it to Unicode): 553 5.6.7
 *   without SMTPUTF8, and rewritten to its U-label in the queued envelope with it;
 * - AUTH inside a mail transaction was accepted (RFC 4954 4: MUST be 503);
 * - smtp-server's joke commands answered (WIZ: "200 Please pass, oh mighty wizard", the sendmail backdoor's reply
 *   scanners look for), and VRFY said "No promises though";
 * - DATA after every RCPT was refused said "need RCPT command" (Postfix: 554 5.5.1 no valid recipients);
 * - a SIZE= beyond 2^53 was quoted back as another number;
 * - the EHLO name went into the Received header as written (a ';' there ends the header's tokens for a parser).
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../relay/auth/passwords.ts';
import { readQueuedMessage } from '../relay/queue/files.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { DEFAULT_ZONE, startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});
const DOMAINS = { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' as const }, 'xn--bcher-kva.test': { deliverTo: '127.0.0.1:9', recipients: ['alice'] } };
const stored = async (relay: TestRelay) => {
  const acc = relay.events.filter((e) => e.kind === 'accepted').at(-1) as { queueId: string };
  const m = await readQueuedMessage(path.join(relay.dir, 'spool', 'queue'), acc.queueId);
  return { data: m!.data.toString('utf8'), envelope: (JSON.parse(m!.json) as { envelope: { from: string; to: string[] } }).envelope };
};

describe('internationalised domains written as A-labels (xn--...)', () => {
  it('are ASCII: no SMTPUTF8 needed, and the queued envelope keeps them as written, not as Unicode', async () => {
    t = await startTestRelay({ domains: DOMAINS, checks: { senderDomain: { mode: 'off' } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<x@xn--bcher-kva.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@xn--bcher-kva.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    const m = await stored(t);
    expect(m.envelope.from).toBe('x@xn--bcher-kva.test');
    expect(m.envelope.to).toEqual(['alice@xn--bcher-kva.test', 'bob@example.com']);
    // the same domain written as its U-label is non-ASCII: it needs SMTPUTF8 (RFC 6531 3.4), and keeps its form
    expect((await c.cmd('MAIL FROM:<x@bücher.test>')).code).toBe(553);
    expect((await c.cmd('MAIL FROM:<x@bücher.test> SMTPUTF8')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
    expect((await c.data('Subject: y\r\n\r\ny')).code).toBe(250);
    expect((await stored(t)).envelope.from).toBe('x@bücher.test');
    expect(t.rejections().map((e) => e.rule)).toEqual([]);
  });

  it('keep the domain exactly as written: an A-label a Unicode round trip would map to another name stays itself', async () => {
    // (a review: "xn--mi7c.test" is a fullwidth "a"; through domainToASCII it came back as "a.test", and mail for a
    // domain the client did not write was accepted for a local one)
    t = await startTestRelay({ domains: { ...DOMAINS, 'a.test': { deliverTo: '127.0.0.1:9', recipients: '*' } }, checks: { senderDomain: { mode: 'off' } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<x@xn--a-ecp.ru> SIZE=10')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@xn--mi7c.test>')).code).toBe(554);
    expect((await c.cmd('RCPT TO:<bob@XN--BCHER-KVA.test>')).code).toBe(550);
    expect((await c.cmd('RCPT TO:<alice@xn--bcher-kva.test>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    const m = await stored(t);
    expect(m.envelope.from).toBe('x@xn--a-ecp.ru');
    expect(m.envelope.to).toEqual(['alice@xn--bcher-kva.test']);
    expect(t.rejections().map((e) => [e.rule, e.to])).toEqual([
      ['relay.access', 'bob@xn--mi7c.test'],
      // (a local recipient is named as its domain is configured)
      ['recipient.unknown', 'bob@xn--bcher-kva.test'],
    ]);
  });
});

describe('commands out of place', () => {
  let hash = '';
  beforeAll(async () => {
    hash = await hashPassword('correct horse');
  });

  it('AUTH inside a mail transaction gets 503 5.5.1 (RFC 4954 4) and counts as a failed command; after RSET it works', async () => {
    t = await startTestRelay({ domains: DOMAINS, users: { sales: { passwordHash: hash } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    const login = `AUTH PLAIN ${Buffer.from('\0sales\0correct horse').toString('base64')}`;
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect(await c.cmd(login)).toMatchObject({ code: 503, text: '5.5.1 Error: MAIL transaction in progress. Send AUTH before MAIL FROM (or RSET first).' });
    // the transaction goes on as the anonymous client's: relaying stays refused
    expect((await c.cmd('RCPT TO:<someone@elsewhere.example>')).code).toBe(554);
    expect(t.events.filter((e) => e.kind === 'auth')).toHaveLength(0);
    expect((await c.cmd('RSET')).code).toBe(250);
    expect((await c.cmd(login)).code).toBe(235);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<someone@elsewhere.example>')).code).toBe(250);
  });

  it('WIZ, SHELL and KILL are unknown commands (no wizard, no "incident will be reported"); VRFY answers the same for every address', async () => {
    t = await startTestRelay({ domains: DOMAINS });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    for (const cmd of ['WIZ secret', 'WIZ', 'SHELL', 'KILL', 'wiz secret']) {
      expect(await c.cmd(cmd)).toMatchObject({ code: 500, text: '5.5.2 Error: command not recognized' });
    }
    // (the same as a command smtp-server does not know at all)
    expect(await c.cmd('EXPN staff')).toMatchObject({ code: 500, text: '5.5.2 Error: command not recognized' });
    for (const who of ['alice@example.com', 'nobody@example.com']) {
      expect(await c.cmd(`VRFY ${who}`)).toMatchObject({ code: 252, text: '2.0.0 Cannot VRFY user; send the message, and the reply to RCPT TO says whether the address is taken' });
    }
    expect((await c.cmd('NOOP')).code).toBe(250);
  });

  it('DATA when every RCPT was refused: 554 5.5.1 no valid recipients; with no RCPT at all, 503 need RCPT', async () => {
    t = await startTestRelay({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: ['alice'] } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(503);
    expect((await c.cmd('RCPT TO:<nobody@example.com>')).code).toBe(550);
    expect(await c.cmd('DATA')).toMatchObject({ code: 554, text: '5.5.1 Error: no valid recipients' });
    // a new transaction starts afresh
    expect((await c.cmd('RSET')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(503);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
  });
});

describe('commands that do nothing', () => {
  it('past 100 NOOP, RSET, VRFY or HELP without a message, each counts as a failed command (Postfix: smtpd_junk_command_limit)', async () => {
    t = await startTestRelay({ domains: DOMAINS, checks: { maxFailedCommands: { mode: 'enforce', max: 3 } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    const junk = ['NOOP', 'RSET', 'VRFY alice@example.com', 'HELP'];
    for (let i = 0; i < 100; i++) expect((await c.cmd(junk[i % 4]!)).code).toBeLessThan(400);
    // a MAIL that is no message is no junk, and the count goes on
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('NOOP')).code).toBe(250); // 101: failed 1
    expect((await c.cmd('RSET')).code).toBe(250); // failed 2
    const cut = await c.cmd('NOOP');
    expect(cut).toMatchObject({ code: 421, text: '4.7.0 Too many commands without a message in this session: 3 past 100 NOOP, RSET, VRFY or HELP, or failed (limit 3). Closing the connection.' });
    expect(t.rejections('checks.maxFailedCommands')).toMatchObject([{ text: cut.text, enforced: true }]);
    // another session starts afresh
    const d = await open(t.port, '127.0.0.6');
    await d.hello();
    for (let i = 0; i < 50; i++) expect((await d.cmd('NOOP')).code).toBe(250);
  });

  it('each accepted message forgives them: a client that sends RSET after each of 150 messages on one connection is not cut off', async () => {
    // (a review: the counts never started again, and a keep-alive sender got 421 at its 110th RSET)
    t = await startTestRelay({ domains: DOMAINS, limits: { messagesPerHour: { mode: 'off' } }, checks: { maxFailedCommands: { mode: 'enforce', max: 3 } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    for (let i = 0; i < 150; i++) {
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      // two refusals per message: under the limit of 3 each time, because the accepted message forgives them
      expect((await c.cmd('RCPT TO:<bob@elsewhere.example>')).code).toBe(554);
      expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
      expect((await c.cmd('BOGUS')).code).toBe(500);
      expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
      expect((await c.cmd('RSET')).code).toBe(250);
    }
    expect(t.rejections('checks.maxFailedCommands')).toEqual([]);
  });
});

describe('what the relay says back', () => {
  it('a SIZE= too large to be read exactly is not quoted back as another number', async () => {
    t = await startTestRelay({ domains: DOMAINS });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect(await c.cmd('MAIL FROM:<a@example.org> SIZE=99999999999999999999')).toMatchObject({
      code: 552,
      text: '5.3.4 Message too big: declared SIZE=more than 9007199254740991 bytes, the limit is 26214400 bytes. Send a smaller message.',
    });
    expect((await c.cmd('MAIL FROM:<a@example.org> SIZE=26214401')).text).toMatch(/declared SIZE=26214401 bytes/);
  });

  it('the Received header names the client by its PTR name only when that name points back to it (forward-confirmed)', async () => {
    const zone = {
      ...DEFAULT_ZONE,
      ptr: { '127.0.0.5': ['mail.victim.example'], '127.0.0.6': ['nowhere.example', 'host6.test'], '127.0.0.7': ['host7.test'] },
      // the victim's own name points elsewhere; nowhere.example has no address
      a: { 'mail.victim.example': ['192.0.2.25'], 'host6.test': ['127.0.0.6'], 'host7.test': ['127.0.0.70', '127.0.0.7'] },
    };
    t = await startTestRelay({ domains: DOMAINS, checks: { senderDomain: { mode: 'off' } } }, { zone });
    const names: string[] = [];
    for (const ip of ['127.0.0.5', '127.0.0.6', '127.0.0.7']) {
      const c = await open(t.port, ip);
      await c.hello();
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
      expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
      names.push(/^Received: from \S+ \((\S+) \[/.exec((await stored(t)).data)![1]!);
    }
    // (the reverse DNS check itself asks for a PTR record only: each of them passed it)
    expect(names).toEqual(['unknown', 'host6.test', 'host7.test']);
    expect(t.rejections()).toEqual([]);
  });

  it('the Received header takes from the EHLO name only what a host name or address literal is made of', async () => {
    t = await startTestRelay({ domains: DOMAINS });
    const c = await open(t.port, '127.0.0.5');
    expect((await c.hello('x;y(z)café')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    expect((await stored(t)).data).toMatch(/^Received: from x\?y\?z\?caf\? \(/);
    // an address literal and an ordinary name stay as written
    const d = await open(t.port, '127.0.0.6');
    await d.hello('[127.0.0.6]');
    await d.cmd('MAIL FROM:<a@example.org>');
    await d.cmd('RCPT TO:<bob@example.com>');
    await d.data('Subject: x\r\n\r\nx');
    expect((await stored(t)).data).toMatch(/^Received: from \[127\.0\.0\.6\] \(/);
  });
});
