/**
 * Mail loop detection (RFC 5321 6.3; Postfix's hopcount_limit, 50): a message whose header section holds 50 Received:
 * fields or more is refused at the end of DATA with 554 5.4.6, not queued. A tryout pointed a local domain's deliverTo
 * at the relay itself: one message went round 100 times in ten seconds, stopped only by the per-IP hourly limit, and
 * would have gone again every hour. The counter reads only the header section, line by line across any chunk
 * boundary.
 */
import { describe, expect, it } from 'vitest';
import { HOP_LIMIT, HopCounter } from '../relay/smtp/hops.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

const received = (n: number) => Array.from({ length: n }, (_, i) => `Received: from hop${i}.example by hop${i + 1}.example;\r\n\tSun, 29 Nov 2026 19:00:00 +0000\r\n`).join('');

/** The message in pieces of `size` octets (1: every octet alone), counted. */
function countIn(message: string, size: number): number {
  const h = new HopCounter();
  const b = Buffer.from(message, 'latin1');
  for (let i = 0; i < b.length; i += size) h.push(b.subarray(i, i + size));
  return h.count;
}

describe('HopCounter', () => {
  it('counts the Received: fields of the header section (any case), in chunks of any size, and nothing after it', () => {
    const msg = `${received(3)}RECEIVED: x\r\nX-Received: not one\r\nSubject: s\r\n received: a continuation, not one\r\nreceived:\r\n\r\nReceived: in the body\r\n`;
    for (const size of [1, 2, 3, 5, 8, 9, 10, 17, 64, 100_000]) expect(countIn(msg, size)).toBe(5);
    // bare LF line ends too; a message that is only a header section
    expect(countIn(received(2).replace(/\r\n/g, '\n') + '\nReceived: body\n', 4)).toBe(2);
    expect(countIn(received(7), 6)).toBe(7);
    expect(countIn('', 1)).toBe(0);
    // a short line, then a Received in one look
    expect(countIn('A:1\r\nReceived: x\r\n\r\n', 100)).toBe(1);
  });
});

describe('a message in a mail loop', () => {
  it(`is refused with 554 5.4.6 at ${HOP_LIMIT} Received: fields; one fewer is accepted`, async () => {
    t = await startTestRelay({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    for (const [n, code] of [[HOP_LIMIT - 1, 250], [HOP_LIMIT, 554], [HOP_LIMIT + 30, 554]] as const) {
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
      const r = await c.data(`${received(n)}Subject: lap\r\n\r\nbody\r\n`);
      expect(r.code).toBe(code);
      if (code === 554) expect(r.text).toBe(`5.4.6 Too many hops: this message has passed ${n} mail servers (the limit is ${HOP_LIMIT}); it is probably in a mail loop. Check where its domain's mail is sent.`);
    }
    expect(t.events.filter((e) => e.kind === 'accepted')).toHaveLength(1);
    expect(t.rejections('protocol').map((e) => [e.stage, e.code])).toEqual([['data', 554], ['data', 554]]);
    // the session goes on
    expect((await c.cmd('NOOP')).code).toBe(250);
  });
});
