/**
 * Delivery status notifications (RFC 3464): a multipart/report with a human part, a message/delivery-status part and
 * the original message (message/rfc822) or, when it is large, its header (text/rfc822-headers). A DSN is sent with a
 * null sender, so it is never itself bounced.
 *
 * An internationalised message (RFC 6531/6532: a non-ASCII address, or a message that declared SMTPUTF8 with UTF-8 in
 * its header section) gets RFC 6533's forms instead: report-type=global-delivery-status, message/global-delivery-status
 * (a non-ASCII address as the utf-8 address type, in utf-8-addr-unitext), message/global or message/global-headers for
 * the original, and its own header fields in UTF-8. Such a DSN is queued as declaring SMTPUTF8 (globalDsn).
 */
import { randomBytes } from 'node:crypto';
import { IN_REPLY_TO } from './reason.ts';

export interface FailedRecipient {
  rcpt: string;
  /** enhanced status code, e.g. 5.1.1 */
  status: string;
  /** what the remote server said ("550 5.1.1 ...") or our own reason */
  diagnostic: string;
  /** true when the diagnostic is an SMTP reply from remoteMta */
  smtp: boolean;
  remoteMta: string | null;
  /**
   * the next hop as the text part names it, NAME[IP] or NAME[IP]:PORT (route.ts targetName), as Postfix's "host
   * mx.example.com[192.0.2.1] said: ..."; without it the text part names remoteMta. Remote-MTA is the name alone
   * (RFC 3464 2.3.5: the MTA's name).
   */
  remoteHost?: string | null;
}

export interface DsnInput {
  reportingMta: string;
  queueId: string;
  sender: string;
  arrivalDate: number;
  now: number;
  recipients: FailedRecipient[];
  /** the original message, or only its first bytes when it is large */
  original: Buffer;
  /** true when `original` holds the whole message */
  complete: boolean;
  /** RFC 6531: the original's MAIL declared SMTPUTF8 */
  smtpUtf8?: boolean;
}

/** Bytes of the original returned in full; above it only the header is returned. */
export const DSN_FULL_MESSAGE_LIMIT = 256 * 1024;

/** The enhanced status code in a reply ("550 5.1.1 ..." -> "5.1.1"), or a default for the reply class. */
export function enhancedStatus(response: string, fallbackClass: 4 | 5): string {
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(response);
  if (m) return m[1]!;
  const c = /^([45])\d\d/.exec(response);
  return `${c ? c[1] : fallbackClass}.0.0`;
}

/** RFC 5322 date. */
export function rfc5322Date(ms: number): string {
  const d = new Date(ms);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** The header block of a message (up to the first empty line), CRLF line endings kept. */
export function headerOf(message: Buffer): Buffer {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return message.subarray(0, crlf + 2);
  if (lf >= 0) return message.subarray(0, lf + 1);
  return message;
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * RFC 6533: whether the DSN of this message is an internationalised one (message/global-delivery-status). For a
 * non-ASCII address of the sender or of a recipient it reports (a non-ASCII address exists only in a transaction that
 * declared SMTPUTF8), or a message that declared SMTPUTF8 with non-ASCII bytes in its header section (RFC 6532: it
 * cannot be returned as message/rfc822). The DSN is then queued as declaring SMTPUTF8.
 */
export function globalDsn(input: Pick<DsnInput, 'sender' | 'recipients' | 'original' | 'smtpUtf8'>): boolean {
  if (NON_ASCII.test(input.sender) || input.recipients.some((r) => NON_ASCII.test(r.rcpt))) return true;
  return input.smtpUtf8 === true && headerOf(input.original).some((b) => b >= 0x80);
}

/**
 * RFC 6533 3: an address in a message/global-delivery-status field, "utf-8; " and the address as utf-8-addr-unitext
 * (UTF-8 as it is; "+", "=", backslash, controls and space as \x{HH}) when it is not ASCII, else "rfc822; " as in RFC 3464.
 */
function addressField(addr: string, global: boolean): string {
  if (!global || !NON_ASCII.test(addr)) return `rfc822; ${ascii(addr)}`;
  const unitext = Array.from(addr, (ch) => {
    const cp = ch.codePointAt(0)!;
    return cp <= 0x20 || cp === 0x2b || cp === 0x3d || cp === 0x5c || cp === 0x7f ? `\\x{${cp.toString(16).toUpperCase().padStart(2, '0')}}` : ch;
  }).join('');
  return `utf-8; ${unitext}`;
}

/** Header fields are 7-bit; anything else in our text (a remote reply) is replaced. */
function ascii(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/** RFC 5322 2.1.1: a line of a message is at most 998 octets, its CRLF excluded. */
export const MAX_LINE_OCTETS = 998;

/**
 * One line of text as lines of at most `max` octets (UTF-8, never a character cut in two). A longer one is broken
 * before the last space that fits, the space starting the next line (in a header field that is folding, and unfolding
 * gives the line back; in the text part, an indented continuation); with no space to break at (a very long address),
 * between two characters, the next line starting with a space.
 */
export function foldLine(line: string, max = MAX_LINE_OCTETS): string[] {
  const out: string[] = [];
  let rest = line;
  let prefix = '';
  while (Buffer.byteLength(prefix + rest, 'utf8') > max) {
    // the longest start of `rest` that fits after the prefix (ASCII), in whole characters
    const room = max - prefix.length;
    let end = 0;
    let bytes = 0;
    for (const ch of rest) {
      const n = Buffer.byteLength(ch, 'utf8');
      if (bytes + n > room) break;
      bytes += n;
      end += ch.length;
    }
    const space = rest.lastIndexOf(' ', end);
    if (space > 0) {
      out.push(prefix + rest.slice(0, space));
      rest = rest.slice(space);
      prefix = '';
    } else {
      out.push(prefix + rest.slice(0, end));
      rest = rest.slice(end);
      prefix = ' ';
    }
  }
  out.push(prefix + rest);
  return out;
}

const CRLF_SPACE = Buffer.from('\r\n ');

/**
 * Lines longer than MAX_LINE_OCTETS (RFC 5321 4.5.3.1.6: 1000 octets with the CRLF; a receiver may refuse or cut
 * them) are broken by inserting CRLF SPACE after 998 octets, as Postfix's smtp_line_length_limit = 998 does: in a
 * header field that is folding (unfolding gives the field back with one space more), in a body it "minimizes the
 * damage to MIME formatted mail" (base64 and quoted-printable decoders skip the space). The new line starts with a
 * space, so it never needs dot-stuffing. Every other byte is kept.
 *
 * A stream of chunks: push() each in order. A chunk with no line to break is returned as it is (no copy); the scan is
 * one indexOf per line. A CRLF's CR is the line's end, not one of its octets (a CR that ends a chunk is counted as
 * such: if the next chunk does not start with the LF, that bare CR made the line one octet longer; the SMTP front
 * stores no bare CR).
 */
export class LineBreaker {
  /** octets on the current output line so far */
  private col = 0;

  constructor(private readonly max = MAX_LINE_OCTETS) {}

  push(chunk: Buffer): Buffer {
    const max = this.max;
    let parts: Buffer[] | null = null;
    let from = 0;
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      const nl = chunk.indexOf(0x0a, pos);
      const segEnd = nl < 0 ? len : nl;
      const contentEnd = segEnd > pos && chunk[segEnd - 1] === 0x0d ? segEnd - 1 : segEnd;
      let lineStart = -1;
      if (this.col + (contentEnd - pos) > max) {
        for (let at = pos + Math.max(0, max - this.col); at < contentEnd; at += max - 1) {
          (parts ??= []).push(chunk.subarray(from, at), CRLF_SPACE);
          from = lineStart = at;
        }
      }
      if (nl >= 0) {
        this.col = 0;
        pos = nl + 1;
      } else {
        this.col = lineStart >= 0 ? 1 + (len - lineStart) : this.col + (len - pos);
        pos = len;
      }
    }
    if (!parts) return chunk;
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }
}

/** A whole message with its over-long lines broken (LineBreaker); the same Buffer when it has none. */
export function breakLongLines(message: Buffer): Buffer {
  // most messages have no such line: found by one indexOf per line, with no object made
  for (let pos = 0; pos < message.length; ) {
    const nl = message.indexOf(0x0a, pos);
    const end = nl < 0 ? message.length : nl;
    const content = end > pos && message[end - 1] === 0x0d ? end - 1 - pos : end - pos;
    if (content > MAX_LINE_OCTETS) return new LineBreaker().push(message);
    pos = end + 1;
  }
  return message;
}

export function buildDsn(input: DsnInput): Buffer {
  const boundary = `${input.queueId}.${randomBytes(8).toString('hex')}/${input.reportingMta}`;
  const expired = input.recipients.every((r) => r.status.startsWith('4.'));
  const global = globalDsn(input);
  // every line we write is at most 998 octets: a recipient's line in the text part holds a remote reply in UTF-8
  // (up to 900 characters, reason.ts) after the address and the host; the fields hold addresses of any length
  const lines = (a: string[]) => a.flatMap((line) => foldLine(line)).join('\r\n') + '\r\n';

  const human = [
    `This is the mail system at host ${input.reportingMta}.`,
    '',
    expired
      ? 'Your message could not be delivered within the time the relay keeps trying, and it has been given up.'
      : 'Your message could not be delivered to one or more recipients. It is attached below.',
    '',
    // Postfix's words: "host NAME said: 550 ... (in reply to RCPT TO command)" for a server's reply
    ...input.recipients.flatMap((r) => {
      // (only a server's own reply gets "host ... said:": the relay's reasons name the host themselves, and an expiry's
      // "last error: HOST said: ..." named it twice, a review found)
      const host = r.smtp ? r.remoteHost || r.remoteMta : null;
      return [`<${r.rcpt}>: ${host ? `host ${host} said: ` : ''}${r.diagnostic}`];
    }),
  ];

  const perMessage = [
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-Queue-ID: ${input.queueId}`,
    `X-Sender: ${addressField(input.sender, global)}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
  ];
  // No Original-Recipient: RFC 3464 (2.3.1) has it only for an ORCPT the client gave with the original RCPT, and the
  // relay does not offer the DSN extension (smtp-server's hideDSN), so no ORCPT ever comes; copying Final-Recipient
  // there would claim one (Postfix leaves it out too)
  const perRecipient = input.recipients.flatMap((r) => [
    '',
    `Final-Recipient: ${addressField(r.rcpt, global)}`,
    'Action: failed',
    `Status: ${r.status}`,
    ...(r.remoteMta ? [`Remote-MTA: dns; ${ascii(r.remoteMta)}`] : []),
    // (the server's reply as it said it: the note of the command it answered is for the text part)
    `Diagnostic-Code: ${r.smtp ? 'smtp' : 'x-unix'}; ${ascii(r.smtp ? r.diagnostic.replace(IN_REPLY_TO, '') : r.diagnostic).replace(/\r?\n/g, ' ')}`,
  ]);

  const full = input.complete && input.original.length <= DSN_FULL_MESSAGE_LIMIT;
  // the returned original too: its lines go out as the relay's own (RFC 5321 4.5.3.1.6), broken as on delivery
  const originalPart = breakLongLines(full ? input.original : headerOf(input.original));
  const originalEndsWithNewline = originalPart.length === 0 || originalPart[originalPart.length - 1] === 0x0a;

  const head = lines([
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    // (RFC 6532: in a DSN sent with SMTPUTF8, a header field holds the address in UTF-8)
    `To: <${global ? input.sender : ascii(input.sender)}>`,
    `Subject: Undelivered Mail Returned to Sender`,
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: <${input.queueId}.dsn.${randomBytes(4).toString('hex')}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=${global ? 'global-delivery-status' : 'delivery-status'};`,
    `\tboundary="${boundary}"`,
    'Content-Transfer-Encoding: 8bit',
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    ...(global ? ['Content-Type: message/global-delivery-status', 'Content-Transfer-Encoding: 8bit'] : ['Content-Type: message/delivery-status']),
    '',
    ...perMessage,
    ...perRecipient,
    '',
    `--${boundary}`,
    `Content-Description: ${full ? 'Undelivered Message' : 'Undelivered Message Headers'}`,
    `Content-Type: ${global ? (full ? 'message/global' : 'message/global-headers') : full ? 'message/rfc822' : 'text/rfc822-headers'}`,
    'Content-Transfer-Encoding: 8bit',
    '',
  ]);
  const tail = Buffer.from(`${originalEndsWithNewline ? '' : '\r\n'}\r\n--${boundary}--\r\n`, 'latin1');
  return Buffer.concat([Buffer.from(head, 'utf8'), originalPart, tail]);
}
