/**
 * Graceful stop of the SMTP front (SPEC 1: stop accepting, let open transactions finish, bounded):
 * idle sessions are told 421 and closed at once; a session in the middle of a message may finish it.
 */
import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

/** A session from 127.0.0.6 with MAIL and RCPT accepted: a transaction under way. */
async function inTransaction(port: number) {
  const c = await open(port, '127.0.0.6');
  await c.hello();
  expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
  expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
  return c;
}

describe('stop', () => {
  it('closes idle sessions at once with 421, lets a transaction in progress finish, then resolves', async () => {
    t = await startTestRelay({});
    const idle = await open(t.port, '127.0.0.5');
    await idle.hello();
    const busy = await inTransaction(t.port);

    const tr = t;
    t = null;
    let stopped = false;
    const stopping = tr.relay.stop().then(() => (stopped = true));
    // the idle session is told and closed without waiting for the close timeout
    const r = await idle.read(3000);
    expect(r?.code).toBe(421);
    await waitFor(() => idle.closed, 'the idle session to be closed', 3000);
    // no new connections
    await expect(new Promise((resolve, reject) => {
      const s = net.connect({ port: tr.port, host: '127.0.0.1' });
      s.once('connect', () => (s.destroy(), resolve('connected')));
      s.once('error', reject);
    })).rejects.toThrow(/ECONNREFUSED/);
    // the open transaction finishes
    expect((await busy.data('Subject: last one\r\n\r\nx')).code).toBe(250);
    expect(stopped).toBe(false);
    // its next transaction is refused, in the words the idle session got, and the session closed
    expect(await busy.cmd('MAIL FROM:<a@example.org>')).toMatchObject({ code: 421, text: '4.3.2 The relay is shutting down. Try again later.' });
    await waitFor(() => busy.closed, 'the finished session to be closed', 3000);
    await Promise.race([stopping, new Promise((_, reject) => setTimeout(() => reject(new Error('stop() did not resolve')), 5000))]);
    await tr.dns.close();
    fs.rmSync(tr.dir, { recursive: true, force: true });
  });

  it('a client that finishes its message while the relay stops and then QUITs gets 221, as on any day', async () => {
    t = await startTestRelay({});
    const busy = await inTransaction(t.port);
    const tr = t;
    t = null;
    const stopping = tr.relay.stop();
    expect((await busy.data('Subject: last one\r\n\r\nx')).code).toBe(250);
    expect(await busy.cmd('QUIT')).toMatchObject({ code: 221, text: '2.0.0 Bye' });
    await waitFor(() => busy.closed, 'the session to be closed', 3000);
    await stopping;
    // nothing was refused, and the message it sent was taken
    expect(tr.rejections().map((e) => e.rule)).toEqual([]);
    expect(tr.events.filter((e) => e.kind === 'accepted')).toHaveLength(1);
    await tr.dns.close();
    fs.rmSync(tr.dir, { recursive: true, force: true });
  });

  it('a message still coming in when the grace period ends is cut with a 421 that says it was not accepted, and counted', async () => {
    t = await startTestRelay({}, { relay: { stopGraceMs: 300 } });
    const busy = await inTransaction(t.port);
    expect((await busy.cmd('DATA')).code).toBe(354);
    busy.write('Subject: slow\r\n\r\nthe first line of a long message\r\n');
    const tr = t;
    t = null;
    const stopping = tr.relay.stop();
    // the client sends nothing more: the stop waits its grace period, then cuts the session
    expect(await busy.read(10_000)).toMatchObject({
      code: 421,
      text: '4.3.2 The relay is shutting down and could not wait longer for this message; it was not accepted. Try again later.',
    });
    await stopping;
    expect(tr.relay.front.cutAtStop).toBe(1);
    expect(tr.events.filter((e) => e.kind === 'accepted')).toHaveLength(0);
    await tr.dns.close();
    fs.rmSync(tr.dir, { recursive: true, force: true });
  });
});
