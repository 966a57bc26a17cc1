/**
 * How a delivery session ends (RFC 5321 4.1.1.10): a connection the relay does not keep for the next message is ended
 * with QUIT (after a refused AUTH, a stale RSET), and only a connection that is out of step (a message stream that
 * broke halfway through DATA) is closed without it. A clean transaction, and one the server refused in words (RCPT,
 * MAIL, the message; not a 421), leave the connection in the cache for the next message, which starts with RSET;
 * QUIT when it is ended.
 *
 * The downstream server is a raw net server that speaks just enough SMTP and records, per connection, every command
 * line it read, whether QUIT came, and the connection's end.
 */
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpClient, type AttemptInput } from '../relay/queue/smtp-client.ts';
import { deliveryFixtures, plainLocalDomains } from './helpers/delivery-fixtures.ts';
import { rawAttempt, rawSmtpServers, type RawServer, type RawSession } from './helpers/raw-smtp.ts';

const rawSmtp = rawSmtpServers();

const MESSAGE = Buffer.from('From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: quit\r\n\r\nhello\r\n');

function attempt(server: RawServer, over: Partial<AttemptInput> = {}): AttemptInput {
  return rawAttempt(server, MESSAGE, over);
}

/** the connection's end, and what the server read before it */
async function ended(server: RawServer, i = 0): Promise<RawSession> {
  await expect.poll(() => server.sessions.length).toBeGreaterThan(i);
  const s = server.sessions[i]!;
  await s.closed;
  return s;
}

describe('a session the relay does not keep ends with QUIT', () => {
  const clients: SmtpClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.closeAll();
  });
  const client = () => {
    const c = new SmtpClient({ idleMs: 60_000 });
    clients.push(c);
    return c;
  };

  /**
   * A refusal the server said in words leaves the conversation in step: the connection is kept, the next message to
   * that server goes over it after RSET (one connection, not one per refused message: a server answering 451 to
   * everything got a connection per queued message), and it ends with QUIT.
   */
  async function keptAfterRefusal(server: RawServer, c: SmtpClient): Promise<void> {
    expect(c.idleConnections).toBe(1);
    expect(await c.deliver(attempt(server))).toMatchObject({ kind: 'done' });
    expect(server.sessions).toHaveLength(1);
    const cmds = server.sessions[0]!.commands;
    expect(cmds.filter((l) => l.startsWith('MAIL'))).toHaveLength(2);
    const secondMail = cmds.map((l) => l.startsWith('MAIL')).lastIndexOf(true);
    expect(cmds[secondMail - 1]).toBe('RSET');
    c.closeAll();
    const s = await ended(server);
    expect(s.commands.at(-1)).toBe('QUIT');
    expect(s.quit).toBe(true);
  }

  it.each([
    ['550 5.1.1 no such user', 550],
    ['451 4.3.0 try again later', 451],
  ])('after a RCPT refused with "%s": kept for the next message, and QUIT when ended', async (reply, code) => {
    const server = await rawSmtp({ rcpt: () => reply });
    const c = client();
    const r = await c.deliver(attempt(server));
    expect(r).toMatchObject({ kind: 'done', results: [{ rcpt: 'bob@example.test', code }] });
    await keptAfterRefusal(server, c);
  });

  it('after some recipients of several were refused and the message was sent to the others: kept, and QUIT when ended', async () => {
    const server = await rawSmtp({ rcpt: (line) => (line.includes('carol') ? '550 5.1.1 no such user' : undefined) });
    const c = client();
    const r = await c.deliver(attempt(server, { rcpts: ['bob@example.test', 'carol@example.test'] }));
    expect(r).toMatchObject({ kind: 'done', results: [{ code: 250 }, { code: 550 }] });
    expect(c.idleConnections).toBe(1); // a transaction that ended cleanly: the connection is cached, as before
    c.closeAll();
    expect((await ended(server)).quit).toBe(true);
  });

  it('after MAIL FROM was refused: kept, no RCPT sent, and QUIT when ended', async () => {
    const server = await rawSmtp({ mail: () => '553 5.1.8 sender domain does not exist' });
    const c = client();
    const r = await c.deliver(attempt(server));
    expect(r).toMatchObject({ kind: 'done', results: [{ code: 553 }] });
    expect(server.sessions[0]!.commands.filter((l) => l.startsWith('RCPT'))).toEqual([]);
    await keptAfterRefusal(server, c);
  });

  it('after the message itself was refused at the end of DATA: kept, and QUIT when ended', async () => {
    const server = await rawSmtp({ data: () => '554 5.6.0 message refused' });
    const c = client();
    const r = await c.deliver(attempt(server));
    expect(r).toMatchObject({ kind: 'done', results: [{ code: 554 }] });
    await keptAfterRefusal(server, c);
  });

  it('after a 421 (the server is closing the connection): not kept, the next message opens a new connection', async () => {
    const server = await rawSmtp({ rcpt: (_line, n) => (n === 1 ? '421 4.3.2 shutting down' : undefined) });
    const c = client();
    const r = await c.deliver(attempt(server));
    expect(r).toMatchObject({ kind: 'done', results: [{ code: 421 }] });
    expect(c.idleConnections).toBe(0);
    expect(await c.deliver(attempt(server))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
    expect(server.sessions).toHaveLength(2);
  });

  it('after AUTH was refused', async () => {
    const server = await rawSmtp({ auth: '535 5.7.8 authentication credentials invalid' });
    const r = await client().deliver(attempt(server, { auth: { user: 'u', pass: 'wrong' } }));
    expect(r).toMatchObject({ kind: 'session-failed', reason: expect.stringMatching(/authentication failed.*535/) });
    const s = await ended(server);
    expect(s.quit).toBe(true);
    expect(s.commands.filter((c) => c.startsWith('MAIL'))).toEqual([]);
  });

  it('a cached connection whose RSET is refused is ended with QUIT, and the message goes through a new one', async () => {
    let rsets = 0;
    const server = await rawSmtp({ rset: () => (++rsets === 1 ? '554 5.5.0 no RSET today' : undefined) });
    const c = client();
    expect(await c.deliver(attempt(server))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
    expect(c.idleConnections).toBe(1);
    expect(await c.deliver(attempt(server))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
    const first = await ended(server, 0);
    expect(first.commands.slice(-2)).toEqual([expect.stringMatching(/^RSET/), 'QUIT']);
    expect(server.sessions).toHaveLength(2);
  });

  it('a connection out of step (the message stream broke halfway through DATA) is closed without QUIT: it would be read as message text', async () => {
    const server = await rawSmtp();
    const data = () => {
      let pushed = false;
      return new Readable({
        read() {
          if (pushed) return;
          pushed = true;
          this.push(Buffer.from('Subject: half\r\n\r\nfirst line\r\n'));
          setImmediate(() => this.destroy(new Error('disk read failed')));
        },
      });
    };
    const r = await client().deliver(attempt(server, { data }));
    expect(r).toMatchObject({ kind: 'done', results: [{ code: 0 }] });
    const s = await ended(server);
    expect(s.quit).toBe(false);
    expect(s.dataLines.join('\n')).not.toMatch(/QUIT/);
    expect(s.commands.at(-1)).toBe('DATA');
  });

  it('a clean transaction still keeps the connection for the next message (one connection, RSET between, no QUIT until it is ended)', async () => {
    const server = await rawSmtp();
    const c = client();
    for (let i = 0; i < 3; i++) expect(await c.deliver(attempt(server))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
    expect(server.sessions).toHaveLength(1);
    expect(server.sessions[0]!.quit).toBe(false);
    expect(server.sessions[0]!.commands.filter((l) => l === 'RSET')).toHaveLength(2);
    c.closeAll();
    expect((await ended(server)).quit).toBe(true);
  });
});

describe('through the queue (delivery worker)', () => {
  const { harness } = deliveryFixtures();

  it('a recipient refused with 550 bounces, and the downstream connection ends with QUIT', async () => {
    const server = await rawSmtp({ rcpt: () => '550 5.1.1 no such user' });
    const sinkLike = { address: server.address } as never;
    const h = await harness(plainLocalDomains({ 'example.test': sinkLike }));
    await h.queue.start();
    // null sender: no DSN to deliver, the bounce is only recorded
    await h.submit('', ['bob@example.test']);
    await h.waitEvent('bounced');
    const s = await ended(server);
    expect(s.commands.filter((l) => l.startsWith('RCPT'))).toHaveLength(1);
    expect(s.quit).toBe(true);
  });
});
