/**
 * 8BITMIME and SMTPUTF8 carried to the next hop (RFC 6152, RFC 6531, RFC 6533), through the real relay: a client's
 * MAIL FROM parameters at the SMTP front, the envelope in the spool, the delivery worker, and real smtp-server sinks
 * on loopback that offer or hide 8BITMIME / SMTPUTF8 (hide8BITMIME, hideSMTPUTF8) and record every MAIL FROM's
 * parameters.
 *  - BODY=8BITMIME is declared to a next hop that offers 8BITMIME; to one that does not, the bytes go unchanged.
 *  - SMTPUTF8 is declared to a next hop that offers it, ASCII addresses too (UTF-8 only in a header field).
 *  - A message that needs SMTPUTF8 (a non-ASCII address, or UTF-8 in its header section) is not sent to a hop that
 *    does not offer it: 5.6.7, no transaction there, a bounce now; one that declared it but is all ASCII goes out.
 *  - The bounce of such a message is an RFC 6533 DSN (message/global-delivery-status, message/global), sent with
 *    SMTPUTF8.
 *  - The declarations survive a restart with the message still queued (its own .msg after a deferral; a segment).
 *  - BODY=BINARYMIME and BODY=foo are refused at the front; a refused MAIL's BODY does not stick to the next one.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { readQueuedMessage } from '../relay/queue/files.ts';
import { Relay } from '../relay/relay.ts';
import type { RelayEvent } from '../shared/events.ts';
import { smtpClients, type RawSmtp } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { queueHarness } from './helpers/queue-harness.ts';

interface Recorded {
  from: string;
  to: string[];
  /** the MAIL FROM's parameters as smtp-server parsed them (BODY: '8BITMIME', SMTPUTF8: true, SIZE: '123') */
  args: Record<string, unknown>;
  data: Buffer;
}

interface RecordingSink {
  address: string;
  /** every MAIL FROM this sink was sent, with its parameters */
  mails: { from: string; args: Record<string, unknown> }[];
  messages: Recorded[];
  connections: number;
  close(): Promise<void>;
}

const closers: (() => Promise<void>)[] = [];
let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
  for (const c of closers.splice(0).reverse()) await c();
});

/** A real smtp-server on loopback offering (or hiding) 8BITMIME and SMTPUTF8, recording what it gets. */
async function recordingSink(offers: { eightBit: boolean; smtpUtf8: boolean }): Promise<RecordingSink> {
  const sink: RecordingSink = { address: '', mails: [], messages: [], connections: 0, close: async () => {} };
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    hide8BITMIME: !offers.eightBit,
    hideSMTPUTF8: !offers.smtpUtf8,
    logger: false,
    disableReverseLookup: true,
    onMailFrom(address, _session, cb) {
      sink.mails.push({ from: address.address, args: { ...((address.args as Record<string, unknown> | false) || {}) } });
      cb();
    },
    onRcptTo(_address, _session, cb) {
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const mail = session.envelope.mailFrom;
        sink.messages.push({
          from: mail ? mail.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          args: { ...((mail && (mail.args as Record<string, unknown> | false)) || {}) },
          data: Buffer.concat(chunks),
        });
        cb(null, 'Ok');
      });
    },
  });
  server.on('error', () => {});
  const sockets = new Set<net.Socket>();
  server.server.on('connection', (s: net.Socket) => {
    sink.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  sink.address = `127.0.0.1:${(server.server.address() as net.AddressInfo).port}`;
  sink.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  closers.push(sink.close);
  return sink;
}

/** A relay whose local domains deliver (in plain text) to the given sinks or addresses. */
async function relayTo(domains: Record<string, RecordingSink | string>): Promise<TestRelay> {
  t = await startTestRelay({
    domains: Object.fromEntries(Object.entries(domains).map(([d, s]) => [d, { deliverTo: typeof s === 'string' ? s : s.address, recipients: '*' as const }])),
    delivery: { tls: 'off' },
    checks: { senderDomain: { mode: 'off' } },
  });
  return t;
}

/** One transaction: MAIL with its parameters, the recipients, the body; every reply must be a success. */
async function send(c: RawSmtp, mail: string, rcpts: string[], body: string | Buffer): Promise<void> {
  expect((await c.cmd(`MAIL FROM:${mail}`)).code).toBe(250);
  for (const r of rcpts) expect((await c.cmd(`RCPT TO:<${r}>`)).code).toBe(250);
  expect((await c.cmd('DATA')).code).toBe(354);
  c.write(Buffer.concat([Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), Buffer.from('.\r\n')]));
  const done = await c.read(15_000);
  expect(done?.code).toBe(250);
}

async function client(port: number): Promise<RawSmtp> {
  const c = await open(port, '127.0.0.5');
  await c.hello();
  return c;
}

/** The message as the client sent it: the sink's copy without the Received header the relay put first. */
function tail(data: Buffer, sent: Buffer): Buffer {
  return data.subarray(data.length - sent.length);
}

function bounced(t: TestRelay): Extract<RelayEvent, { kind: 'bounced' }>[] {
  return t.events.filter((e): e is Extract<RelayEvent, { kind: 'bounced' }> => e.kind === 'bounced');
}

const EIGHT_BIT = Buffer.from('Subject: plain header\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nnaïve café, Grüße\r\n', 'utf8');
const UTF8_HEADER = Buffer.from('Subject: Grüße aus Köln\r\nFrom: <a@sender.example>\r\n\r\nhello\r\n', 'utf8');
const ASCII = Buffer.from('Subject: plain\r\n\r\nhello\r\n', 'utf8');

describe('BODY=8BITMIME', () => {
  it('is declared to a next hop that offers 8BITMIME; one that does not gets the same bytes without it', async () => {
    const offers = await recordingSink({ eightBit: true, smtpUtf8: true });
    const hides = await recordingSink({ eightBit: false, smtpUtf8: true });
    const t = await relayTo({ 'example.com': offers, 'example.net': hides });
    const c = await client(t.port);
    await send(c, '<a@sender.example> BODY=8BITMIME', ['bob@example.com', 'carol@example.net'], EIGHT_BIT);
    await expect.poll(() => offers.messages.length + hides.messages.length, { timeout: 10_000 }).toBe(2);
    expect(offers.messages[0]!.args['BODY']).toBe('8BITMIME');
    expect(tail(offers.messages[0]!.data, EIGHT_BIT).equals(EIGHT_BIT)).toBe(true);
    // not offered: no BODY parameter, and the 8-bit bytes unchanged (no conversion to 7 bit)
    expect(hides.mails.map((m) => m.args['BODY'])).toEqual([undefined]);
    expect(tail(hides.messages[0]!.data, EIGHT_BIT).equals(EIGHT_BIT)).toBe(true);
  });

  it('is not declared for a MAIL without it or with BODY=7BIT', async () => {
    const offers = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'example.com': offers });
    const c = await client(t.port);
    await send(c, '<a@sender.example> BODY=8BITMIME', ['bob@example.com'], EIGHT_BIT);
    await send(c, '<a@sender.example> BODY=7BIT', ['bob@example.com'], ASCII);
    await send(c, '<a@sender.example>', ['bob@example.com'], ASCII);
    await expect.poll(() => offers.messages.length, { timeout: 10_000 }).toBe(3);
    // (delivered one by one, in order: one connection, reused)
    expect(offers.mails.map((m) => m.args['BODY'] ?? null).sort()).toEqual(['8BITMIME', null, null]);
    const stored = offers.messages.find((m) => m.args['BODY'] === '8BITMIME')!;
    expect(tail(stored.data, EIGHT_BIT).equals(EIGHT_BIT)).toBe(true);
  });
});

describe('SMTPUTF8', () => {
  it('a local domain written as its U-label goes to that domain\'s deliverTo, as its A-label does', async () => {
    // (a tryout: accepted as local at RCPT, then routed by MX as bücher.test and bounced with NXDOMAIN)
    const idn = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'xn--bcher-kva.test': idn });
    const c = await client(t.port);
    await send(c, '<a@sender.example> SMTPUTF8', ['u1@bücher.test', 'u2@XN--BCHER-KVA.test'], ASCII);
    await expect.poll(() => idn.messages.length, { timeout: 10_000 }).toBe(1);
    expect(idn.messages[0]!.to.sort()).toEqual(['u1@bücher.test', 'u2@XN--BCHER-KVA.test'].sort());
    expect(bounced(t)).toEqual([]);
  });

  it('is declared to a next hop that offers it when the MAIL declared it, ASCII addresses and a UTF-8 header field', async () => {
    const offers = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'example.com': offers });
    const c = await client(t.port);
    await send(c, '<a@sender.example> SMTPUTF8 BODY=8BITMIME', ['bob@example.com'], UTF8_HEADER);
    await expect.poll(() => offers.messages.length, { timeout: 10_000 }).toBe(1);
    expect(offers.messages[0]!.args).toMatchObject({ SMTPUTF8: true, BODY: '8BITMIME' });
    expect(tail(offers.messages[0]!.data, UTF8_HEADER).equals(UTF8_HEADER)).toBe(true);
    // a MAIL that did not declare it: not declared downstream either
    await send(c, '<a@sender.example>', ['bob@example.com'], ASCII);
    await expect.poll(() => offers.messages.length, { timeout: 10_000 }).toBe(2);
    expect(offers.mails.map((m) => m.args['SMTPUTF8'] ?? null)).toEqual([true, null]);
  });

  it('a non-ASCII address to a hop without SMTPUTF8: no transaction there, a 5.6.7 bounce now naming the host', async () => {
    const hides = await recordingSink({ eightBit: true, smtpUtf8: false });
    const senders = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'example.com': hides, 'sender.example': senders });
    const c = await client(t.port);
    await send(c, '<a@sender.example> SMTPUTF8', ['jürgen@example.com'], ASCII);
    await expect.poll(() => bounced(t).length, { timeout: 10_000 }).toBe(1);
    const ev = bounced(t)[0]!;
    expect(ev.to).toEqual(['jürgen@example.com']);
    expect(ev.reason).toBe(`SMTPUTF8 is required, but was not offered by host ${hides.address}`);
    expect(hides.mails).toEqual([]);
    expect(t.events.filter((e) => e.kind === 'deferred')).toEqual([]);
    // the bounce: Status 5.6.7, our own reason (no Remote-MTA: no server said it)
    await expect.poll(() => senders.messages.length, { timeout: 10_000 }).toBe(1);
    const dsn = senders.messages[0]!.data.toString('utf8');
    expect(senders.messages[0]!.from).toBe('');
    expect(dsn).toMatch(/\r\nStatus: 5\.6\.7\r\n/);
    expect(dsn).toContain(`Diagnostic-Code: x-unix; SMTPUTF8 is required, but was not offered by host ${hides.address}`);
    expect(dsn).not.toMatch(/Remote-MTA:/);
    // RFC 6533: a non-ASCII recipient makes it a global DSN, and the DSN declares SMTPUTF8 (its addresses are ASCII:
    // nodemailer alone would not)
    expect(dsn).toContain('\r\nFinal-Recipient: utf-8; jürgen@example.com\r\n');
    expect(senders.messages[0]!.args['SMTPUTF8']).toBe(true);
  });

  it('UTF-8 in the header section of a message that declared SMTPUTF8, to a hop without it: 5.6.7, no transaction', async () => {
    const hides = await recordingSink({ eightBit: true, smtpUtf8: false });
    const senders = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'example.com': hides, 'sender.example': senders });
    const c = await client(t.port);
    await send(c, '<a@sender.example> SMTPUTF8', ['bob@example.com'], UTF8_HEADER);
    await expect.poll(() => bounced(t).length, { timeout: 10_000 }).toBe(1);
    expect(bounced(t)[0]!.reason).toBe(`SMTPUTF8 is required, but was not offered by host ${hides.address}`);
    expect(hides.mails).toEqual([]);
  });

  it('a message that declared SMTPUTF8 but is all ASCII goes to a hop without it (and with it to one that offers it)', async () => {
    const hides = await recordingSink({ eightBit: true, smtpUtf8: false });
    const offers = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'example.com': hides, 'example.net': offers });
    const c = await client(t.port);
    await send(c, '<a@sender.example> SMTPUTF8', ['bob@example.com', 'carol@example.net'], ASCII);
    await expect.poll(() => hides.messages.length + offers.messages.length, { timeout: 10_000 }).toBe(2);
    expect(hides.messages[0]!.args['SMTPUTF8']).toBeUndefined();
    expect(tail(hides.messages[0]!.data, ASCII).equals(ASCII)).toBe(true);
    expect(offers.messages[0]!.args['SMTPUTF8']).toBe(true);
    expect(bounced(t)).toEqual([]);
  });
});

describe('RFC 6533: the bounce of an internationalised message', () => {
  it('is multipart/report; report-type=global-delivery-status with message/global, sent with SMTPUTF8', async () => {
    const hides = await recordingSink({ eightBit: true, smtpUtf8: false });
    const senders = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'example.com': hides, 'sender.example': senders });
    const c = await client(t.port);
    const original = Buffer.from('Subject: Grüße\r\nFrom: <jörg@sender.example>\r\n\r\nhello\r\n', 'utf8');
    await send(c, '<jörg@sender.example> SMTPUTF8', ['jürgen+tag@example.com'], original);
    await expect.poll(() => senders.messages.length, { timeout: 10_000 }).toBe(1);
    const m = senders.messages[0]!;
    expect(m.from).toBe('');
    expect(m.to).toEqual(['jörg@sender.example']);
    expect(m.args['SMTPUTF8']).toBe(true);
    const dsn = m.data.toString('utf8');
    expect(dsn).toMatch(/\r\nTo: <jörg@sender\.example>\r\n/);
    expect(dsn).toMatch(/Content-Type: multipart\/report; report-type=global-delivery-status;/);
    expect(dsn).toMatch(/\r\nContent-Type: message\/global-delivery-status\r\n/);
    // RFC 6533 3: the utf-8 address type; utf-8-addr-unitext escapes "+" (and "=", "\")
    expect(dsn).toContain('\r\nFinal-Recipient: utf-8; jürgen\\x{2B}tag@example.com\r\n');
    expect(dsn).toMatch(/\r\nContent-Type: message\/global\r\n/);
    expect(m.data.includes(original)).toBe(true);
    expect(dsn).not.toMatch(/message\/delivery-status|message\/rfc822/);
  });
});

describe('the declarations in the spool', () => {
  it('survive a relay restart with the message still queued (deferred, in its own .msg)', async () => {
    // a port nothing listens on: the first attempt is refused and deferred
    const closed = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    const first = await relayTo({ 'example.com': `127.0.0.1:${closed}` });
    const c = await client(first.port);
    await send(c, '<a@sender.example> BODY=8BITMIME SMTPUTF8', ['bob@example.com'], UTF8_HEADER);
    await expect.poll(() => first.events.some((e) => e.kind === 'deferred'), { timeout: 10_000 }).toBe(true);
    const id = (first.events.find((e) => e.kind === 'accepted') as { queueId: string }).queueId;
    await first.relay.stop();
    const stored = await readQueuedMessage(path.join(first.dir, 'spool', 'queue'), id);
    expect(JSON.parse(stored!.json).envelope).toMatchObject({ body8bit: true, smtpUtf8: true });

    // the same data directory, the domain now pointing at a sink that offers both, an hour later (the retry is due)
    const offers = await recordingSink({ eightBit: true, smtpUtf8: true });
    const configFile = path.join(first.dir, 'config.json');
    const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    config.domains['example.com'].deliverTo = offers.address;
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
    first.clock.advance(3_600_000);
    const again = await Relay.start({ dataDir: first.dir, smtpListen: '127.0.0.1:0', now: first.clock.now, log: () => {} });
    try {
      await expect.poll(() => offers.messages.length, { timeout: 10_000 }).toBe(1);
      expect(offers.messages[0]!.args).toMatchObject({ BODY: '8BITMIME', SMTPUTF8: true });
      expect(tail(offers.messages[0]!.data, UTF8_HEADER).equals(UTF8_HEADER)).toBe(true);
    } finally {
      await again.stop();
      await first.dns.close();
      fs.rmSync(first.dir, { recursive: true, force: true });
      t = null;
    }
  });

  it('survive a restart from a segment (never attempted), and an envelope without them loads as before', async () => {
    const offers = await recordingSink({ eightBit: true, smtpUtf8: true });
    const h = await queueHarness({ smtp: { hostname: 'relay.test' }, domains: { 'example.test': { deliverTo: offers.address, recipients: '*' } }, delivery: { tls: 'off' } });
    closers.push(() => h.close());
    // committed by a queue that never starts (still in its segment), then read by a new queue on the same spool
    const declared = await h.submit('alice@sender.test', ['bob@example.test'], UTF8_HEADER, { body8bit: true, smtpUtf8: true });
    const plain = await h.submit('alice@sender.test', ['carol@example.test'], ASCII);
    const stored = await readQueuedMessage(path.join(h.dir, 'queue'), plain);
    // (an envelope of a plain message is written exactly as before: no new key)
    expect(Object.keys(JSON.parse(stored!.json).envelope).sort()).toEqual(['authUser', 'clientHostname', 'clientIp', 'from', 'helo', 'receivedAt', 'sessionId', 'to']);
    expect(declared).not.toBe(plain);
    await h.queue.stop();
    const q = h.reopen();
    await q.start();
    await expect.poll(() => offers.messages.length, { timeout: 10_000 }).toBe(2);
    const byRcpt = new Map(offers.messages.map((m) => [m.to[0], m.args]));
    expect(byRcpt.get('bob@example.test')).toMatchObject({ BODY: '8BITMIME', SMTPUTF8: true });
    expect(byRcpt.get('carol@example.test')!['BODY']).toBeUndefined();
    expect(byRcpt.get('carol@example.test')!['SMTPUTF8']).toBeUndefined();
  });
});

describe('bad BODY values', () => {
  it('BODY=BINARYMIME and BODY=foo are refused at MAIL; a refused MAIL\'s BODY does not stick to the next one', async () => {
    const offers = await recordingSink({ eightBit: true, smtpUtf8: true });
    const t = await relayTo({ 'example.com': offers });
    const c = await client(t.port);
    // BINARYMIME needs BDAT (RFC 3030), which is not offered
    expect(await c.cmd('MAIL FROM:<a@sender.example> BODY=BINARYMIME')).toMatchObject({ code: 501 });
    expect(await c.cmd('MAIL FROM:<a@sender.example> BODY=foo')).toMatchObject({ code: 501 });
    // refused by the relay after smtp-server took its BODY: the next MAIL did not declare 8BITMIME
    expect(await c.cmd('MAIL FROM:<a@sender.example> BODY=8BITMIME FOO=1')).toMatchObject({ code: 555 });
    await send(c, '<a@sender.example>', ['bob@example.com'], ASCII);
    // the value is case-insensitive (RFC 5321 esmtp-value compared as the keyword)
    await send(c, '<a@sender.example> BODY=8bitmime', ['bob@example.com'], EIGHT_BIT);
    await expect.poll(() => offers.messages.length, { timeout: 10_000 }).toBe(2);
    expect(offers.mails.map((m) => m.args['BODY'] ?? null).sort()).toEqual(['8BITMIME', null]);
    const eight = offers.messages.find((m) => m.args['BODY'] === '8BITMIME')!;
    expect(tail(eight.data, EIGHT_BIT).equals(EIGHT_BIT)).toBe(true);
  });
});
