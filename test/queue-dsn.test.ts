/**
 * The DSN builder (relay/queue/dsn.ts) on its own: the per-recipient fields RFC 3464 asks for, and none that would
 * claim what the client never said.
 */
import { describe, expect, it } from 'vitest';
import { buildDsn } from '../relay/queue/dsn.ts';

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
});
