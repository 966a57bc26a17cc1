/**
 * Reasons as the queue keeps and reports them (relay/queue/reason.ts): one line (whitespace and control characters
 * collapsed, the content kept) and at most REASON_MAX_CHARS characters (the start and the end kept), in lastError
 * (queue.list), the deferred and bounced events and the DSN, whatever the server or the TLS library said.
 */
import { describe, expect, it } from 'vitest';
import { oneLineReason, REASON_MAX_CHARS } from '../relay/queue/reason.ts';
import { deliveryFixtures, localDomains } from './helpers/delivery-fixtures.ts';

const { sink, harness } = deliveryFixtures();

describe('oneLineReason', () => {
  it('makes one line of it: every run of whitespace or control characters is one space, the text is kept', () => {
    expect(oneLineReason('mx.test: error:0A000410:SSL routines::sslv3 alert handshake failure:SSL alert number 40\n (ERR_SSL)')).toBe(
      'mx.test: error:0A000410:SSL routines::sslv3 alert handshake failure:SSL alert number 40 (ERR_SSL)',
    );
    expect(oneLineReason('  451 4.3.0 first\r\n451 4.3.0  second\tline\x00\x1b[0m end \n')).toBe('451 4.3.0 first 451 4.3.0 second line [0m end');
    expect(oneLineReason('naïve café: 550 5.1.1 no such user')).toBe('naïve café: 550 5.1.1 no such user');
  });

  it('keeps a short one whole and bounds a long one, keeping its start and its end and saying how much was left out', () => {
    const exact = 'x'.repeat(REASON_MAX_CHARS);
    expect(oneLineReason(exact)).toBe(exact);
    const long = `first.example: 451 busy; ${'y'.repeat(5000)}; last.example: 421 closing`;
    const r = oneLineReason(long);
    expect(r.length).toBeLessThanOrEqual(REASON_MAX_CHARS);
    expect(r.length).toBeGreaterThan(REASON_MAX_CHARS - 10);
    expect(r.startsWith('first.example: 451 busy; yyy')).toBe(true);
    expect(r.endsWith('yyy; last.example: 421 closing')).toBe(true);
    const cut = /\[\.\.\. (\d+) characters left out \.\.\.\]/.exec(r);
    expect(Number(cut?.[1])).toBe(long.length - (r.length - cut![0].length - 2));
    // never half of a surrogate pair
    expect(oneLineReason('😀'.repeat(2000))).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
  });
});

describe('reasons the queue records and reports', () => {
  it("a TLS failure's OpenSSL text (it ends in a newline) is one line in the deferred event and in lastError, its content kept", async () => {
    const s = await sink({ brokenTls: true });
    const h = await harness(localDomains({ 'example.test': s }, { tls: 'required' }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['bob@example.test']);
    const ev = await h.waitEvent('deferred', (e) => e.queueId === id);
    expect(ev.reason).not.toMatch(/[\r\n]/);
    expect(ev.reason).toMatch(/handshake failure.*SSL alert number 40 \(ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE\) \(delivery\.tls is "required"/);
    expect(h.queue.list()[0]).toMatchObject({ id, lastError: ev.reason });
  });

  it('a very long refusal is bounded in the bounced event, the DSN and the deferred event and lastError of its sibling', async () => {
    // a multi-line reply of about 4,000 characters (nodemailer joins its lines)
    const lines = Array.from({ length: 50 }, (_, i) => `5.1.1 line ${i} ${'z'.repeat(60)}`).join('\n');
    const dest = await sink({
      onRcpt: (rcpt) =>
        rcpt.startsWith('gone@') ? { code: 550, message: `${lines}\nthe end of 550` } : { code: 451, message: `${lines.replace(/5\.1\.1/g, '4.2.0')}\nthe end of 451` },
    });
    const senderSink = await sink();
    const h = await harness(localDomains({ 'example.test': dest, 'sender.test': senderSink }, { tls: 'off' }));
    await h.queue.start();
    const id = await h.submit('alice@sender.test', ['gone@example.test', 'later@example.test']);
    const bounced = await h.waitEvent('bounced', (e) => e.queueId === id);
    const deferred = await h.waitEvent('deferred', (e) => e.queueId === id);
    for (const reason of [bounced.reason, deferred.reason]) {
      expect(reason.length).toBeLessThanOrEqual(REASON_MAX_CHARS);
      expect(reason).not.toMatch(/[\r\n]/);
      expect(reason).toMatch(/characters left out/);
    }
    // (the end kept: the command the server answered, as Postfix says it)
    // (the server named first, as in a deferral)
    expect(bounced.reason).toMatch(/^127\.0\.0\.1:\d+ said: 550 5\.1\.1 line 0 z+ .* the end of 550 \(in reply to RCPT TO command\)$/);
    expect(deferred.reason).toMatch(/said: 451 4\.2\.0 line 0 z+ .* the end of 451 \(in reply to RCPT TO command\)$/);
    expect(h.queue.list()[0]).toMatchObject({ id, lastError: deferred.reason });
    const [dsn] = await senderSink.waitFor(1);
    const diagnostic = /^Diagnostic-Code: .*$/m.exec(dsn!.data.toString('utf8'))![0];
    // the server's reply as it said it: the note of the command is the text part's
    expect(diagnostic).toMatch(/^Diagnostic-Code: smtp; 550 5\.1\.1 line 0 z+ .* the end of 550$/);
    expect(diagnostic.length).toBeLessThan(998);
  });
});
