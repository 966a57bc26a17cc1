/**
 * Delivery to real downstream servers on loopback (smtp-server sinks): local domains to their deliverTo, the bytes
 * unchanged, TLS opportunistic / required / off against a self-signed sink and a sink whose handshake breaks, a
 * smarthost with AUTH, partial recipient acceptance, 550 -> a DSN delivered to the sender's own server, null senders
 * never bounced, and the queue API.
 */
import { describe, expect, it } from 'vitest';
import { message } from './helpers/queue-harness.ts';
import type { Sink } from './helpers/sink.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';
import type { ConfigInput } from '../shared/config.ts';

const { sink, harness } = deliveryFixtures();
const local = localDomains;

describe('delivery to a local domain', () => {
  it('delivers the exact bytes with the envelope, emits delivered, removes the message from the spool', async () => {
    const s = await sink();
    const h = await harness(local({ 'example.test': s }, { tls: 'off' }));
    await h.queue.start();
    // a line starting with a dot, 8-bit text and a line of 998 octets (the longest RFC 5321 allows) all pass unchanged
    // (a longer one is broken: delivery-s12-long-lines.test.ts)
    const body = Buffer.from(`Subject: bytes\r\n\r\n.leading dot\r\n..two dots\r\nnaïve café\r\n${'x'.repeat(998)}\r\n`);
    const id = await h.submit('alice@sender.test', ['bob@example.test', 'carol@example.test'], body);
    const [m] = await s.waitFor(1);
    expect(m!.from).toBe('alice@sender.test');
    expect(m!.to).toEqual(['bob@example.test', 'carol@example.test']);
    expect(m!.data.equals(body)).toBe(true);
    expect(m!.helo).toBe('relay.test');
    const ev = await h.waitEvent('delivered');
    expect(ev).toMatchObject({ queueId: id, to: ['bob@example.test', 'carol@example.test'], tls: false, sessionId: 'sess-1', ip: '192.0.2.7' });
    expect(ev.host).toContain(`127.0.0.1:${s.port}`);
    expect(ev.response).toMatch(/^250 /);
    await expect.poll(() => h.queue.size).toBe(0);
  });

  it('opportunistic TLS: STARTTLS to a self-signed sink, event says protocol and cipher', async () => {
    const s = await sink({ tls: true });
    const h = await harness(local({ 'example.test': s })); // tls: opportunistic is the default
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@example.test']);
    const [m] = await s.waitFor(1);
    expect(m!.secure).toBe(true);
    const ev = await h.waitEvent('delivered');
    expect(ev.tls).toBe(true);
    expect(ev.tlsProtocol).toMatch(/^TLSv1\.[23]$/);
    expect(ev.tlsProtocol).toBe(m!.tlsProtocol);
    // the cipher the sink says it negotiated (an OpenSSL name such as TLS_AES_256_GCM_SHA384)
    expect(m!.tlsCipher).toMatch(/^[A-Z0-9_-]+$/);
    expect(ev.tlsCipher).toBe(m!.tlsCipher);
  });

  it('opportunistic TLS: a sink without STARTTLS gets the message in plain text', async () => {
    const s = await sink();
    const h = await harness(local({ 'example.test': s }));
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@example.test']);
    const [m] = await s.waitFor(1);
    expect(m!.secure).toBe(false);
    expect((await h.waitEvent('delivered')).tls).toBe(false);
  });

  it('opportunistic TLS: a broken handshake is retried once in plain text to the same host', async () => {
    const s = await sink({ brokenTls: true });
    const h = await harness(local({ 'example.test': s }));
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@example.test']);
    const [m] = await s.waitFor(1);
    expect(m!.secure).toBe(false);
    expect(s.brokenHandshakes).toBe(1);
    expect(s.connections).toBe(2);
    expect((await h.waitEvent('delivered')).tls).toBe(false);
    expect(h.events.filter((e) => e.kind === 'deferred')).toEqual([]);
  });

  it('required TLS: a broken handshake defers and never sends in plain text', async () => {
    const s = await sink({ brokenTls: true });
    const h = await harness(local({ 'example.test': s }, { tls: 'required' }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    const ev = await h.waitEvent('deferred');
    expect(ev.queueId).toBe(id);
    expect(ev.reason).toMatch(/required/);
    expect(ev.nextAttemptAt).toBeGreaterThan(Date.now() + 30_000);
    expect(s.messages).toEqual([]);
    expect(s.brokenHandshakes).toBe(1);
    expect(s.connections).toBe(1);
    expect(h.queue.list()[0]).toMatchObject({ id, status: 'deferred', attempts: 1, to: ['bob@example.test'] });
  });

  it('required TLS: a server without STARTTLS defers; with STARTTLS it delivers over TLS', async () => {
    const plain = await sink();
    const tls = await sink({ tls: true });
    const h = await harness({ ...local({ 'plain.test': plain, 'tls.test': tls }, { tls: 'required' }) });
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@plain.test', 'bob@tls.test']);
    const deferred = await h.waitEvent('deferred');
    expect(deferred.to).toEqual(['bob@plain.test']);
    expect(deferred.reason).toMatch(/STARTTLS/);
    const [m] = await tls.waitFor(1);
    expect(m!.secure).toBe(true);
    expect(m!.to).toEqual(['bob@tls.test']);
    expect(plain.messages).toEqual([]);
    // the delivered recipient is not tried again
    expect(h.queue.list()[0]).toMatchObject({ to: ['bob@plain.test'], done: [{ to: 'bob@tls.test', status: 'delivered' }] });
  });

  it('tls off: STARTTLS is not used even when offered', async () => {
    const s = await sink({ tls: true });
    const h = await harness(local({ 'example.test': s }, { tls: 'off' }));
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@example.test']);
    const [m] = await s.waitFor(1);
    expect(m!.secure).toBe(false);
  });

  it('smarthost with AUTH carries relayed mail; TLS upgrade before AUTH', async () => {
    const s = await sink({ tls: true, auth: { user: 'relayuser', pass: 's3cret' } });
    const h = await harness({
      smtp: { hostname: 'relay.test' },
      delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: s.port, user: 'relayuser', password: 's3cret' } },
    });
    await h.queue.start();
    await h.submit('alice@sender.test', ['someone@elsewhere.test']);
    const [m] = await s.waitFor(1);
    expect(m).toMatchObject({ user: 'relayuser', secure: true, to: ['someone@elsewhere.test'] });
  });

  it('smarthost with a wrong password defers (a config problem, not the sender\'s)', async () => {
    const s = await sink({ auth: { user: 'relayuser', pass: 's3cret' } });
    const h = await harness({
      delivery: { mode: 'smarthost', tls: 'off', smarthost: { host: '127.0.0.1', port: s.port, user: 'relayuser', password: 'wrong' } },
    });
    await h.queue.start();
    await h.submit('alice@sender.test', ['someone@elsewhere.test']);
    const ev = await h.waitEvent('deferred');
    expect(ev.reason).toMatch(/authentication failed.*535/);
    expect(h.events.some((e) => e.kind === 'bounced')).toBe(false);
  });
});

describe('connection reuse', () => {
  it('the next message to the same server reuses the idle connection (RSET); one the server dropped is replaced without a deferral', async () => {
    const s = await sink({ tls: true });
    const h = await harness(local({ 'example.test': s }));
    await h.queue.start();
    for (let i = 1; i <= 5; i++) {
      await h.submit('alice@sender.test', [`r${i}@example.test`]);
      await s.waitFor(i);
    }
    expect(s.connections).toBe(1);
    expect(s.messages.every((m) => m.secure)).toBe(true);
    s.dropConnections();
    await new Promise((r) => setTimeout(r, 50));
    await h.submit('alice@sender.test', ['r6@example.test']);
    await s.waitFor(6);
    expect(s.connections).toBe(2);
    expect(h.events.filter((e) => e.kind === 'delivered').every((e) => e.kind === 'delivered' && e.tls)).toBe(true);
    expect(h.events.some((e) => e.kind === 'deferred')).toBe(false);
  });

  it('with connectionCacheMs 0 every delivery has its own connection', async () => {
    const s = await sink();
    const h = await harness(local({ 'example.test': s }, { tls: 'off' }), { connectionCacheMs: 0 });
    await h.queue.start();
    for (let i = 1; i <= 3; i++) {
      await h.submit('alice@sender.test', [`r${i}@example.test`]);
      await s.waitFor(i);
    }
    expect(s.connections).toBe(3);
  });
});

describe('refusals, partial acceptance and bounces', () => {
  it('550 for one recipient: the others are delivered, a DSN (multipart/report) goes to the sender\'s server', async () => {
    const dest = await sink({ onRcpt: (rcpt) => (rcpt.startsWith('nobody@') ? { code: 550, message: '5.1.1 <nobody@example.test>: no such user' } : undefined) });
    const senderSink = await sink();
    const h = await harness(local({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();
    const original = message('quarterly report', 'numbers');
    const id = await h.submit('alice@sender.test', ['bob@example.test', 'nobody@example.test', 'carol@example.test'], original);
    const [m] = await dest.waitFor(1);
    expect(m!.to).toEqual(['bob@example.test', 'carol@example.test']);
    const bounced = await h.waitEvent('bounced');
    expect(bounced).toMatchObject({ queueId: id, to: ['nobody@example.test'] });
    expect(bounced.reason).toMatch(/^127\.0\.0\.1:\d+ said: 550 .*no such user/);
    const [dsn] = await senderSink.waitFor(1);
    expect(dsn!.from).toBe(''); // a DSN has a null sender
    expect(dsn!.to).toEqual(['alice@sender.test']);
    const text = dsn!.data.toString('utf8');
    expect(text).toMatch(/Content-Type: multipart\/report; report-type=delivery-status;/);
    expect(text).toMatch(/Content-Type: message\/delivery-status/);
    expect(text).toMatch(/Final-Recipient: rfc822; nobody@example\.test\r\nAction: failed/);
    // the client gave no ORCPT (the relay offers no DSN extension): no Original-Recipient (RFC 3464 2.3.1)
    expect(text).not.toMatch(/Original-Recipient/i);
    expect(text).toMatch(/Status: 5\.1\.1/);
    expect(text).toMatch(/Diagnostic-Code: smtp; 550 5\.1\.1/);
    expect(text).toMatch(/Reporting-MTA: dns; relay\.test/);
    expect(text).toContain('Subject: quarterly report'); // the original comes back
    expect(text).not.toMatch(/Final-Recipient: rfc822; bob@/);
    // everything done: the original and the DSN left the queue
    await expect.poll(() => h.queue.size).toBe(0);
  });

  it('550 at the end of DATA bounces every recipient of that transaction', async () => {
    const dest = await sink({ onData: () => ({ code: 554, message: '5.7.1 message content rejected' }) });
    const senderSink = await sink();
    const h = await harness(local({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@example.test', 'carol@example.test']);
    const bounced = await h.waitEvent('bounced');
    expect(bounced.to).toEqual(['bob@example.test', 'carol@example.test']);
    const [dsn] = await senderSink.waitFor(1);
    expect(dsn!.data.toString()).toMatch(/Status: 5\.7\.1/);
  });

  it('a message from the null sender that bounces produces no DSN (never a bounce of a bounce)', async () => {
    const dest = await sink({ onRcpt: () => ({ code: 550, message: '5.1.1 no such user' }) });
    const senderSink = await sink();
    const h = await harness(local({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();
    await h.submit('', ['nobody@example.test']);
    await h.waitEvent('bounced');
    await expect.poll(() => h.queue.size).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(senderSink.messages).toEqual([]);
    expect(senderSink.connections).toBe(0);
  });

  it('a DSN that itself cannot be delivered is dropped, not bounced again', async () => {
    const dest = await sink({ onRcpt: () => ({ code: 550, message: '5.1.1 no such user' }) });
    const senderSink = await sink({ onRcpt: () => ({ code: 550, message: '5.1.1 sender mailbox gone' }) });
    const h = await harness(local({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();
    await h.submit('alice@sender.test', ['nobody@example.test']);
    await h.waitEvent('bounced', (e) => e.to[0] === 'alice@sender.test');
    await expect.poll(() => h.queue.size).toBe(0);
    expect(h.events.filter((e) => e.kind === 'bounced')).toHaveLength(2);
  });

  it('a 4xx for one recipient defers only that recipient', async () => {
    const dest = await sink({ onRcpt: (rcpt) => (rcpt.startsWith('busy@') ? { code: 452, message: '4.2.2 mailbox full' } : undefined) });
    const h = await harness(local({ 'example.test': dest }, { tls: 'off' }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test', 'busy@example.test']);
    const ev = await h.waitEvent('deferred');
    expect(ev).toMatchObject({ queueId: id, to: ['busy@example.test'] });
    expect(ev.reason).toMatch(/452 4\.2\.2 mailbox full/);
    expect(dest.messages[0]!.to).toEqual(['bob@example.test']);
    expect(h.queue.list()).toMatchObject([{ id, to: ['busy@example.test'], done: [{ to: 'bob@example.test', status: 'delivered' }] }]);
  });

  it('a refused connection defers with the reason', async () => {
    const dead = await sink();
    await dead.close(); // nothing listens on that port any more
    const h = await harness(local({ 'example.test': dead }, { tls: 'off' }));
    await h.queue.start();
    await h.submit('alice@sender.test', ['bob@example.test']);
    const ev = await h.waitEvent('deferred');
    expect(ev.reason).toMatch(/ECONNREFUSED|refused/i);
  });
});

describe('queue API', () => {
  it('retry(id) delivers a deferred message now; delete(id) removes without a bounce; bounce(id) returns it', async () => {
    let open = false;
    const dest = await sink({ onRcpt: () => (open ? undefined : { code: 451, message: '4.3.0 try later' }) });
    const senderSink = await sink();
    const h = await harness(local({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();
    const a = await h.submit('alice@sender.test', ['a@example.test']);
    const b = await h.submit('alice@sender.test', ['b@example.test']);
    const c = await h.submit('alice@sender.test', ['c@example.test']);
    await expect.poll(() => h.events.filter((e) => e.kind === 'deferred').length).toBe(3);
    expect(h.queue.list().map((i) => i.status)).toEqual(['deferred', 'deferred', 'deferred']);

    expect(await h.queue.delete(b)).toEqual({ result: 'removed' });
    expect(await h.queue.delete(b)).toEqual({ result: 'not-found' });
    expect(await h.queue.bounce(c)).toEqual({ result: 'removed', returned: true });
    const bounced = await h.waitEvent('bounced');
    expect(bounced).toMatchObject({ queueId: c, to: ['c@example.test'] });
    expect(bounced.reason).toMatch(/administrator.*451 4\.3\.0 try later/);
    const [dsn] = await senderSink.waitFor(1);
    expect(dsn!.data.toString()).toMatch(/Final-Recipient: rfc822; c@example\.test/);

    open = true;
    expect(h.queue.retry(a)).toBe(true);
    expect(h.queue.retry('NOSUCHID')).toBe(false);
    const [m] = await dest.waitFor(1);
    expect(m!.to).toEqual(['a@example.test']);
    await expect.poll(() => h.queue.size).toBe(0);
    expect(dest.messages.map((x) => x.to[0])).toEqual(['a@example.test']);
  });
});
