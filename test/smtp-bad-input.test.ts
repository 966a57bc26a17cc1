/**
 * Abusive and broken clients on raw sockets: malformed commands, pipelined garbage, a 100 KB command line,
 * bare LF in commands, invalid addresses, a client that drops mid-DATA. After each the relay still answers the
 * next client, and the spool holds no orphan temp file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RawSmtp, sendMail, smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';
import { listQueuedIds } from '../relay/queue/files.ts';

let t: TestRelay | null = null;
const { clients, open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

/** The relay still serves a well-behaved client end to end. */
async function stillServes(tr: TestRelay, localAddress = '127.0.0.6'): Promise<void> {
  const r = await sendMail(tr.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress });
  expect(r.data?.code).toBe(250);
}

/** The spool's temp files, and the ids of the messages queued (in .msg files or segments). */
async function spoolFiles(tr: TestRelay): Promise<{ tmp: string[]; queue: string[] }> {
  const dir = path.join(tr.dir, 'spool');
  return { tmp: fs.readdirSync(path.join(dir, 'tmp')), queue: await listQueuedIds(path.join(dir, 'queue')) };
}

/** Every reply until the server closes the connection (bounded). */
async function repliesUntilClose(c: RawSmtp, max = 200): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < max; i++) {
    const r = await c.read(5000);
    if (!r) return codes;
    codes.push(r.code);
  }
  throw new Error(`more than ${max} replies without a close`);
}

describe('bad input', () => {
  it('malformed commands get 5xx replies and the session goes on', async () => {
    t = await startTestRelay({ checks: { maxFailedCommands: { max: 50 } } });
    const c = await open(t.port);
    expect((await c.read())?.code).toBe(220);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(503); // before EHLO
    expect((await c.cmd('EHLO')).code).toBe(501);
    expect((await c.cmd('HELO')).code).toBe(501);
    expect((await c.cmd('EHLO client.test')).code).toBe(250);
    for (const bad of ['MAIL FROM', 'MAIL FROM:', 'MAIL FROM:<', 'MAIL TO:<a@example.org>', 'MAIL FROM:<a@example.org> SIZE=abc', 'MAIL FROM:<a@example.org> BODY=9BIT']) {
      expect((await c.cmd(bad)).code, bad).toBeGreaterThanOrEqual(500);
    }
    expect((await c.cmd('DATA')).code).toBe(503);
    expect((await c.cmd('\u00ff\u00fe garbage \u0001')).code).toBe(500);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(503); // nested
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: after the noise\r\n\r\nok')).code).toBe(250);
    await stillServes(t);
  });

  it('invalid addresses are refused with 501 (or 550/554 for a well-formed unknown or foreign one)', async () => {
    t = await startTestRelay({ checks: { maxFailedCommands: { max: 50 } } });
    const c = await open(t.port);
    await c.hello();
    for (const bad of ['a@@example.org', 'a b@example.org', '<a@example.org', 'a@', '@example.org', 'a@-bad-.example']) {
      const r = await c.cmd(`MAIL FROM:<${bad}>`);
      expect([501, 550, 553], `MAIL FROM:<${bad}> -> ${r.code} ${r.text}`).toContain(r.code);
      if (r.code === 250) await c.cmd('RSET');
    }
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    for (const bad of ['', 'no-at-sign', 'a@', '@example.com', 'a@@example.com', 'a@exa mple.com', 'a@example..com', 'a@[999.1.1.1]']) {
      const r = await c.cmd(`RCPT TO:<${bad}>`);
      expect([501, 550, 553, 554], `RCPT TO:<${bad}> -> ${r.code} ${r.text}`).toContain(r.code);
    }
    expect(await c.cmd('RCPT TO:<no-at-sign>')).toMatchObject({ code: 501 });
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    expect(t.events.filter((e) => e.kind === 'rcpt')).toHaveLength(1);
  });

  it('pipelined garbage: every line answered, then 421 at the failed-command limit and close; the relay lives on', async () => {
    t = await startTestRelay({});
    const c = await open(t.port);
    await c.hello();
    const lines = Array.from({ length: 40 }, () => crypto.randomBytes(30).toString('base64') + '\r\n').join('');
    c.write(lines);
    const codes = await repliesUntilClose(c);
    expect(codes.slice(0, 9).every((x) => x === 500)).toBe(true);
    expect(codes[9]).toBe(421);
    expect(codes).toHaveLength(10);
    expect(t.rejections('checks.maxFailedCommands')).toHaveLength(1);
    await stillServes(t);
  });

  it('a 100 KB command line is refused and the connection closed; the relay lives on', async () => {
    t = await startTestRelay({});
    const c = await open(t.port);
    await c.hello();
    c.write('NOOP ' + 'x'.repeat(100 * 1024) + '\r\n');
    // one reply that says what was wrong and the limit (smtp-server's own was "421 4.4.2 Error: Command line too long")
    const first = await c.read(5000);
    expect(first?.lines).toEqual(['421 4.5.0 Protocol error: a command line longer than 16384 bytes. Closing the connection.']);
    expect(await repliesUntilClose(c)).toEqual([]);
    await waitFor(() => c.closed, 'the connection to close');
    // and a huge line without any line end at all
    const d = await open(t.port, '127.0.0.7');
    await d.hello();
    d.write('x'.repeat(200 * 1024));
    await repliesUntilClose(d);
    await stillServes(t);
  });

  it('bare LF in commands is read as a line end (no smuggling of a second command into one line)', async () => {
    t = await startTestRelay({});
    const c = await open(t.port);
    expect((await c.read())?.code).toBe(220);
    c.write('EHLO lf.test\nMAIL FROM:<a@example.org>\nRCPT TO:<alice@example.com>\n');
    expect((await c.read())?.code).toBe(250);
    expect((await c.read())?.code).toBe(250);
    expect((await c.read())?.code).toBe(250);
    expect((await c.cmd('RSET')).code).toBe(250);
    await stillServes(t);
  });

  it('DATA end-of-message needs CRLF.CRLF: a bare-LF dot does not end the message (smuggling)', async () => {
    t = await startTestRelay({ smtp: { bareLineEndings: 'normalize' } });
    const c = await open(t.port);
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<alice@example.com>');
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write('Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@example.com>\r\n.\r\n');
    expect((await c.read())?.code).toBe(250);
    expect(t.events.filter((e) => e.kind === 'accepted')).toHaveLength(1);
    expect(t.events.filter((e) => e.kind === 'mail')).toHaveLength(1);
  });

  it('a client that drops mid-DATA leaves no orphan in the spool, small or large message', async () => {
    t = await startTestRelay({});
    const tmpDir = path.join(t.dir, 'spool', 'tmp');
    // small: still buffered in memory when the client goes
    const a = await open(t.port);
    await a.hello();
    await a.cmd('MAIL FROM:<a@example.org>');
    await a.cmd('RCPT TO:<alice@example.com>');
    expect((await a.cmd('DATA')).code).toBe(354);
    a.write('Subject: cut short\r\n\r\nsome text\r\n');
    await new Promise((r) => setTimeout(r, 50));
    a.destroy();
    // large: past the flush threshold, so the temp file exists on disk when the client goes
    const b = await open(t.port, '127.0.0.7');
    await b.hello();
    await b.cmd('MAIL FROM:<a@example.org>');
    await b.cmd('RCPT TO:<alice@example.com>');
    expect((await b.cmd('DATA')).code).toBe(354);
    b.write('Subject: big and cut short\r\n\r\n' + ('y'.repeat(998) + '\r\n').repeat(1024));
    await waitFor(() => fs.readdirSync(tmpDir).some((n) => n.endsWith('.tmp') && !n.startsWith('probe')), 'the temp file of the large message');
    b.destroy();
    await waitFor(async () => (await spoolFiles(t!)).tmp.length === 0, 'the temp files to be removed');
    expect((await spoolFiles(t)).queue).toHaveLength(0);
    expect(t.events.filter((e) => e.kind === 'accepted')).toHaveLength(0);
    await waitFor(() => t!.relay.anvil.connections('127.0.0.7') === 0, 'the dropped sessions to be uncounted');
    await stillServes(t);
    expect((await spoolFiles(t)).queue).toHaveLength(1);
  });
});
