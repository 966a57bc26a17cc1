/**
 * Every reply of a next hop has a deadline (commandTimeoutMs; the reply to the end of the data twice that, as Postfix's
 * smtp_data_done_timeout): a server that keeps the connection alive with one line of a multi-line reply every so often
 * ("250-still thinking"), or sends nothing more after the final dot, no longer holds a delivery slot for ever. Found by
 * a user tryout: nodemailer's socketTimeout is an inactivity timer, and twenty such servers stopped every delivery of
 * the relay until it was restarted. A message whose data is still being written and moving is not cut.
 *
 * The next hops are raw net servers on loopback that speak just enough SMTP; the deadlines are short (real time, a
 * fraction of a second), the tests assert what happened, never how long it took.
 */
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpClient, type AttemptInput } from '../relay/queue/smtp-client.ts';
import { deliveryFixtures } from './helpers/delivery-fixtures.ts';
import { rawAttempt, rawSmtpServers, type RawContext, type RawServer } from './helpers/raw-smtp.ts';

type Stall = 'ehlo' | 'mail' | 'dot' | 'read' | null;

const rawSmtp = rawSmtpServers();
const clients: SmtpClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.closeAll();
});

/**
 * A server that answers normally except at `stall`, where it starts a multi-line reply and adds a line every 20 ms
 * without ever ending it ('ehlo', 'mail'), says nothing at all after the final dot ('dot'), or stops reading after its
 * 354 ('read': the relay's writes fill the sockets' buffers and the message data stops moving).
 */
async function stallingServer(stall: Stall): Promise<RawServer & { trickled: () => number }> {
  let trickled = 0;
  const trickle = (ctx: RawContext) => {
    ctx.every(20, () => {
      trickled++;
      ctx.say('250-still thinking');
    });
    return null;
  };
  const server = await rawSmtp({
    ehlo: stall === 'ehlo' ? trickle : undefined,
    mail: stall === 'mail' ? trickle : undefined,
    data: stall === 'dot' ? () => null : undefined,
    dataStart:
      stall === 'read'
        ? (ctx) => {
            ctx.stopReading();
            return undefined;
          }
        : undefined,
  });
  return Object.assign(server, { trickled: () => trickled });
}

const MESSAGE = Buffer.from('From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: deadline\r\n\r\nhello\r\n');

function attempt(server: RawServer, over: Partial<AttemptInput> = {}): AttemptInput {
  return rawAttempt(server, MESSAGE, { commandTimeoutMs: 300, ...over });
}

function client(): SmtpClient {
  const c = new SmtpClient({ idleMs: 60_000 });
  clients.push(c);
  return c;
}

describe('a reply that never ends (the delivery client)', () => {
  it('a multi-line EHLO reply that keeps coming: the session fails as timed out, and the connection is closed', async () => {
    const server = await stallingServer('ehlo');
    const r = await client().deliver(attempt(server));
    expect(r).toMatchObject({ kind: 'session-failed', tlsHandshake: false });
    expect(r.kind === 'session-failed' && r.reason).toBe(
      `${server.address}: no complete reply within 0.3 s after EHLO (the server kept the connection open without finishing its answer)`,
    );
    // it did keep talking while the relay waited: the inactivity timer alone never fired
    expect(server.trickled()).toBeGreaterThan(0);
    await expect.poll(() => server.stats.open).toBe(0);
  });

  it('a MAIL FROM reply that keeps coming: the message is not delivered, its recipients get the timeout, the connection is not kept', async () => {
    const server = await stallingServer('mail');
    const c = client();
    const r = await c.deliver(attempt(server));
    expect(r.kind).toBe('done');
    if (r.kind !== 'done') return;
    expect(r.results).toEqual([
      { rcpt: 'bob@example.test', code: 0, response: `${server.address}: no complete reply within 0.3 s after MAIL FROM (the server kept the connection open without finishing its answer)` },
    ]);
    expect(server.stats.messages).toBe(0);
    expect(c.idleConnections).toBe(0);
    await expect.poll(() => server.stats.open).toBe(0);
  });

  it('a login whose password gets no answer: the reason names the login, never a part of the password', async () => {
    // AUTH LOGIN sends the user name and the password as lines of their own, in base64; the reason named the "command"
    // by its first letters, which for the password line were its first letters
    const password = 'Sesame1234';
    const passwordLine = Buffer.from(password).toString('base64');
    const server = await rawSmtp({
      ehlo: () => '250-raw.test\r\n250 AUTH LOGIN',
      auth: '334 VXNlcm5hbWU6',
      other: (line) => (line === passwordLine ? null : '334 UGFzc3dvcmQ6'),
    });
    const r = await client().deliver(attempt(server, { auth: { user: 'relay', pass: password } }));
    expect(r).toMatchObject({ kind: 'session-failed', login: true });
    const reason = r.kind === 'session-failed' ? r.reason : '';
    expect(reason).toBe(
      `authentication failed: ${server.address}: no complete reply within 0.3 s after the login (the server kept the connection open without finishing its answer)`,
    );
    expect(server.sessions[0]!.commands).toContain(passwordLine);
  });

  it('no reply after the final dot: timed out after twice the command timeout, and said that the message may arrive twice', async () => {
    const server = await stallingServer('dot');
    const c = client();
    const r = await c.deliver(attempt(server));
    expect(r.kind === 'done' && r.results).toEqual([
      { rcpt: 'bob@example.test', code: 0, response: `${server.address}: no reply to the end of the message data within 0.6 s: it may arrive twice when it is tried again` },
    ]);
    expect(server.stats.messages).toBe(1);
    expect(c.idleConnections).toBe(0);
    await expect.poll(() => server.stats.open).toBe(0);
  });

  it('message data that stops moving (the server stopped reading) is cut, and not said to be perhaps delivered', async () => {
    const server = await stallingServer('read');
    // more than the sockets' buffers hold (up to 4 MiB sent, 32 MiB received on this kernel)
    const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(64 * 1024 * 1024, 'x'), Buffer.from('\r\n')]);
    const r = await client().deliver(attempt(server, { data: () => big, size: big.length }));
    expect(r.kind === 'done' && r.results).toEqual([
      { rcpt: 'bob@example.test', code: 0, response: `${server.address}: the message data stopped moving for 0.3 s (the server stopped reading it); it was not delivered` },
    ]);
    expect(server.stats.messages).toBe(0);
  });

  it('message data that is still being written and moving is not cut, however long it takes', async () => {
    const server = await stallingServer(null);
    // the relay's side is slow (a slow disk, say): 30 chunks, one every 40 ms, about four times the deadline
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i} ${'x'.repeat(60)}\r\n`);
    const body = Buffer.concat([Buffer.from('Subject: slow\r\n\r\n'), ...lines.map((l) => Buffer.from(l))]);
    const slow = () => {
      let i = 0;
      return new Readable({
        read() {
          if (i === 0) {
            i++;
            this.push(Buffer.from('Subject: slow\r\n\r\n'));
            return;
          }
          setTimeout(() => this.push(i <= lines.length ? Buffer.from(lines[i++ - 1]!) : null), 40);
        },
      });
    };
    const r = await client().deliver(attempt(server, { data: slow, size: body.length }));
    expect(r.kind === 'done' && r.results).toEqual([{ rcpt: 'bob@example.test', code: 250, response: '250 2.0.0 queued' }]);
    expect(server.stats.messages).toBe(1);
  });

  it('an idle connection kept for the next message is not timed out while it waits, and serves the next message', async () => {
    const server = await stallingServer(null);
    const c = client();
    // a deadline of 1 s per reply (the inactivity timeout is 3 s): idle for 1.5 s, longer than a reply may take
    const input = attempt(server, { commandTimeoutMs: 1000 });
    expect((await c.deliver(input)).kind).toBe('done');
    expect(c.idleConnections).toBe(1);
    await new Promise((r) => setTimeout(r, 1500));
    const r = await c.deliver(input);
    expect(r.kind === 'done' && r.results[0]!.code).toBe(250);
    expect(server.sessions).toHaveLength(1);
    expect(server.stats.messages).toBe(2);
  });
});

describe('a reply that never ends (the queue)', () => {
  const { sink, harness } = deliveryFixtures();

  it('the stalled message is deferred with the reason, its slot is freed, and mail to a healthy server goes out', async () => {
    const stalling = await stallingServer('mail');
    const good = await sink();
    // one delivery at a time for the whole queue: the stalled session must give its slot back for the good one
    const h = await harness(
      {
        smtp: { hostname: 'relay.test' },
        domains: { 'good.test': { deliverTo: good.address, recipients: '*' }, 'stall.test': { deliverTo: stalling.address, recipients: '*' } },
        delivery: { tls: 'off' },
      },
      { concurrency: 1, commandTimeoutMs: 300 },
    );
    await h.queue.start();
    const stalled = await h.submit('alice@sender.test', ['bob@stall.test']);
    const deferred = await h.waitEvent('deferred', (e) => e.queueId === stalled);
    expect(deferred.reason).toMatch(/no complete reply within 0\.3 s after MAIL FROM/);
    const fine = await h.submit('alice@sender.test', ['carol@good.test']);
    await h.waitEvent('delivered', (e) => e.queueId === fine);
    expect(good.messages).toHaveLength(1);
    expect(stalling.stats.open).toBe(0);
  });
});
