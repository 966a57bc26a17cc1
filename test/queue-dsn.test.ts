/**
 * The DSN builder (relay/queue/dsn.ts) on its own: the per-recipient fields RFC 3464 asks for, and none that would
 * claim what the client never said.
 */
import { describe, expect, it } from 'vitest';
import { buildDsn, foldLine } from '../relay/queue/dsn.ts';
import { oneLineReason } from '../relay/queue/reason.ts';

const input = {
  reportingMta: 'relay.test',
  queueId: '0ABCDEF0000000001',
  sender: 'alice@sender.test',
  arrivalDate: Date.UTC(2026, 0, 1, 9, 0, 0),
  now: Date.UTC(2026, 0, 1, 10, 0, 0),
  recipients: [
    { rcpt: 'bob@example.test', status: '5.1.1', diagnostic: '550 5.1.1 <bob@example.test>: no such user', smtp: true, remoteMta: 'mx.example.test' },
    { rcpt: 'carol@example.test', status: '5.0.0', diagnostic: 'returned to the sender by the administrator', smtp: false, remoteMta: null },
  ],
  original: Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
  complete: true,
};

/** The message/delivery-status part's per-recipient blocks. */
function recipientBlocks(dsn: Buffer): string[] {
  const text = dsn.toString('utf8');
  const part = text.slice(text.indexOf('Content-Type: message/delivery-status'));
  return part
    .slice(0, part.indexOf('\r\n--'))
    .split('\r\n\r\n')
    .filter((b) => b.startsWith('Final-Recipient:'))
    .map((b) => b.trimEnd());
}

describe('buildDsn', () => {
  it('writes no Original-Recipient when the client gave no ORCPT (RFC 3464 2.3.1): only Final-Recipient, Action, Status, ...', () => {
    const blocks = recipientBlocks(buildDsn(input));
    expect(blocks).toEqual([
      'Final-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.test>: no such user',
      'Final-Recipient: rfc822; carol@example.test\r\nAction: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: x-unix; returned to the sender by the administrator',
    ]);
    expect(buildDsn(input).toString('utf8')).not.toMatch(/Original-Recipient/i);
  });

  it('keeps every line it writes within 998 octets (RFC 5322): a long address or host and a non-ASCII reply', () => {
    const rcpt = `${'r'.repeat(300)}@${'d'.repeat(200)}.test`;
    const host = `${'mx-'.repeat(80)}example.test`;
    // a reply as the queue keeps it (reason.ts: at most 900 characters), in UTF-8 of 3 octets a character
    const reply = oneLineReason(`550 5.1.1 ${'\u65e5\u672c\u8a9e '.repeat(400)}`);
    // and one with no space to break at
    const noSpace = '\u00e9'.repeat(900);
    const dsn = buildDsn({
      ...input,
      sender: `${'s'.repeat(1200)}@sender.test`,
      recipients: [
        { rcpt, status: '5.1.1', diagnostic: reply, smtp: true, remoteMta: host },
        { rcpt: `x${rcpt}`, status: '5.1.1', diagnostic: noSpace, smtp: true, remoteMta: host },
      ],
    });
    const text = dsn.toString('utf8');
    const over = text.split('\r\n').filter((line) => Buffer.byteLength(line, 'utf8') > 998);
    expect(over).toEqual([]);
    // the recipient's line is all there: unfolded, it says what it said
    const human = text.slice(text.indexOf('Content-Type: text/plain'), text.indexOf('Content-Description: Delivery report'));
    expect(human.replace(/\r\n /g, ' ')).toContain(`<${rcpt}>: host ${host} said: ${reply}`);
    expect(human.replace(/\r\n /g, '')).toContain(noSpace);
  });

  it('foldLine breaks before a space, never inside a character, and leaves a short line alone', () => {
    expect(foldLine('short')).toEqual(['short']);
    expect(foldLine('aaa bbb ccc', 8)).toEqual(['aaa bbb', ' ccc']);
    expect(foldLine('\u00e9\u00e9\u00e9\u00e9\u00e9', 5)).toEqual(['\u00e9\u00e9', ' \u00e9\u00e9', ' \u00e9']);
    for (const line of foldLine('\u{1F600}'.repeat(600))) expect(Buffer.byteLength(line, 'utf8')).toBeLessThanOrEqual(998);
  });
});
