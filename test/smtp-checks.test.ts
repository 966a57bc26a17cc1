/**
 * Per-session checks: checks.maxRecipients, checks.maxFailedCommands, checks.maxMessageSize,
 * smtp.bareLineEndings, and the greeting delay with its early-talker check. Real sockets on loopback.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { listQueuedIds, readQueuedMessage } from '../relay/queue/files.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { clients, open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

const ANY = { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' as const } };

function accepted(tr: TestRelay): Extract<RelayEvent, { kind: 'accepted' }>[] {
  return tr.events.filter((e): e is Extract<RelayEvent, { kind: 'accepted' }> => e.kind === 'accepted');
}

/** The stored message bytes (the envelope trailer left out) of a queued message. */
async function storedMessage(tr: TestRelay, queueId: string): Promise<Buffer> {
  const stored = await readQueuedMessage(path.join(tr.dir, 'spool', 'queue'), queueId);
  if (!stored) throw new Error(`${queueId} is not in the spool`);
  return stored.data;
}

describe('checks.maxRecipients', () => {
  it('a client that pipelines more recipients than the limit: 452 for the rest, not 421 at the tenth, and the message goes to the first ones', async () => {
    // Regression (the protocol tryout of session 9): every 452 over checks.maxRecipients counted as a failed command,
    // so 120 pipelined recipients met the default 10-failure limit at the 110th: 421, the transaction lost, and the
    // client's retry met the same wall. RFC 5321 4.5.3.1.10: the 452s tell it to send the rest in another message.
    t = await startTestRelay({ domains: ANY, checks: { maxRecipients: { max: 100 }, maxFailedCommands: { max: 10 } } });
    const c = await open(t.port);
    await c.hello();
    const rcpts = Array.from({ length: 120 }, (_, i) => `RCPT TO:<u${i}@example.com>\r\n`).join('');
    c.write(`MAIL FROM:<a@example.org>\r\n${rcpts}DATA\r\n`);
    const replies = [];
    for (let i = 0; i < 122; i++) replies.push((await c.read())!.code);
    expect(replies[0]).toBe(250);
    expect(replies.slice(1, 101).every((x) => x === 250)).toBe(true);
    expect(replies.slice(101, 121)).toEqual(Array(20).fill(452));
    expect(replies[121]).toBe(354);
    c.write('Subject: many\r\n\r\nx\r\n.\r\n');
    expect((await c.read())!.code).toBe(250);
    expect(accepted(t)[0]!.to).toHaveLength(100);
    // they are still refusals of their own rule; failed commands of other kinds still count as before
    expect(t.rejections('checks.maxRecipients')).toHaveLength(20);
    expect(t.rejections('checks.maxFailedCommands')).toEqual([]);
    for (let i = 0; i < 9; i++) expect((await c.cmd('RCPT TO:<x@example.com>')).code).toBe(503);
    expect((await c.cmd('RCPT TO:<x@example.com>')).code).toBe(421);
  });

  it('past 1,000 such 452s in a session, each one counts as a failed command again (a client that never stops)', async () => {
    t = await startTestRelay({ domains: ANY, checks: { maxRecipients: { max: 1 }, maxFailedCommands: { max: 10 } } });
    const c = await open(t.port);
    await c.hello();
    const rcpts = Array.from({ length: 1011 }, (_, i) => `RCPT TO:<u${i}@example.com>\r\n`).join('');
    c.write(`MAIL FROM:<a@example.org>\r\n${rcpts}`);
    const codes: number[] = [];
    for (let r = await c.read(); r; r = await c.read()) codes.push(r.code);
    // MAIL, one 250, 1,000 free 452s, then nine that count and the tenth failure closes the session
    expect(codes.length).toBe(1 + 1 + 1000 + 10);
    expect(codes.slice(2, 1011).every((x) => x === 452)).toBe(true);
    expect(codes[codes.length - 1]).toBe(421);
    expect(t.rejections('checks.maxFailedCommands')).toHaveLength(1);
  });

  it('refuses the RCPT over the limit with 452 4.5.3; earlier ones stand and the message goes to them', async () => {
    t = await startTestRelay({ domains: ANY, checks: { maxRecipients: { max: 2 } } });
    const c = await open(t.port);
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<r1@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<r2@example.com>')).code).toBe(250);
    expect(await c.cmd('RCPT TO:<r3@example.com>')).toMatchObject({
      code: 452,
      text: '4.5.3 Too many recipients: this message already has 2 (limit 2). Send the rest in another message.',
    });
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    expect(accepted(t)).toMatchObject([{ to: ['r1@example.com', 'r2@example.com'] }]);
    expect(t.rejections('checks.maxRecipients')).toMatchObject([{ stage: 'rcpt', code: 452, enforced: true }]);
    // the next message starts counting again
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<r3@example.com>')).code).toBe(250);
  });

  it('monitor accepts the extra recipient and reports it; off does nothing', async () => {
    t = await startTestRelay({ domains: ANY, checks: { maxRecipients: { max: 1, mode: 'monitor' } } });
    const c = await open(t.port);
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    for (const r of ['r1', 'r2', 'r3']) expect((await c.cmd(`RCPT TO:<${r}@example.com>`)).code).toBe(250);
    expect((await c.data('Subject: x\r\n\r\nx')).code).toBe(250);
    expect(accepted(t)[0]?.to).toHaveLength(3);
    expect(t.rejections('checks.maxRecipients').map((e) => e.enforced)).toEqual([false, false]);
    t.relay.config.modify((d) => void (d.checks.maxRecipients.mode = 'off'), { by: 'test', source: 'test' });
    await c.cmd('MAIL FROM:<a@example.org>');
    for (const r of ['r1', 'r2', 'r3']) expect((await c.cmd(`RCPT TO:<${r}@example.com>`)).code).toBe(250);
    expect(t.rejections('checks.maxRecipients')).toHaveLength(2);
  });
});

describe('exempt groups', () => {
  it('skip the per-IP limits only: an exempt client still meets the per-message checks (SPEC 1)', async () => {
    t = await startTestRelay({
      domains: ANY,
      groups: { Trusted: [{ address: '127.0.0.9' }] },
      checks: { maxRecipients: { max: 1 }, maxMessageSize: { maxBytes: 100 } },
    });
    const c = await open(t.port, '127.0.0.9');
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    expect((await c.cmd('RCPT TO:<r1@example.com>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<r2@example.com>')).code).toBe(452);
    expect((await c.data('Subject: big\r\n\r\n' + 'x'.repeat(200))).code).toBe(552);
  });
});

describe('checks.maxFailedCommands', () => {
  it("counts smtp-server's own 503 and 501 and our replies; at the limit 421 4.7.0 and close", async () => {
    t = await startTestRelay({ checks: { maxFailedCommands: { max: 4 } } });
    const c = await open(t.port);
    await c.hello();
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(503); // smtp-server: need MAIL
    expect((await c.cmd('MAIL FROM:<<<')).code).toBe(501); // smtp-server: bad syntax
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<nobody@example.com>')).code).toBe(550); // ours: unknown recipient
    expect(await c.cmd('XYZZY')).toMatchObject({
      code: 421,
      text: '4.7.0 Too many failed commands in this session: 4 (limit 4). Closing the connection; check the client\'s commands before reconnecting.',
    });
    await waitFor(() => c.closed, 'the session to be closed');
    expect(t.rejections('checks.maxFailedCommands')).toMatchObject([{ stage: 'command', code: 421, enforced: true }]);
    // the relay still answers
    const d = await open(t.port);
    expect((await d.hello()).code).toBe(250);
  });

  it("a limit above 10 lets more than 10 unknown commands through (smtp-server's own limit is neutralised)", async () => {
    t = await startTestRelay({ checks: { maxFailedCommands: { max: 15 } } });
    const c = await open(t.port);
    await c.hello();
    for (let i = 1; i < 15; i++) expect((await c.cmd(`BOGUS${i}`)).code).toBe(500);
    expect((await c.cmd('BOGUS15')).code).toBe(421);
    await waitFor(() => c.closed, 'the session to be closed');
  });

  it('monitor reports reaching the limit once and keeps the session; off does nothing', async () => {
    t = await startTestRelay({ checks: { maxFailedCommands: { max: 2, mode: 'monitor' } } });
    const c = await open(t.port);
    await c.hello();
    for (let i = 0; i < 12; i++) expect((await c.cmd(`BOGUS${i}`)).code).toBe(500);
    expect((await c.cmd('NOOP')).code).toBe(250);
    expect(t.rejections('checks.maxFailedCommands')).toMatchObject([{ enforced: false, code: 421 }]);
    t.relay.config.modify((d) => void (d.checks.maxFailedCommands.mode = 'off'), { by: 'test', source: 'test' });
    const d = await open(t.port, '127.0.0.6');
    await d.hello();
    for (let i = 0; i < 12; i++) expect((await d.cmd(`BOGUS${i}`)).code).toBe(500);
    expect((await d.cmd('NOOP')).code).toBe(250);
    expect(t.rejections('checks.maxFailedCommands')).toHaveLength(1);
  });
});

describe('checks.maxMessageSize', () => {
  const big = 'Subject: big\r\n\r\n' + ('x'.repeat(98) + '\r\n').repeat(20); // ~2 KB

  it('EHLO advertises SIZE; a larger MAIL SIZE= is refused at once; a larger body gets 552 after DATA and the session goes on', async () => {
    t = await startTestRelay({ checks: { maxMessageSize: { maxBytes: 1000 } } });
    const c = await open(t.port);
    const ehlo = await c.hello();
    expect(ehlo.lines.map((l) => l.slice(4))).toContain('SIZE 1000');
    expect(await c.cmd('MAIL FROM:<a@example.org> SIZE=1001')).toMatchObject({
      code: 552,
      text: '5.3.4 Message too big: declared SIZE=1001 bytes, the limit is 1000 bytes. Send a smaller message.',
    });
    expect((await c.cmd('MAIL FROM:<a@example.org> SIZE=1000')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect(await c.data(big)).toMatchObject({
      code: 552,
      text: '5.3.4 Message too big: more than 1000 bytes (the limit). Send a smaller message.',
    });
    expect(accepted(t)).toHaveLength(0);
    // the session continues
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: small\r\n\r\nsmall')).code).toBe(250);
    expect(t.rejections('checks.maxMessageSize').map((e) => [e.stage, e.code, e.enforced])).toEqual([
      ['mail', 552, true], ['data', 552, true],
    ]);
    // nothing of the refused message stays in the spool
    await waitFor(() => fs.readdirSync(path.join(t!.dir, 'spool', 'tmp')).length === 0, 'an empty spool tmp dir');
    expect(await listQueuedIds(path.join(t.dir, 'spool', 'queue'))).toHaveLength(1);
  });

  it('monitor accepts a larger message and reports it; off does nothing', async () => {
    t = await startTestRelay({ checks: { maxMessageSize: { maxBytes: 1000, mode: 'monitor' } } });
    const c = await open(t.port);
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@example.org> SIZE=5000')).code).toBe(250);
    await c.cmd('RCPT TO:<alice@example.com>');
    expect((await c.data(big)).code).toBe(250);
    expect(accepted(t)).toHaveLength(1);
    expect(accepted(t)[0]!.size).toBeGreaterThan(1000);
    expect(t.rejections('checks.maxMessageSize').map((e) => [e.stage, e.enforced])).toEqual([['mail', false], ['data', false]]);
    t.relay.config.modify((d) => void (d.checks.maxMessageSize.mode = 'off'), { by: 'test', source: 'test' });
    expect((await c.cmd('MAIL FROM:<a@example.org> SIZE=5000')).code).toBe(250);
    await c.cmd('RCPT TO:<alice@example.com>');
    expect((await c.data(big)).code).toBe(250);
    expect(t.rejections('checks.maxMessageSize')).toHaveLength(2);
  });
});

describe('smtp.bareLineEndings', () => {
  const bare = 'Subject: bare\n\nline one\nline two\rline three\r\n';

  it('normalize stores the message with CRLF line endings only', async () => {
    t = await startTestRelay({});
    const c = await open(t.port);
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<alice@example.com>');
    expect((await c.data(bare)).code).toBe(250);
    const [acc] = accepted(t);
    const raw = (await storedMessage(t, acc!.queueId)).toString('latin1');
    expect(raw).toContain('Subject: bare\r\n\r\nline one\r\nline two\r\nline three\r\n');
    expect(raw.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(raw.startsWith('Received: from client.test (host5.test [127.0.0.5])\r\n')).toBe(true);
  });

  it('reject refuses the message with 550 5.5.2 and stores nothing; a clean message still passes', async () => {
    t = await startTestRelay({ smtp: { bareLineEndings: 'reject' } });
    const c = await open(t.port);
    await c.hello();
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<alice@example.com>');
    expect(await c.data(bare)).toMatchObject({
      code: 550,
      text: '5.5.2 Message refused: it contains a bare CR or LF. Every line must end with CRLF (RFC 5321 section 2.3.8).',
    });
    expect(t.rejections('smtp.bareLineEndings')).toMatchObject([{ stage: 'data', code: 550, enforced: true }]);
    expect(accepted(t)).toHaveLength(0);
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<alice@example.com>');
    expect((await c.data('Subject: clean\r\n\r\nclean\r\n')).code).toBe(250);
    await waitFor(() => fs.readdirSync(path.join(t!.dir, 'spool', 'tmp')).length === 0, 'an empty spool tmp dir');
    // stored: the clean message only
    expect(await listQueuedIds(path.join(t.dir, 'spool', 'queue'))).toEqual(accepted(t).map((a) => a.queueId));
    expect(accepted(t)).toHaveLength(1);
  });
});

describe('smtp.greetingDelayMs and early talkers', () => {
  it('an early talker gets 554 5.5.0 and is closed; a patient client gets the greeting after the delay', async () => {
    t = await startTestRelay({ smtp: { greetingDelayMs: 300 } });
    const early = await open(t.port);
    early.write('EHLO hasty.test\r\n');
    expect(await early.read()).toMatchObject({
      code: 554,
      text: '5.5.0 Protocol error: 127.0.0.5 sent a command before the greeting. Wait for the 220 greeting.',
    });
    await waitFor(() => early.closed, 'the early talker to be closed');
    expect(t.rejections('smtp.greetingDelayMs')).toMatchObject([{ ip: '127.0.0.5', stage: 'connect', code: 554, enforced: true }]);
    const started = Date.now();
    const patient = await open(t.port, '127.0.0.6');
    expect((await patient.read())?.code).toBe(220);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect((await patient.cmd('EHLO patient.test')).code).toBe(250);
  });

  it('exempt clients get no delay', async () => {
    t = await startTestRelay({ smtp: { greetingDelayMs: 2000 }, groups: { Trusted: [{ address: '127.0.0.9' }] } });
    const started = Date.now();
    const c = await open(t.port, '127.0.0.9');
    expect((await c.read())?.code).toBe(220);
    expect(Date.now() - started).toBeLessThan(1000);
    // an exempt client that talks at once (its EHLO sent before the greeting is read) is not an early talker
    const d = await open(t.port, '127.0.0.9');
    d.write('EHLO fast.test\r\n');
    expect((await d.read())?.code).toBe(220);
    expect((await d.read())?.code).toBe(250);
    expect(t.rejections('smtp.greetingDelayMs')).toEqual([]);
  });
});
