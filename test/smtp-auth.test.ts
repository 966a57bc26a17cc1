/**
 * SMTP AUTH (PLAIN and LOGIN against scrypt hashes in `users`), STARTTLS with the relay's own certificate,
 * the "AUTH only after TLS unless on loopback" rule, and limits.authFailures with its block.
 *
 * The non-loopback rule: every test client is on loopback, so a remote peer is made with
 * test/helpers/remote-client.ts (a real loopback socket handed to the relay with a remoteAddress).
 */
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { hashPassword } from '../relay/auth/passwords.ts';
import { RawSmtp, smtpClients } from './helpers/smtp-client.ts';
import { openAsRemote as openRemote } from './helpers/remote-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const cleanups: Array<() => void> = [];
const { clients, open } = smtpClients(async () => {
  for (const f of cleanups.splice(0)) f();
  await t?.stop();
  t = null;
});

let hash = '';
beforeAll(async () => {
  hash = await hashPassword('correct horse');
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const plain = (user: string, pass: string) => b64(`\0${user}\0${pass}`);

async function openAsRemote(tr: TestRelay, remoteAddress: string): Promise<RawSmtp> {
  const c = await openRemote(tr.relay, remoteAddress);
  clients.push(c);
  return c;
}

function authEvents(tr: TestRelay) {
  return tr.events.filter((e): e is Extract<RelayEvent, { kind: 'auth' }> => e.kind === 'auth');
}

describe('AUTH PLAIN and LOGIN', () => {
  it('PLAIN and LOGIN accept the right password and refuse a wrong one with 535 5.7.8', async () => {
    t = await startTestRelay({ users: { sales: { passwordHash: hash } } });
    const a = await open(t.port);
    const ehlo = await a.hello();
    expect(ehlo.lines.some((l) => /^250[- ]AUTH PLAIN LOGIN$/.test(l))).toBe(true);
    expect(await a.cmd(`AUTH PLAIN ${plain('sales', 'wrong')}`)).toMatchObject({
      code: 535,
      text: '5.7.8 Authentication failed: wrong user name or password.',
    });
    expect(await a.cmd(`AUTH PLAIN ${plain('nobody', 'correct horse')}`)).toMatchObject({ code: 535 });
    expect((await a.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);

    const b = await open(t.port, '127.0.0.6');
    await b.hello();
    expect(await b.cmd('AUTH LOGIN')).toMatchObject({ code: 334, text: 'VXNlcm5hbWU6' });
    expect(await b.cmd(b64('sales'))).toMatchObject({ code: 334, text: 'UGFzc3dvcmQ6' });
    expect((await b.cmd(b64('correct horse'))).code).toBe(235);
    expect(authEvents(t).map((e) => [e.ip, e.user, e.success, e.method])).toEqual([
      ['127.0.0.5', 'sales', false, 'PLAIN'],
      ['127.0.0.5', 'nobody', false, 'PLAIN'],
      ['127.0.0.5', 'sales', true, 'PLAIN'],
      ['127.0.0.6', 'sales', true, 'LOGIN'],
    ]);
  });

  it('STARTTLS works with the relay certificate (verified against it), then AUTH and a relayed message', async () => {
    t = await startTestRelay({ smtp: { hostname: 'relay.test' }, users: { sales: { passwordHash: hash } } });
    const conn = new SMTPConnection({
      host: '127.0.0.1',
      port: t.port,
      name: 'client.test',
      localAddress: '127.0.0.7',
      requireTLS: true,
      tls: { ca: [t.relay.identity.cert], servername: 'relay.test', rejectUnauthorized: true },
      connectionTimeout: 5000,
      greetingTimeout: 5000,
      socketTimeout: 10_000,
    });
    cleanups.push(() => conn.close());
    await new Promise<void>((resolve, reject) => conn.connect((err?: Error) => (err ? reject(err) : resolve())));
    expect(conn.secure).toBe(true);
    await new Promise<void>((resolve, reject) => conn.login({ user: 'sales', pass: 'correct horse' }, (err) => (err ? reject(err) : resolve())));
    const info = await new Promise<{ accepted: string[]; response: string }>((resolve, reject) =>
      conn.send({ from: 'sales@example.org', to: ['someone@remote.example'] }, 'Subject: via TLS\r\n\r\nhello\r\n', (err, i) =>
        err ? reject(err) : resolve(i as unknown as { accepted: string[]; response: string }),
      ),
    );
    expect(info.accepted).toEqual(['someone@remote.example']);
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Z]{17}$/);
    conn.quit();
  });

  it('from a non-loopback address over plain text: AUTH is not advertised and refused with 538 before any credential; after STARTTLS it works', async () => {
    t = await startTestRelay({ users: { sales: { passwordHash: hash } } });
    const c = await openAsRemote(t, '198.51.100.7');
    const ehlo = await c.hello();
    expect(ehlo.lines.some((l) => l.includes('AUTH'))).toBe(false);
    expect(ehlo.lines.some((l) => l.endsWith('STARTTLS'))).toBe(true);
    expect(await c.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).toMatchObject({
      code: 538,
      text: '5.7.11 Encryption required: use STARTTLS before AUTH.',
    });
    // LOGIN must be refused at once, not after the client has sent its password in clear
    expect(await c.cmd('AUTH LOGIN')).toMatchObject({ code: 538 });
    expect(t.relay.anvil.state('198.51.100.7')?.authFailuresInWindow ?? 0).toBe(0);
    const tlsEhlo = await c.starttls();
    expect(tlsEhlo.lines.some((l) => /AUTH PLAIN LOGIN$/.test(l))).toBe(true);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);
    expect(authEvents(t)).toMatchObject([{ ip: '198.51.100.7', success: true }]);
  });
  it('STARTTLS discards an authentication made before it (RFC 3207 4.2): the client must AUTH again to relay', async () => {
    t = await startTestRelay({ users: { sales: { passwordHash: hash } } });
    const c = await open(t.port);
    await c.hello();
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);
    const ehlo = await c.starttls();
    expect(ehlo.lines.some((l) => /AUTH PLAIN LOGIN$/.test(l))).toBe(true);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(554);
    expect((await c.cmd('RSET')).code).toBe(250);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<user@remote.example>')).code).toBe(250);
  });

  it('a user removed, or given a new password, while logged in: the session ends at its next MAIL or RCPT with 421', async () => {
    t = await startTestRelay({ users: { sales: { passwordHash: hash }, ops: { passwordHash: hash } } });
    const tr = t;
    const login = async (user: string, ip: string) => {
      const c = await open(tr.port, ip);
      await c.hello();
      expect((await c.cmd(`AUTH PLAIN ${plain(user, 'correct horse')}`)).code).toBe(235);
      expect((await c.cmd('MAIL FROM:<me@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<v1@example.net>')).code).toBe(250);
      return c;
    };
    const sales = await login('sales', '127.0.0.53');
    const ops = await login('ops', '127.0.0.54');
    // another change to the config leaves the logins standing
    tr.relay.config.modify((d) => void (d.checks.maxRecipients.max = 50), { by: 'test', source: 'test' });
    expect((await sales.cmd('RCPT TO:<v2@example.net>')).code).toBe(250);

    tr.relay.config.modify((d) => void delete d.users['sales'], { by: 'cli', source: 'user remove' });
    expect(await sales.cmd('RCPT TO:<v3@example.net>')).toMatchObject({
      code: 421,
      text: '4.7.0 The login as "sales" is no longer valid: the user was removed since. Connect again and log in.',
    });
    await sales.closedPromise;

    const newHash = await hashPassword('a new password');
    tr.relay.config.modify((d) => void (d.users['ops'] = { passwordHash: newHash }), { by: 'cli', source: 'user set' });
    expect((await ops.cmd('RSET')).code).toBe(250);
    expect(await ops.cmd('MAIL FROM:<me@example.org>')).toMatchObject({
      code: 421,
      text: '4.7.0 The login as "ops" is no longer valid: the user was given a new password since. Connect again and log in.',
    });
    await ops.closedPromise;
    const withdrawn = () => tr.rejections('relay.access').map((e) => [e.stage, e.code, e.enforced]);
    expect(withdrawn()).toEqual([['rcpt', 421, true], ['mail', 421, true]]);

    // removed while its message comes in: the message is not queued, the session ends
    const late = await open(tr.port, '127.0.0.56');
    await late.hello();
    expect((await late.cmd(`AUTH PLAIN ${plain('ops', 'a new password')}`)).code).toBe(235);
    expect((await late.cmd('MAIL FROM:<me@example.org>')).code).toBe(250);
    expect((await late.cmd('RCPT TO:<v5@example.net>')).code).toBe(250);
    expect((await late.cmd('DATA')).code).toBe(354);
    tr.relay.config.modify((d) => void delete d.users['ops'], { by: 'cli', source: 'user remove' });
    late.write('Subject: sent by a removed user\r\n\r\nhello\r\n.\r\n');
    expect(await late.read()).toMatchObject({ code: 421, text: '4.7.0 The login as "ops" is no longer valid: the user was removed since. Connect again and log in.' });
    expect(tr.events.filter((e) => e.kind === 'accepted')).toEqual([]);
    expect(tr.relay.queue.size).toBe(0);
    expect(withdrawn().at(-1)).toEqual(['data', 421, true]);
    tr.relay.config.modify((d) => void (d.users['ops'] = { passwordHash: newHash }), { by: 'cli', source: 'user set' });

    // a new login with the new password relays again
    const again = await open(tr.port, '127.0.0.54');
    await again.hello();
    expect((await again.cmd(`AUTH PLAIN ${plain('ops', 'a new password')}`)).code).toBe(235);
    expect((await again.cmd('MAIL FROM:<me@example.org>')).code).toBe(250);
    expect((await again.cmd('RCPT TO:<v4@example.net>')).code).toBe(250);
  });
});

describe('limits.authFailures', () => {
  it('535 per failure; at the limit 421 4.7.0, close, and a block; blocked connections are refused until it ends', async () => {
    t = await startTestRelay({
      users: { sales: { passwordHash: hash } },
      limits: { authFailures: { max: 3, windowMinutes: 10, blockMinutes: 15 } },
    });
    const c = await open(t.port);
    await c.hello();
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad1')}`)).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad2')}`)).code).toBe(535);
    expect(await c.cmd(`AUTH PLAIN ${plain('sales', 'bad3')}`)).toMatchObject({
      code: 421,
      text: '4.7.0 Too many failed logins from 127.0.0.5: 3 in 10 minutes (limit 3). Blocked for 15 minutes.',
    });
    await waitFor(() => c.closed, 'the session to be closed');
    expect(t.rejections('limits.authFailures')).toMatchObject([{ ip: '127.0.0.5', stage: 'auth', code: 421, enforced: true }]);

    const d = await open(t.port);
    expect(await d.read()).toMatchObject({
      code: 421,
      text: '4.7.0 127.0.0.5 is blocked until 2026-11-27T12:15:00Z: too many failed logins. Try again later.',
    });
    await waitFor(() => d.closed, 'the blocked connection to be closed');
    // someone else is not blocked
    const other = await open(t.port, '127.0.0.6');
    await other.hello();
    expect((await other.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);
    t.clock.advance(15 * 60_000);
    const e = await open(t.port);
    await e.hello();
    expect((await e.cmd(`AUTH PLAIN ${plain('sales', 'correct horse')}`)).code).toBe(235);
  });

  it('counts failures in a rolling window of windowMinutes', async () => {
    t = await startTestRelay({ users: { sales: { passwordHash: hash } }, limits: { authFailures: { max: 3, windowMinutes: 10 } } });
    const c = await open(t.port);
    await c.hello();
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(535);
    t.clock.advance(10 * 60_000);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(421);
  });

  it('monitor reports without blocking; off does nothing; exempt IPs are never blocked', async () => {
    t = await startTestRelay({
      users: { sales: { passwordHash: hash } },
      limits: { authFailures: { max: 2, mode: 'monitor' } },
      groups: { Trusted: [{ address: '127.0.0.9' }] },
    });
    const c = await open(t.port);
    await c.hello();
    for (let i = 0; i < 3; i++) expect((await c.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(535);
    expect(t.rejections('limits.authFailures').map((e) => e.enforced)).toEqual([false, false]);
    expect(t.relay.anvil.blocked('127.0.0.5')).toBeNull();

    t.relay.config.modify((d) => void (d.limits.authFailures.mode = 'enforce'), { by: 'test', source: 'test' });
    const x = await open(t.port, '127.0.0.9');
    await x.hello();
    for (let i = 0; i < 4; i++) expect((await x.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(535);
    expect(t.relay.anvil.blocked('127.0.0.9')).toBeNull();

    t.relay.config.modify((d) => void (d.limits.authFailures.mode = 'off'), { by: 'test', source: 'test' });
    const y = await open(t.port, '127.0.0.8');
    await y.hello();
    for (let i = 0; i < 4; i++) expect((await y.cmd(`AUTH PLAIN ${plain('sales', 'bad')}`)).code).toBe(535);
    expect(t.rejections('limits.authFailures')).toHaveLength(2);
  });
});
