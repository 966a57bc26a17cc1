/**
 * Lines longer than 998 octets (RFC 5321 4.5.3.1.6, RFC 5322 2.1.1) are broken on delivery by inserting CRLF SPACE
 * after 998 octets, as Postfix's smtp_line_length_limit = 998: a header field is folded, a body line continues on an
 * indented line. Every other byte is unchanged (dot-stuffing included: a new line starts with a space). The DSN the
 * relay writes returns the original with its lines broken the same way. Before, such lines went to the next hop as
 * they were, and into the relay's own DSNs.
 *
 * Real sinks (smtp-server on loopback) record the bytes they get (unstuffed); both ways the queue hands a message to
 * the delivery worker are covered: a Buffer (kept in memory since its commit) and a stream of its spool file (a
 * message over 256 KiB, in its own .msg file, read in 64 KiB chunks).
 */
import fs, { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDsn, LineBreaker } from '../relay/queue/dsn.ts';
import { SmtpClient } from '../relay/queue/smtp-client.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import { rawAttempt, rawSmtpServers } from './helpers/raw-smtp.ts';

const { sink, harness } = deliveryFixtures();

/** What the next hop must get, written out independently: each line over 998 octets cut at 998, the rest as " " + 997. */
function expected(message: string): string {
  return message
    .split('\r\n')
    .map((line) => {
      if (line.length <= 998) return line;
      const parts = [line.slice(0, 998)];
      for (let i = 998; i < line.length; i += 997) parts.push(' ' + line.slice(i, i + 997));
      return parts.join('\r\n');
    })
    .join('\r\n');
}

function longestLine(bytes: string): number {
  return Math.max(...bytes.split('\r\n').map((l) => l.length));
}

/** A message with a 1,500-octet header field, a 2,000-octet body line, lines of exactly 998 and 999 octets, and dots where a break falls. */
function longLinesMessage(padding = 0): string {
  return [
    'From: <a@sender.test>',
    'To: <b@example.test>',
    `X-Long: ${'h'.repeat(1500 - 'X-Long: '.length)}`,
    'Subject: long lines',
    '',
    'short line',
    'b'.repeat(2000),
    'c'.repeat(998),
    'd'.repeat(999),
    // a dot right where a break falls, and a long line that starts with a dot (dot-stuffed on the wire)
    `${'e'.repeat(998)}.${'f'.repeat(1200)}`,
    `.${'g'.repeat(1100)}`,
    ...Array.from({ length: padding }, (_, i) => `${i} ${'p'.repeat(70)}`),
    // after 64 KiB (the stream's chunks): a long line that a chunk boundary cuts in the stream case
    'z'.repeat(3000),
    'end',
    '',
  ].join('\r\n');
}

describe('lines over 998 octets', () => {
  it('are broken with CRLF SPACE on delivery of a message held in memory, every other byte kept', async () => {
    const dest = await sink();
    const h = await harness(localDomains({ 'example.test': dest }, { tls: 'off' }));
    await h.queue.start();
    const msg = longLinesMessage();
    const id = await h.submit('alice@sender.test', ['bob@example.test'], msg);
    await h.waitEvent('delivered', (e) => e.queueId === id);
    const got = dest.messages[0]!.data.toString('latin1');
    expect(longestLine(got)).toBe(998);
    expect(got).toBe(expected(msg));
    // the common case: a message without such a line arrives byte for byte
    const plain = 'Subject: plain\r\n\r\n' + 'c'.repeat(998) + '\r\n.dot\r\nend\r\n';
    const id2 = await h.submit('alice@sender.test', ['bob@example.test'], plain);
    await h.waitEvent('delivered', (e) => e.queueId === id2);
    expect(dest.messages[1]!.data.toString('latin1')).toBe(plain);
  });

  it('are broken the same way in a large message streamed from its spool file', async () => {
    const dest = await sink();
    const h = await harness(localDomains({ 'example.test': dest }, { tls: 'off' }));
    await h.queue.start();
    // over 256 KiB: its own .msg file, read as a stream in 64 KiB chunks
    const msg = longLinesMessage(4000);
    expect(msg.length).toBeGreaterThan(256 * 1024);
    const id = await h.submit('alice@sender.test', ['bob@example.test'], msg);
    await h.waitEvent('delivered', (e) => e.queueId === id);
    const got = dest.messages[0]!.data.toString('latin1');
    expect(longestLine(got)).toBe(998);
    expect(got).toBe(expected(msg));
  });

  it('give the same bytes whatever the chunks (a CRLF or a long line cut between two chunks)', () => {
    const msg = Buffer.from(longLinesMessage(20), 'latin1');
    const whole = new LineBreaker().push(msg).toString('latin1');
    expect(whole).toBe(expected(msg.toString('latin1')));
    for (const size of [1, 2, 3, 7, 997, 998, 999, 1000, 4096]) {
      const b = new LineBreaker();
      const out: Buffer[] = [];
      for (let i = 0; i < msg.length; i += size) out.push(b.push(msg.subarray(i, i + size)));
      expect(Buffer.concat(out).toString('latin1'), `chunks of ${size}`).toBe(whole);
    }
    // nothing to break: the very same Buffer back
    const short = Buffer.from('a\r\nb\r\n');
    expect(new LineBreaker().push(short)).toBe(short);
  });

  it('are broken in the original a DSN returns', () => {
    const original = Buffer.from(longLinesMessage(), 'latin1');
    const dsn = buildDsn({
      reportingMta: 'relay.test',
      queueId: 'Q1',
      sender: 'alice@sender.test',
      arrivalDate: Date.UTC(2026, 0, 1),
      now: Date.UTC(2026, 0, 1),
      recipients: [{ rcpt: 'bob@example.test', status: '5.1.1', diagnostic: '550 5.1.1 no such user (in reply to RCPT TO command)', smtp: true, remoteMta: 'mx.example.test' }],
      original,
      complete: true,
    }).toString('latin1');
    expect(longestLine(dsn)).toBeLessThanOrEqual(998);
    expect(dsn).toContain(expected(original.toString('latin1')));
  });

  it('are broken in the DSN the queue sends for a refused recipient', async () => {
    const dest = await sink({ onRcpt: () => ({ code: 550, message: '5.1.1 no such user' }) });
    const senderSink = await sink();
    const h = await harness(localDomains({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();
    const msg = longLinesMessage();
    await h.submit('alice@sender.test', ['bob@example.test'], msg);
    const [dsn] = await senderSink.waitFor(1);
    const text = dsn!.data.toString('latin1');
    expect(longestLine(text)).toBeLessThanOrEqual(998);
    expect(text).toContain(expected(msg));
  });
});

describe('the spool file a delivery streams', () => {
  const rawSmtp = rawSmtpServers();

  it('is closed after the attempt also when no data was sent (every recipient refused)', async () => {
    const server = await rawSmtp({ rcpt: () => '550 5.1.1 no such user' });
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rw-s12-'));
    try {
      const file = path.join(dir, 'm.msg');
      await fsp.writeFile(file, longLinesMessage());
      const streams: fs.ReadStream[] = [];
      const c = new SmtpClient({ idleMs: 0 });
      try {
        const r = await c.deliver(rawAttempt(server, Buffer.alloc(0), { data: () => (streams[streams.push(fs.createReadStream(file)) - 1]!) }));
        expect(r).toMatchObject({ kind: 'done', results: [{ code: 550 }] });
      } finally {
        c.closeAll();
      }
      expect(streams).toHaveLength(1);
      await expect.poll(() => streams[0]!.closed).toBe(true);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('that cannot be opened (ENOENT; EMFILE under load) ends the attempt with an error, not an uncaught exception', async () => {
    // (a review: the line breaker's stream listened on the file only from DATA on; an open that failed before threw
    // in the delivery worker, which died with every delivery under way in it)
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const server = await rawSmtp({});
      const c = new SmtpClient({ idleMs: 0 });
      try {
        const r = await c.deliver(rawAttempt(server, Buffer.alloc(10), { data: () => fs.createReadStream('/nonexistent/rw-s12.msg') }));
        // nothing was delivered: a failure of this attempt, said as such
        expect(JSON.stringify(r)).toMatch(/ENOENT|no such file/i);
        expect(server.stats.messages).toBe(0);
      } finally {
        c.closeAll();
      }
      // (an uncaught exception comes on a later turn)
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });
});
