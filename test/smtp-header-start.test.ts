/**
 * The Received: field the relay prepends joins the client's header section; when the client sent none (its data
 * begins with a line of text), an empty line follows the Received: field, so the text is the body of a message with
 * one header field, not a malformed header field (or, for a line that begins with a space, a fold of the Received:
 * field). A tryout found the first line of such a message turned into a broken header field.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HeaderStart, type HeaderStartVerdict } from '../relay/smtp/header-start.ts';
import { readQueuedMessage } from '../relay/queue/files.ts';
import { HOP_LIMIT } from '../relay/smtp/hops.ts';
import { smtpClients, type RawSmtp } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

/** the verdict for a message's data fed in pieces of `size` octets, or the end's verdict */
function verdictOf(data: string, size: number): HeaderStartVerdict {
  const h = new HeaderStart();
  const b = Buffer.from(data, 'latin1');
  for (let i = 0; i < b.length; i += size) {
    const v = h.push(b.subarray(i, i + size));
    if (v) return v;
  }
  return h.end();
}

describe('HeaderStart', () => {
  it('tells a header field or an empty header section from text, in chunks of any size', () => {
    const cases: Array<[string, HeaderStartVerdict]> = [
      ['Subject: hi\r\n\r\nbody\r\n', 'header'],
      ['X-Very-Long-Name-Of-A-Field-1234567890:x\r\n', 'header'],
      ['\r\nbody only after an empty header section\r\n', 'header'],
      ['\nbare LF\n', 'header'],
      ['', 'header'],
      ['Hello world\r\n', 'body'],
      ['Hello:world is the first line\r\n', 'header'], // a field name, then ':': RFC 5322 reads it as a field
      [' folded first line\r\n', 'body'],
      ['\tTAB\r\n', 'body'],
      ['From alice@example.org Sun Nov 29 12:00:00 2026\r\nSubject: x\r\n', 'body'],
      [': no name\r\n', 'body'],
      ['Subject : space before the colon (obsolete syntax: a header)\r\n', 'header'],
      ['Subject\t:tab before the colon\r\n', 'header'],
      ['Two words: is no field name\r\n', 'body'],
      ['Ünïcode: 8-bit name\r\n', 'body'],
      ['onlytext', 'body'],
      [`${'a'.repeat(1200)}: too long for a name\r\n`, 'body'],
    ];
    for (const [data, want] of cases) {
      for (const size of [1, 2, 3, 7, 64, 100_000]) expect([data.slice(0, 30), size, verdictOf(data, size)]).toEqual([data.slice(0, 30), size, want]);
    }
  });
});

/** one message from 127.0.0.5; what the spool holds after the relay's Received: field */
async function storedAfterReceived(c: RawSmtp, tr: TestRelay, data: string): Promise<string> {
  expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
  expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
  const r = await c.data(data);
  expect(r.code).toBe(250);
  const id = /queued as (\S+)/.exec(r.text)![1]!;
  const stored = (await readQueuedMessage(path.join(tr.dir, 'spool', 'queue'), id))!.data.toString('latin1');
  const m = /^Received: from [^\r]*\r\n\tby [^\r]*\r\n\tfor <bob@example\.com>;\r\n\t[^\r]*\r\n/.exec(stored);
  expect(m, stored.slice(0, 300)).not.toBeNull();
  return stored.slice(m![0].length);
}

describe('a message with no header section', () => {
  it('gets an empty line after the Received: field; a message with one keeps its header section whole', async () => {
    t = await startTestRelay({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    expect(await storedAfterReceived(c, t, 'Hello Bob,\r\nthe report is attached.\r\n')).toBe('\r\nHello Bob,\r\nthe report is attached.\r\n');
    expect(await storedAfterReceived(c, t, ' indented first line\r\n')).toBe('\r\n indented first line\r\n');
    expect(await storedAfterReceived(c, t, 'Subject: s\r\n\r\nbody\r\n')).toBe('Subject: s\r\n\r\nbody\r\n');
    expect(await storedAfterReceived(c, t, '\r\nbody after an empty header section\r\n')).toBe('\r\nbody after an empty header section\r\n');
  });

  it('sent in pieces, one octet at a time at first: the same message as sent whole', async () => {
    t = await startTestRelay({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    for (const [data, want] of [['Hello\r\nX: y\r\n', '\r\nHello\r\nX: y\r\n'], ['Subject: s\r\n\r\nb\r\n', 'Subject: s\r\n\r\nb\r\n']] as const) {
      expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<bob@example.com>')).code).toBe(250);
      expect((await c.cmd('DATA')).code).toBe(354);
      for (const ch of data.slice(0, 4)) {
        c.write(ch);
        await new Promise((r) => setTimeout(r, 15));
      }
      c.write(`${data.slice(4)}.\r\n`);
      const r = await c.read();
      expect(r?.code).toBe(250);
      const id = /queued as (\S+)/.exec(r!.text)![1]!;
      const stored = (await readQueuedMessage(path.join(t.dir, 'spool', 'queue'), id))!.data.toString('latin1');
      expect(stored.slice(stored.indexOf('\r\n\t', stored.indexOf('for <')) + 3).replace(/^[^\r]*\r\n/, '')).toBe(want);
    }
  });

  it(`counts no Received: lines of its body toward the hop limit (${HOP_LIMIT})`, async () => {
    t = await startTestRelay({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } } });
    const c = await open(t.port, '127.0.0.5');
    await c.hello();
    const quoted = Array.from({ length: HOP_LIMIT + 5 }, (_, i) => `Received: from hop${i}.example;\r\n`).join('');
    expect(await storedAfterReceived(c, t, `A bounce I got, quoted:\r\n${quoted}`)).toBe(`\r\nA bounce I got, quoted:\r\n${quoted}`);
  });
});
