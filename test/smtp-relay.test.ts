/**
 * Routing and relay control: the classic open-relay tricks are refused for an unauthenticated client outside
 * relay.allowGroups (554 5.7.1, or 501 where smtp-server refuses the syntax outright), and relaying works for
 * allowGroups members and for clients authenticated with AUTH PLAIN or LOGIN.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../relay/auth/passwords.ts';
import type { RelayEvent } from '../shared/events.ts';
import { RawSmtp, smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { startSink } from './helpers/sink.ts';

let t: TestRelay | null = null;
const { clients, open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

let hash = '';
beforeAll(async () => {
  hash = await hashPassword('correct horse');
});
const b64 = (s: string) => Buffer.from(s).toString('base64');

const CONFIG = {
  users: { sales: { passwordHash: '' } },
  groups: { Trusted: [], Relayers: [{ address: '127.0.0.30', comment: 'the office printer' }] },
  relay: { allowGroups: ['Relayers'] },
  checks: { maxFailedCommands: { max: 100 } },
};

/** Address forms used to abuse relays; `relayed` is what an allowed client's RCPT is accepted as. */
const TRICKS: Array<{ name: string; rcpt: string; syntax?: boolean }> = [
  { name: 'percent hack', rcpt: 'user%remote.example@example.com' },
  { name: 'percent hack in quotes', rcpt: '"user%remote.example"@example.com' },
  { name: 'bang path', rcpt: 'remote.example!user@example.com' },
  { name: 'source route', rcpt: '@example.com:user@remote.example' },
  { name: 'source route, two hops', rcpt: '@example.com,@b.example:user@remote.example' },
  { name: 'quoted local part holding an @', rcpt: '"user@remote.example"@example.com', syntax: true },
  { name: 'two @', rcpt: 'user@remote.example@example.com', syntax: true },
  { name: 'IPv4 literal', rcpt: 'user@[127.0.0.1]' },
  { name: 'IPv6 literal', rcpt: 'user@[IPv6:::1]' },
  { name: 'trailing dot', rcpt: 'user@remote.example.', syntax: true },
  { name: 'trailing dots', rcpt: 'user@remote.example..', syntax: true },
  { name: 'mixed case', rcpt: 'user@REMOTE.Example' },
  { name: 'mixed case local-looking subdomain', rcpt: 'alice@Sub.Example.COM' },
  { name: 'plain foreign domain', rcpt: 'user@remote.example' },
];

async function rcptAll(c: RawSmtp): Promise<Array<{ name: string; code: number; text: string }>> {
  expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
  const out = [];
  for (const tr of TRICKS) {
    const r = await c.cmd(`RCPT TO:<${tr.rcpt}>`);
    out.push({ name: tr.name, code: r.code, text: r.text });
  }
  return out;
}

describe('open-relay tricks', () => {
  it('are all refused for an unauthenticated client outside relay.allowGroups', async () => {
    t = await startTestRelay({ ...CONFIG, users: {} });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    const replies = await rcptAll(c);
    for (const [i, r] of replies.entries()) {
      if (TRICKS[i]!.syntax) expect(r, r.name).toMatchObject({ code: 501 });
      else {
        expect(r.code, r.name).toBe(554);
        expect(r.text, r.name).toMatch(/^5\.7\.1 Relay access denied: /);
      }
    }
    expect(replies.find((r) => r.name === 'percent hack')?.text).toBe(
      '5.7.1 Relay access denied: the address uses a "%" in the local part (percent hack), which this relay does not route for unauthenticated clients.',
    );
    expect(replies.find((r) => r.name === 'plain foreign domain')?.text).toBe(
      '5.7.1 Relay access denied: remote.example is not a local domain, and 127.0.0.5 has not authenticated and is not in an allowed group.',
    );
    // nothing was accepted, so DATA has no recipient (Postfix's words: RCPT was sent, none of them was valid)
    expect(await c.cmd('DATA')).toMatchObject({ code: 554, text: '5.5.1 Error: no valid recipients' });
    const relayEvents = t.rejections('relay.access');
    expect(relayEvents).toHaveLength(TRICKS.filter((x) => !x.syntax).length);
    expect(relayEvents.every((e) => e.code === 554 && e.stage === 'rcpt' && e.enforced)).toBe(true);
    expect(t.events.filter((e) => e.kind === 'rcpt')).toHaveLength(0);
  });

  it('local recipients are accepted whatever the case of the domain; a quoted local part is the same mailbox; postmaster always', async () => {
    t = await startTestRelay({ ...CONFIG, users: {} });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<ALICE@Example.COM>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<"bob"@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<postmaster>')).code).toBe(250);
    // RFC 5321 4.5.1: postmaster at every local domain, listed or not
    expect((await c.cmd('RCPT TO:<PostMaster@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    const acc = t.events.find((e): e is Extract<RelayEvent, { kind: 'accepted' }> => e.kind === 'accepted');
    // <postmaster> and <PostMaster@example.com> are one mailbox: stored once, as first written
    expect(acc?.to).toEqual(['ALICE@Example.COM', '"bob"@example.com', 'postmaster@example.com']);
    expect(t.events.filter((e) => e.kind === 'rcpt').map((e) => (e as { to: string }).to)).toEqual([
      'ALICE@example.com', 'bob@example.com', 'postmaster@example.com', 'PostMaster@example.com',
    ]);
    expect(t.rejections()).toHaveLength(0);
  });

  it('an internationalised local domain (configured as its A-label) takes its mail in every form: A-label in any case, U-label', async () => {
    // Regression (the protocol tryout of session 9): smtp-server hands a lower-case A-label on as its U-label
    // (bücher.test), which matched no configured domain: "alice@xn--bcher-kva.test" got 554 Relay access denied while
    // "alice@XN--BCHER-KVA.TEST" got 250
    t = await startTestRelay({ domains: { 'xn--bcher-kva.test': { deliverTo: '127.0.0.1:9', recipients: ['alice'] } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@example.org> SMTPUTF8')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@xn--bcher-kva.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@XN--BCHER-KVA.TEST>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@bücher.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<carol@xn--bcher-kva.test>')).code).toBe(550);
    expect(t.rejections().map((e) => e.rule)).toEqual(['recipient.unknown']);
    expect(t.events.filter((e) => e.kind === 'rcpt').map((e) => (e as { to: string }).to)).toEqual([
      'alice@xn--bcher-kva.test', 'alice@xn--bcher-kva.test', 'alice@xn--bcher-kva.test',
    ]);
  });

  it('a bare <postmaster> is delivered to postmaster@ the first local domain (not bounced as a domain of its own)', async () => {
    const sink = await startSink();
    try {
      t = await startTestRelay({ ...CONFIG, users: {}, domains: { 'example.com': { deliverTo: sink.address, recipients: ['alice'] } } });
      const c = await open(t.port, '127.0.0.5');
      await c.hello();
      await c.cmd('MAIL FROM:<a@example.org>');
      expect((await c.cmd('RCPT TO:<PostMaster>')).code).toBe(250);
      expect((await c.data('Subject: to the postmaster\r\n\r\nhello')).code).toBe(250);
      const [m] = await sink.waitFor(1);
      expect(m!.to).toEqual(['postmaster@example.com']);
      expect(m!.data.toString()).toContain('for <postmaster@example.com>');
      await expect.poll(() => t!.events.some((e) => e.kind === 'delivered')).toBe(true);
      expect(t.events.filter((e) => e.kind === 'bounced' || e.kind === 'deferred')).toEqual([]);
    } finally {
      await t?.stop();
      t = null;
      await sink.close();
    }
  });

  it('a repeated recipient counts once toward checks.maxRecipients, bare <postmaster> too, and is queued once in the form last written', async () => {
    t = await startTestRelay({ ...CONFIG, users: {}, checks: { ...CONFIG.checks, maxRecipients: { max: 2 } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<postmaster>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<PostMaster>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<Alice@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    const acc = t.events.find((e): e is Extract<RelayEvent, { kind: 'accepted' }> => e.kind === 'accepted');
    expect(acc?.to).toEqual(['postmaster@example.com', 'alice@example.com']);
    expect(t.rejections('checks.maxRecipients')).toEqual([]);

    // past the limit in monitor mode the list grows: a repeat there is still no new recipient (no "would have" event)
    t.relay.config.modify((d) => void (d.checks.maxRecipients = { mode: 'monitor', max: 1 }), { by: 'test', source: 'test' });
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<BOB@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<Alice@example.com>')).code).toBe(250);
    expect(t.rejections('checks.maxRecipients').map((e) => [e.enforced, e.to])).toEqual([[false, 'bob@example.com']]);
  });

  it('a bare <postmaster> with no local domain to deliver it to is refused with 501 5.1.3, saying why', async () => {
    t = await startTestRelay({ ...CONFIG, users: {}, domains: {} });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    const r = await c.cmd('RCPT TO:<postmaster>');
    expect(r).toMatchObject({ code: 501, text: '5.1.3 Bad recipient address: this relay has no local domain for postmaster.' });
    // the session goes on
    expect((await c.cmd('RSET')).code).toBe(250);
  });

  it('relay.allowGroups members relay, tricks included (only the syntax errors stay refused)', async () => {
    t = await startTestRelay({ ...CONFIG, users: {} });
    const c = await open(t.port, '127.0.0.30');
    await c.hello();
    const replies = await rcptAll(c);
    for (const [i, r] of replies.entries()) expect(r.code, r.name).toBe(TRICKS[i]!.syntax ? 501 : 250);
    expect((await c.data('Subject: relayed\r\n\r\nx')).code).toBe(250);
    expect(t.rejections('relay.access')).toHaveLength(0);
  });

  for (const method of ['PLAIN', 'LOGIN'] as const) {
    it(`a client authenticated with AUTH ${method} relays; the same client before AUTH does not`, async () => {
      t = await startTestRelay({ ...CONFIG, users: { sales: { passwordHash: hash } } });
      const c = await open(t.port, '127.0.0.5');
      await c.hello();
      await c.cmd('MAIL FROM:<a@example.org>');
      expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(554);
      expect((await c.cmd('RSET')).code).toBe(250);
      if (method === 'PLAIN') {
        expect((await c.cmd(`AUTH PLAIN ${b64('\0sales\0correct horse')}`)).code).toBe(235);
      } else {
        expect((await c.cmd('AUTH LOGIN')).code).toBe(334);
        expect((await c.cmd(b64('sales'))).code).toBe(334);
        expect((await c.cmd(b64('correct horse'))).code).toBe(235);
      }
      const replies = await rcptAll(c);
      for (const [i, r] of replies.entries()) expect(r.code, r.name).toBe(TRICKS[i]!.syntax ? 501 : 250);
      expect((await c.data('Subject: relayed\r\n\r\nx')).code).toBe(250);
      const acc = t.events.find((e): e is Extract<RelayEvent, { kind: 'accepted' }> => e.kind === 'accepted');
      expect(acc?.to).toContain('user@remote.example');
    });
  }
});
