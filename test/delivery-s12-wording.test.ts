/**
 * What a delivery failure says, to the admin (events, lastError) and to the sender (the DSN): what happened in words,
 * never an error code of nodemailer or of the socket ("(EMESSAGE)", "(ECONNECTION)", "connect ECONNREFUSED ..."), the
 * next hop named; and for a server's reply, the command it answered, as Postfix says it: "(in reply to RCPT TO
 * command)", "(in reply to MAIL FROM command)", "(in reply to DATA command)", "(in reply to end of DATA command)". The
 * DSN's text part says "host NAME said: REPLY (in reply to ... command)"; its Diagnostic-Code keeps the reply alone.
 *
 * Real parts: the delivery client against raw SMTP servers on loopback (test/helpers/raw-smtp.ts, or a bare net
 * server that drops the connection), and the queue with smtp-server sinks for the DSN.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildDsn } from '../relay/queue/dsn.ts';
import { targetName } from '../relay/queue/route.ts';
import { SmtpClient } from '../relay/queue/smtp-client.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import { rawAttempt, rawSmtpServers } from './helpers/raw-smtp.ts';

const rawSmtp = rawSmtpServers();
const { sink, harness } = deliveryFixtures();
const MESSAGE = Buffer.from('From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: words\r\n\r\nhello\r\n');
/** an error code in brackets, or a Node.js one in the text */
const CODE = /\(E[A-Z]+\)|\bE[A-Z]{4,}\b/;

const clients: SmtpClient[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.closeAll();
  for (const c of closers.splice(0)) await c();
});
function client(): SmtpClient {
  const c = new SmtpClient({ idleMs: 0 });
  clients.push(c);
  return c;
}

describe('the delivery client names the command a refusal answered', () => {
  it('RCPT TO, MAIL FROM, DATA and the end of DATA', async () => {
    const rcpt = await rawSmtp({ rcpt: () => '550 5.1.1 no such user' });
    const mail = await rawSmtp({ mail: () => '553 5.7.1 sender refused' });
    const dataCmd = await rawSmtp({ dataStart: () => '554 5.5.1 no, thanks' });
    const end = await rawSmtp({ data: () => '554 5.7.1 content refused' });
    const results = async (server: Parameters<typeof rawAttempt>[0]) => {
      const r = await client().deliver(rawAttempt(server, MESSAGE));
      if (r.kind !== 'done') throw new Error(r.reason);
      return r.results.map(({ code, response }) => ({ code, response }));
    };
    expect(await results(rcpt)).toEqual([{ code: 550, response: '550 5.1.1 no such user (in reply to RCPT TO command)' }]);
    expect(await results(mail)).toEqual([{ code: 553, response: '553 5.7.1 sender refused (in reply to MAIL FROM command)' }]);
    expect(await results(dataCmd)).toEqual([{ code: 554, response: '554 5.5.1 no, thanks (in reply to DATA command)' }]);
    expect(await results(end)).toEqual([{ code: 554, response: '554 5.7.1 content refused (in reply to end of DATA command)' }]);
  });
});

describe('a failure without a reply is said in words, the host named', () => {
  it('a refused connection', async () => {
    // a port nothing listens on: taken, then freed
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const r = await client().deliver(rawAttempt({ port, address: `127.0.0.1:${port}` } as never, MESSAGE));
    expect(r).toMatchObject({ kind: 'session-failed', reason: `127.0.0.1:${port}: could not connect: the connection was refused (no server listens there)` });
  });

  it('a server that drops the connection after RCPT', async () => {
    const server = net.createServer((sock) => {
      sock.write('220 drop.test ESMTP\r\n');
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        let i;
        while ((i = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (/^EHLO/i.test(line)) sock.write('250 drop.test\r\n');
          else if (/^MAIL/i.test(line)) sock.write('250 ok\r\n');
          else if (/^RCPT/i.test(line)) sock.destroy();
        }
      });
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const r = await client().deliver(rawAttempt({ port, address: `127.0.0.1:${port}` } as never, MESSAGE));
    expect(r.kind).toBe('done');
    const [res] = (r as Extract<typeof r, { kind: 'done' }>).results;
    expect(res).toEqual({ rcpt: 'bob@example.test', code: 0, response: `127.0.0.1:${port}: the server closed the connection unexpectedly` });
    expect(res!.response).not.toMatch(CODE);
  });
});

describe('through the queue', () => {
  it('the deferred reason and lastError name the command; the DSN says "host NAME said: ... (in reply to ...)"', async () => {
    const dest = await sink({
      onRcpt: (rcpt) => (rcpt.startsWith('gone@') ? { code: 550, message: '5.1.1 no such user' } : rcpt.startsWith('later@') ? { code: 451, message: '4.3.0 not now' } : undefined),
      onData: (msg) => (msg.data.includes('Subject: spam') ? { code: 554, message: '5.7.1 content refused' } : undefined),
    });
    const senderSink = await sink();
    const h = await harness(localDomains({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();

    const id = await h.submit('alice@sender.test', ['gone@example.test', 'later@example.test']);
    const deferred = await h.waitEvent('deferred', (e) => e.queueId === id);
    expect(deferred.reason).toMatch(/^127\.0\.0\.1.*:\d+ said: 451 4\.3\.0 not now \(in reply to RCPT TO command\)$/);
    expect(h.queue.list().find((m) => m.id === id)).toMatchObject({ lastError: deferred.reason });
    const bounced = await h.waitEvent('bounced', (e) => e.queueId === id);
    // (the server named, as in a deferral: a tryout found the bounced event said only the reply)
    expect(bounced.reason).toBe(`127.0.0.1:${dest.port} said: 550 5.1.1 no such user (in reply to RCPT TO command)`);
    const [dsn] = await senderSink.waitFor(1);
    const text = dsn!.data.toString('utf8');
    // (the host as the queue gives it: NAME[IP]:PORT, here an address without a name)
    expect(text).toContain(`<gone@example.test>: host 127.0.0.1:${dest.port} said: 550 5.1.1 no such user (in reply to RCPT TO command)`);
    expect(text).toContain('Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n');

    const spam = await h.submit('alice@sender.test', ['bob@example.test'], 'Subject: spam\r\n\r\nbuy\r\n');
    await h.waitEvent('bounced', (e) => e.queueId === spam);
    const [, dsn2] = await senderSink.waitFor(2);
    const text2 = dsn2!.data.toString('utf8');
    expect(text2).toContain(`<bob@example.test>: host 127.0.0.1:${dest.port} said: 554 5.7.1 content refused (in reply to end of DATA command)`);
    expect(text2).toContain('Diagnostic-Code: smtp; 554 5.7.1 content refused\r\n');
  });
});

describe('a server that closes the connection before its greeting', () => {
  it('is a failed session, said in words (a tryout saw nodemailer\'s "smtp connection is already destroyed" and the destination never down)', async () => {
    const s = net.createServer((sock) => sock.end());
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    const c = client();
    try {
      const r = await c.deliver({ ...rawAttempt({ port, address: '' } as never, MESSAGE), target: { host: '127.0.0.1', ip: '127.0.0.1', port } });
      // a connection-level failure (the destination is down then), in words
      expect(r).toMatchObject({ kind: 'session-failed', reason: `127.0.0.1:${port}: the server closed the connection unexpectedly` });
      expect(JSON.stringify(r)).not.toMatch(/already destroyed/);
    } finally {
      c.closeAll();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
});

describe('the next hop named', () => {
  it('an IPv6 address without a name is in brackets, its port after them', async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '::1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const r = await client().deliver({ ...rawAttempt({ port, address: '' } as never, MESSAGE), target: { host: '::1', ip: '::1', port } });
    expect(r).toMatchObject({ kind: 'session-failed', reason: `[::1]:${port}: could not connect: the connection was refused (no server listens there)` });
  });
});

describe('the DSN names the next hop as Postfix does when the queue gives its address', () => {
  it('"host NAME[IP]:PORT said: ..." in the text part, the name alone in Remote-MTA', () => {
    const dsn = buildDsn({
      reportingMta: 'relay.test',
      queueId: 'Q1',
      sender: 'alice@sender.test',
      arrivalDate: Date.UTC(2026, 0, 1),
      now: Date.UTC(2026, 0, 1),
      recipients: [
        {
          rcpt: 'bob@example.test',
          status: '5.1.1',
          diagnostic: '550 5.1.1 no such user (in reply to RCPT TO command)',
          smtp: true,
          remoteMta: 'mx.example.test',
          remoteHost: targetName({ host: 'mx.example.test', ip: '192.0.2.1', port: 25 }),
        },
      ],
      original: MESSAGE,
      complete: true,
    }).toString('utf8');
    expect(dsn).toContain('<bob@example.test>: host mx.example.test[192.0.2.1]:25 said: 550 5.1.1 no such user (in reply to RCPT TO command)\r\n');
    expect(dsn).toContain('Remote-MTA: dns; mx.example.test\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n');
  });
});
