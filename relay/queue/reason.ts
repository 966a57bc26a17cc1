/**
 * The one place where a delivery's reason becomes what the queue keeps and says: a message's lastError (queue.list),
 * the reason of the deferred and bounced events, a recipient's error in its .state file, the DSN's Diagnostic-Code.
 * What servers, TLS libraries and resolvers say may span lines (OpenSSL's error text ends in a newline; a multi-line
 * SMTP reply comes joined with newlines) and may be long (a reply per address tried). A reason is one line: every run
 * of whitespace or control characters becomes one space, the content is kept. And it is bounded: at most
 * REASON_MAX_CHARS characters; a longer one keeps its start (the first address tried and its answer) and its end (the
 * last one), with the number of characters left out in between.
 */

/**
 * Characters a reason keeps at most. Room for several addresses' answers (an SMTP reply line is at most 512 octets),
 * and short enough that a DSN's `Diagnostic-Code: x-unix; ` line stays under RFC 5322's 998.
 */
export const REASON_MAX_CHARS = 900;

const marker = (n: number) => ` [... ${n} characters left out ...] `;

export function oneLineReason(text: string): string {
  const line = text.replace(/[\s\x00-\x1f\x7f]+/g, ' ').trim();
  if (line.length <= REASON_MAX_CHARS) return line;
  // the marker's count has at most as many digits as the whole length
  const room = REASON_MAX_CHARS - marker(line.length).length;
  let head = Math.ceil((room * 2) / 3);
  let tail = room - head;
  // never half of a surrogate pair at a cut
  if (/[\ud800-\udbff]/.test(line[head - 1] ?? '')) head--;
  if (/[\udc00-\udfff]/.test(line[line.length - tail] ?? '')) tail--;
  return `${line.slice(0, head).trimEnd()}${marker(line.length - head - tail)}${line.slice(line.length - tail).trimStart()}`;
}

/**
 * Which command a server's refusal answered, as Postfix says it after the reply ("550 5.1.1 user unknown (in reply to
 * RCPT TO command)"): a 550 to RCPT means the address is unknown there, a 550 after the end of the data that the
 * content was refused. `command` is the delivery client's name for it (nodemailer's err.command, with DATA split into
 * the DATA command itself and the end of the data).
 */
export function inReplyTo(command: 'MAIL FROM' | 'RCPT TO' | 'DATA' | 'end of DATA'): string {
  return ` (in reply to ${command} command)`;
}

/** The note inReplyTo() adds at the end of a reply: a DSN's Diagnostic-Code gives the server's reply without it. */
export const IN_REPLY_TO = / \(in reply to (?:MAIL FROM|RCPT TO|DATA|end of DATA) command\)$/;
