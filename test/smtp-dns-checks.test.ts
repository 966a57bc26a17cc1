/**
 * checks.senderDomain and checks.reverseDns against a real DNS server on loopback (test/helpers/dns-server.ts).
 * Clients 127.0.0.1-40 have PTR records in DEFAULT_ZONE; 127.0.0.50 and up have none.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../relay/auth/passwords.ts';
import { sendMail, smtpClients } from './helpers/smtp-client.ts';
import { DEFAULT_ZONE, startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

let t: TestRelay | null = null;
const { clients, open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

let hash = '';
beforeAll(async () => {
  hash = await hashPassword('correct horse');
});

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

async function mailFrom(port: number, ip: string, from: string) {
  const c = await open(port, ip);
  await c.hello();
  const r = await c.cmd(`MAIL FROM:<${from}>`);
  await c.quit();
  return r;
}

describe('checks.senderDomain', () => {
  it('accepts MX and A-only domains; 550 5.1.8 for NXDOMAIN and null MX; 451 4.4.3 for a timeout or SERVFAIL', async () => {
    t = await startTestRelay({});
    expect((await mailFrom(t.port, '127.0.0.5', 'a@example.org')).code).toBe(250);
    expect((await mailFrom(t.port, '127.0.0.5', 'a@A-Only.Example')).code).toBe(250);
    expect(await mailFrom(t.port, '127.0.0.5', 'a@nowhere.example')).toMatchObject({
      code: 550,
      text: '5.1.8 Sender domain nowhere.example does not exist in DNS (no MX, A or AAAA record). Use a real sender address.',
    });
    expect(await mailFrom(t.port, '127.0.0.5', 'a@nullmx.example')).toMatchObject({
      code: 550,
      text: '5.1.8 Sender domain nullmx.example publishes a null MX: it sends and receives no mail. Use a real sender address.',
    });
    const slow = await mailFrom(t.port, '127.0.0.5', 'a@slow.example');
    expect(slow.code).toBe(451);
    expect(slow.text).toBe('4.4.3 Could not check sender domain slow.example in DNS (DNS MX lookup for slow.example timed out). Try again later.');
    const broken = await mailFrom(t.port, '127.0.0.5', 'a@broken.example');
    expect(broken.code).toBe(451);
    expect(broken.text).toBe('4.4.3 Could not check sender domain broken.example in DNS (DNS MX lookup for broken.example failed). Try again later.');
    // what each server did is in the event, for the admin: never in the reply
    const [, , slowEvent, brokenEvent] = t.rejections('checks.senderDomain');
    expect(slowEvent!.dns).toMatch(/^DNS MX lookup for slow\.example timed out after \d+ ms: 127\.0\.0\.1:\d+ timed out/);
    expect(brokenEvent!.dns).toMatch(/^DNS MX lookup for broken\.example failed: 127\.0\.0\.1:\d+ answered SERVFAIL/);
    // the null sender (bounces) has no domain to check
    expect((await mailFrom(t.port, '127.0.0.5', '')).code).toBe(250);
    expect(t.rejections('checks.senderDomain').map((e) => [e.code, e.enforced, e.stage])).toEqual([
      [550, true, 'mail'], [550, true, 'mail'], [451, true, 'mail'], [451, true, 'mail'],
    ]);
  });

  it('monitor accepts and reports; off does not even look the domain up', async () => {
    t = await startTestRelay({ checks: { senderDomain: { mode: 'monitor' } } });
    const r = await sendMail(t.port, { from: 'a@nowhere.example', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    expect(r.mail.code).toBe(250);
    expect(r.data?.code).toBe(250);
    expect(t.rejections('checks.senderDomain')).toMatchObject([{ code: 550, enforced: false, rule: 'checks.senderDomain' }]);
    t.relay.config.modify((d) => void (d.checks.senderDomain.mode = 'off'), { by: 'test', source: 'test' });
    expect((await mailFrom(t.port, '127.0.0.5', 'a@other-nowhere.example')).code).toBe(250);
    expect(t.dns.queries.some((q) => q.name === 'other-nowhere.example')).toBe(false);
    expect(t.rejections('checks.senderDomain')).toHaveLength(1);
  });

  it('is skipped for authenticated clients and for relay.allowGroups members', async () => {
    t = await startTestRelay({
      users: { sales: { passwordHash: hash } },
      groups: { Trusted: [], Relayers: [{ address: '127.0.0.7' }] },
      relay: { allowGroups: ['Relayers'] },
    });
    expect((await mailFrom(t.port, '127.0.0.7', 'a@nowhere.example')).code).toBe(250);
    const c = await open(t.port, '127.0.0.6');
    await c.hello();
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);
    expect((await c.cmd('MAIL FROM:<a@nowhere.example>')).code).toBe(250);
    await c.quit();
    // and still applies to anyone else
    expect((await mailFrom(t.port, '127.0.0.8', 'a@nowhere.example')).code).toBe(550);
    expect(t.rejections('checks.senderDomain').map((e) => e.ip)).toEqual(['127.0.0.8']);
  });
});

describe('checks.reverseDns', () => {
  const zone = { ...DEFAULT_ZONE, timeout: [...(DEFAULT_ZONE.timeout ?? []), '127.0.0.51'] };

  it('accepts a client with a PTR; 550 5.7.25 without one; 450 4.7.25 when the lookup times out', async () => {
    t = await startTestRelay({}, { zone });
    const ok = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    expect(ok.data?.code).toBe(250);
    expect(await mailFrom(t.port, '127.0.0.50', 'a@example.org')).toMatchObject({
      code: 550,
      text: '5.7.25 Client address 127.0.0.50 has no reverse DNS (PTR) record. Ask its provider for one, or authenticate first.',
    });
    const slow = await mailFrom(t.port, '127.0.0.51', 'a@example.org');
    expect(slow.code).toBe(450);
    // the client is told what failed, not which servers the relay asked: those are in the event, for the admin
    expect(slow.text).toBe('4.7.25 Could not look up reverse DNS for 127.0.0.51 (DNS PTR lookup for 51.0.0.127.in-addr.arpa timed out). Try again later.');
    expect(t.rejections('checks.reverseDns')[1]!.dns).toMatch(/^DNS PTR lookup for 51\.0\.0\.127\.in-addr\.arpa timed out after \d+ ms: 127\.0\.0\.1:\d+ timed out/);
    expect(t.rejections('checks.reverseDns')).toMatchObject([
      { ip: '127.0.0.50', code: 550, stage: 'mail', enforced: true },
      { ip: '127.0.0.51', code: 450, stage: 'mail', enforced: true },
    ]);
  });

  it('is decided at MAIL FROM: a client without PTR gets the greeting, authenticates, and sends', async () => {
    t = await startTestRelay({ users: { sales: { passwordHash: hash } } }, { zone });
    const c = await open(t.port, '127.0.0.50');
    expect((await c.hello()).code).toBe(250);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: roaming\r\n\r\nhi')).code).toBe(250);
    expect(t.rejections('checks.reverseDns')).toHaveLength(0);
  });

  it('monitor accepts and reports; off does nothing; relay.allowGroups members skip it', async () => {
    t = await startTestRelay({ checks: { reverseDns: { mode: 'monitor' } }, groups: { Trusted: [{ address: '127.0.0.52' }] } }, { zone });
    expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.50' })).data?.code).toBe(250);
    expect(t.rejections('checks.reverseDns')).toMatchObject([{ ip: '127.0.0.50', code: 550, enforced: false }]);
    t.relay.config.modify((d) => void (d.checks.reverseDns.mode = 'enforce'), { by: 'test', source: 'test' });
    expect((await mailFrom(t.port, '127.0.0.52', 'a@example.org')).code).toBe(250);
    t.relay.config.modify((d) => void (d.checks.reverseDns.mode = 'off'), { by: 'test', source: 'test' });
    expect((await mailFrom(t.port, '127.0.0.53', 'a@example.org')).code).toBe(250);
    expect(t.rejections('checks.reverseDns')).toHaveLength(1);
  });
});
