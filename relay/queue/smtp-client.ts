/**
 * One SMTP delivery of one message to one address, with nodemailer's SMTPConnection carrying the bytes unchanged
 * (explicit envelope, the stored message as the data stream, no pool, no requeue: the queue owns retries).
 *
 * AUTH (a smarthost's user and password) only in TLS, or to a loopback address: never in clear text over a network.
 *
 * TLS (delivery.tls):
 *  - opportunistic: STARTTLS when offered, certificate not verified; if the TLS handshake itself fails, one more
 *    session in plain text to the same address (Postfix's "may"); a refused STARTTLS command goes on in plain text.
 *  - required: no STARTTLS or a failed handshake is a temporary failure, never plain text.
 *  - off: STARTTLS is never used.
 *
 * 8BITMIME and SMTPUTF8 (RFC 6152, RFC 6531), as Postfix does without 7-bit conversion:
 *  - a message whose MAIL declared BODY=8BITMIME is declared so to a next hop that offers 8BITMIME (nodemailer's
 *    envelope use8BitMime); to one that does not, its bytes go unchanged anyway (no conversion to 7 bit).
 *  - a message whose MAIL declared SMTPUTF8 is declared so to a next hop that offers SMTPUTF8, its addresses ASCII or
 *    not. When it needs SMTPUTF8 (a non-ASCII address in this transaction, or it declared SMTPUTF8 and its header
 *    section holds non-ASCII bytes) and the next hop does not offer it, no transaction is started: its recipients
 *    fail with 5.6.7 (RcptResult.localStatus). Declared but all ASCII: it goes out without SMTPUTF8.
 *
 * SIZE (RFC 1870): a message larger than the limit the server announced in EHLO is not sent (no MAIL): its recipients
 * fail with 5.3.4 (RcptResult.localStatus), as Postfix. Lines over 998 octets are broken with CRLF SPACE on the way
 * out (dsn.ts LineBreaker, Postfix's smtp_line_length_limit); a message without one goes out byte for byte.
 *
 * A refusal's reply says which command it answered ("... (in reply to RCPT TO command)", reason.ts inReplyTo).
 */
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { targetName, type Target } from './route.ts';
import { isLoopback, parseIp } from '../../shared/ip.ts';
import { breakLongLines, LineBreaker } from './dsn.ts';
import { inReplyTo } from './reason.ts';

export type TlsPolicy = 'opportunistic' | 'required' | 'off';

export interface AttemptInput {
  target: Target;
  from: string;
  rcpts: string[];
  size: number;
  /** the message: a Buffer (kept in memory since its commit) or a stream of the spool file */
  data: () => Readable | Buffer;
  tls: TlsPolicy;
  auth: { user: string; pass: string } | null;
  heloName: string;
  /** RFC 6152: the original MAIL declared BODY=8BITMIME */
  body8bit?: boolean;
  /** RFC 6531: the original MAIL declared SMTPUTF8 */
  smtpUtf8?: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** called with the live connection so the queue can close it on stop() */
  track?: (close: () => void) => () => void;
}

export interface RcptResult {
  rcpt: string;
  /** SMTP reply code; 0 when the session broke before a reply */
  code: number;
  response: string;
  /**
   * the relay's own refusal, not a reply of the server (no command of the transaction was sent): its enhanced status
   * code, e.g. 5.6.7 when the message needs SMTPUTF8 and the server does not offer it
   */
  localStatus?: string;
}

export type AttemptResult =
  | {
      /** could not reach the point of sending the envelope: try the next address */
      kind: 'session-failed';
      reason: string;
      /** the TLS handshake failed (opportunistic may retry in plain text) */
      tlsHandshake: boolean;
      /** the login did not happen: refused, or not tried without TLS (a problem of the config, not of the mail) */
      login?: boolean;
    }
  | {
      kind: 'done';
      results: RcptResult[];
      tls: boolean;
      tlsProtocol: string | null;
      tlsCipher: string | null;
      /** the server's final reply to the message (or the error reply) */
      response: string;
    };

interface NodemailerError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  rejectedErrors?: NodemailerError[];
  recipient?: string;
}

interface EnvelopeState {
  accepted?: string[];
  rejectedErrors?: NodemailerError[];
}

/** What a socket's error code means, in words (the code itself means something only to a developer). */
const SYSTEM_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'could not connect: the connection was refused (no server listens there)',
  ECONNRESET: 'the connection was reset by the server',
  EPIPE: 'the server closed the connection while the relay was writing to it',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'could not connect: no route to the host',
  ENETUNREACH: 'could not connect: the network is unreachable',
  EADDRNOTAVAIL: 'could not connect: no local address to connect from',
  ECONNABORTED: 'the connection was aborted',
};

/** nodemailer's own messages for what went wrong without a reply, in words. */
const NODEMAILER_WORDS: Record<string, string> = {
  'Connection closed unexpectedly': 'the server closed the connection unexpectedly',
  'Connection timeout': 'could not connect in time (no answer to the connection request)',
  'Greeting never received': 'connected, but the server sent no greeting in time',
  'TLS handshake timed out': 'the TLS handshake did not finish in time',
  Timeout: 'the connection was idle too long (no reply from the server)',
  'connection closed': 'the connection closed',
  // (a server that accepts the connection and closes it at once, before its greeting: a tryout)
  'Cannot send message - smtp connection is already destroyed.': 'the server closed the connection before the message could be sent',
};

/**
 * Why a session failed, in words, naming the server (the reply it gave, or what happened without one). No error code
 * of nodemailer or of the socket ("(EMESSAGE)", "(ECONNECTION)", "connect ECONNREFUSED ...") reaches the admin or the
 * DSN: they meant something only to a developer.
 */
function describe(err: NodemailerError, target: Target): string {
  if (err.response) return `${where(target)} said: ${err.response}`;
  // the socket's own code (nodemailer keeps it as originalCode, its err.code being its type: ESOCKET, ETIMEDOUT...);
  // the relay's own errors (watchReplies) have their words in the message already
  const system = (err as NodemailerError & { originalCode?: string }).originalCode;
  const known = (Object.hasOwn(NODEMAILER_WORDS, err.message) && NODEMAILER_WORDS[err.message]) || (system && Object.hasOwn(SYSTEM_ERRORS, system) && SYSTEM_ERRORS[system]);
  if (known) return `${where(target)}: ${known}`;
  // nodemailer's "Error initiating TLS - <OpenSSL's text>" and the like: their text; an OpenSSL code
  // (ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE) is kept, an admin can look it up; nodemailer's own never
  const text = err.message.replace(/^Error initiating TLS - /, 'the TLS handshake failed: ');
  return `${where(target)}: ${text}${system && !text.includes(system) ? ` (${system})` : ''}`;
}

/** The command a reply with this error answered, as inReplyTo() says it; '' when it was none of a transaction's. */
function commandOf(err: NodemailerError): string {
  switch (err.command) {
    case 'MAIL FROM':
      return inReplyTo('MAIL FROM');
    case 'RCPT TO':
      return inReplyTo('RCPT TO');
    case 'DATA':
      // nodemailer says 'DATA' for both: "Data command failed" is the reply to DATA, "Message failed" the reply to the end of the data
      return inReplyTo(/^Data command failed/.test(err.message) ? 'DATA' : 'end of DATA');
    default:
      return '';
  }
}

/** The message with its lines over 998 octets broken (dsn.ts LineBreaker): a Buffer only when it has one, a stream through a scan. */
function sendable(data: Readable | Buffer): Readable | Buffer {
  if (Buffer.isBuffer(data)) return breakLongLines(data);
  // a spool file read as it goes: each chunk scanned, passed on as it is unless it holds a line to break. Pulled only
  // when nodemailer reads it (at DATA), as the file stream itself: a read error then is one in the middle of the data.
  // A read error of the file ends this stream with it; destroying this one (after the send) closes the file.
  const out = Readable.from(brokenLines(data), { objectMode: false });
  // (an error before DATA pulls the first chunk, an open that fails (ENOENT, EMFILE) above all, had no listener: an
  // uncaught exception that ended the delivery worker and every delivery under way in it (a review found it).
  // nodemailer listens on this stream from the start of the send, as it did on the file stream itself)
  data.once('error', (err) => out.destroy(err));
  return out;
}

async function* brokenLines(data: Readable): AsyncGenerator<Buffer> {
  const breaker = new LineBreaker();
  for await (const chunk of data) yield breaker.push(chunk as Buffer);
}

/** The same machine (shared/ip.ts isLoopback), where no one on a network can read the line. */
function isLoopbackTarget(ip: string): boolean {
  const parsed = parseIp(ip);
  return parsed !== null && isLoopback(parsed);
}

/** The next hop as the reasons name it (route.ts targetName). */
const where = targetName;

const NON_ASCII = /[^\x00-\x7f]/;

/** The commands the delivery client sends, as a timeout's reason names them (watchReplies). */
const SMTP_VERBS = new Set(['EHLO', 'HELO', 'LHLO', 'STARTTLS', 'AUTH', 'MAIL FROM', 'RCPT TO', 'DATA', 'RSET', 'NOOP', 'QUIT']);

/**
 * Whether the header section of a message (up to its first empty line) holds a byte outside ASCII. Reads the bytes
 * only as far as it needs (a stream is destroyed after).
 */
async function headerHasNonAscii(data: Readable | Buffer): Promise<boolean> {
  // true at the start of a line: an LF there ends the header section (CR is skipped: CRLF and bare LF alike)
  let lineStart = true;
  const scan = (buf: Buffer): boolean | null => {
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i]!;
      if (b >= 0x80) return true;
      if (b === 0x0a) {
        if (lineStart) return false;
        lineStart = true;
      } else if (b !== 0x0d) lineStart = false;
    }
    return null;
  };
  if (Buffer.isBuffer(data)) return scan(data) ?? false;
  try {
    for await (const chunk of data) {
      const found = scan(chunk as Buffer);
      if (found !== null) return found;
    }
    return false;
  } finally {
    data.destroy();
  }
}

type Sent = { err: NodemailerError | null; info: { accepted: string[]; rejectedErrors?: NodemailerError[]; response: string } | null };

/** One SMTP connection: opened (EHLO, STARTTLS, AUTH) once, then one or more mail transactions. */
class Session {
  private lastError: NodemailerError | null = null;
  closed = false;
  /** transactions done on this connection */
  uses = 0;
  /** the last transaction ended cleanly (a reply to the end of DATA): the connection may be reused */
  reusable = false;
  tls = { tls: false, tlsProtocol: null as string | null, tlsCipher: null as string | null };
  private readonly ended: Promise<NodemailerError>;
  readonly conn: SMTPConnection;
  /** the next MAIL FROM gets SMTPUTF8 even with ASCII addresses (see declareSmtpUtf8) */
  private smtpUtf8Next = false;
  /** the reply deadline ran out (watchReplies): the session's error, whatever nodemailer reports after the close */
  private timedOut: NodemailerError | null = null;
  private replyTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly target: Target,
    input: AttemptInput,
    readonly mode: TlsPolicy | 'plain',
  ) {
    this.conn = new SMTPConnection({
      host: target.ip,
      port: target.port,
      servername: isIP(target.host) ? undefined : target.host,
      name: input.heloName,
      secure: false,
      ignoreTLS: mode === 'off' || mode === 'plain',
      requireTLS: mode === 'required',
      opportunisticTLS: mode === 'opportunistic',
      tls: { rejectUnauthorized: false, ...(isIP(target.host) ? {} : { servername: target.host }) },
      connectionTimeout: input.connectTimeoutMs,
      greetingTimeout: input.connectTimeoutMs,
      // inactivity, only a backstop now: watchReplies gives each reply its deadline (the end of data's twice as long),
      // which must run out first to be reported as what it was
      socketTimeout: 3 * input.commandTimeoutMs,
      socketCloseTimeout: 0,
      logger: false,
      debug: false,
    });
    // 'end' settles whatever is waiting: close() (on stop) does not always call back a send in flight
    let endedResolve!: (err: NodemailerError) => void;
    this.ended = new Promise<NodemailerError>((resolve) => (endedResolve = resolve));
    this.conn.on('error', (err: NodemailerError) => {
      this.lastError = err;
    });
    this.conn.on('end', () => {
      this.closed = true;
      if (this.replyTimer) clearTimeout(this.replyTimer);
      endedResolve(this.timedOut ?? this.lastError ?? Object.assign(new Error('connection closed'), { code: 'ECONNECTION' }));
    });
    this.declareSmtpUtf8();
    this.watchReplies(input.commandTimeoutMs);
  }

  /**
   * A deadline for every reply: commandTimeoutMs from the command (or from the reply before it, with several
   * commands pipelined) to the reply's last line, else the session is closed as timed out. nodemailer's socketTimeout
   * is an inactivity timer: a server that sent one line of a multi-line reply every few seconds ("250-still thinking")
   * kept the connection, and a delivery slot, for ever; twenty such servers stopped every delivery of the relay. While
   * the message data is still being written, a session whose socket took more bytes since the last check is given
   * more time (a large message on a slow link); one whose data stops moving is cut within 1.1x the limit.
   *
   * Private parts of nodemailer's SMTPConnection 10.6.0 (pinned exactly in package.json): _sendCommand (every command
   * line goes through it), _responseActions (the replies still expected), _currentDataStream, _socket. Complete
   * replies are counted through lastServerResponse, which nodemailer sets for each complete reply only.
   */
  private watchReplies(timeoutMs: number): void {
    const c = this.conn as unknown as {
      _sendCommand?: (str: string, logStr?: string) => void;
      _responseActions?: unknown[];
      _currentDataStream?: unknown;
      _socket?: { bytesWritten?: number } | null | false;
      lastServerResponse?: unknown;
    };
    const send = c._sendCommand;
    if (typeof send !== 'function' || !Array.isArray(c._responseActions)) return;
    const pending = () => c._responseActions?.length ?? 0;
    const bytesWritten = () => (c._socket && c._socket.bytesWritten) || 0;
    /** when the wait for the reply expected now began: the command sent after an idle moment, or the reply before */
    let waitFrom = 0;
    /** no reply is expected (before the first command; after a reply that left none expected) */
    let idle = true;
    let lastCommand = '';
    /** the socket's bytes written at the last check: more since means the message data is moving */
    let written = 0;
    /** the message data went out in this transaction (DATA's 354 came): a deadline now is the end of data's */
    let dataSent = false;
    let stream = c._currentDataStream;
    Object.defineProperty(c, '_currentDataStream', {
      configurable: true,
      enumerable: true,
      get: () => stream,
      set: (v: unknown) => {
        const was = stream;
        stream = v;
        if (v) {
          // the data starts moving: looked at every tenth of the limit from now (check())
          dataSent = true;
          waitFrom = Date.now();
          written = bytesWritten();
          arm(Math.max(50, timeoutMs / 10));
        }
        // the data is all written: the wait for the reply to its end begins
        else if (was) waitFrom = Date.now();
      },
    });
    let value = c.lastServerResponse;
    Object.defineProperty(c, 'lastServerResponse', {
      configurable: true,
      enumerable: true,
      get: () => value,
      set: (v: unknown) => {
        // a complete reply (nodemailer sets it for those only), before its action is taken off the list
        value = v;
        waitFrom = Date.now();
        idle = pending() <= 1;
      },
    });
    const check = () => {
      this.replyTimer = null;
      if (this.closed || pending() === 0) return; // idle: the next command arms it again
      const now = Date.now();
      const bytes = bytesWritten();
      // the reply to the end of the data gets twice as long (Postfix: smtp_data_done_timeout 600 s, the others 300 s):
      // the server checks the whole message then, and its last bytes may still be in the sockets' buffers
      const limit = dataSent && !stream ? 2 * timeoutMs : timeoutMs;
      // the message data still being written, and moving since the last check: it waits on a slow link, not on the server
      if (stream && bytes > written) waitFrom = now;
      written = bytes;
      if (now - waitFrom < limit) {
        // while the data is being written, looked at every tenth of the limit: a transfer that stops is cut within 1.1x
        // the limit of its last movement (checked only at the limit, it took up to twice that: 600 s for 300)
        arm(stream ? Math.min(waitFrom + limit - now, Math.max(50, limit / 10)) : waitFrom + limit - now);
        return;
      }
      const seconds = +(limit / 1000).toFixed(1);
      const text = stream
        ? `the message data stopped moving for ${seconds} s (the server stopped reading it); it was not delivered`
        : dataSent
          ? `no reply to the end of the message data within ${seconds} s: it may arrive twice when it is tried again`
          : `no complete reply within ${seconds} s after ${lastCommand || 'the last command'} (the server kept the connection open without finishing its answer)`;
      this.timedOut = Object.assign(new Error(text), { code: 'ETIMEDOUT' });
      this.conn.close();
    };
    const arm = (ms: number) => {
      if (this.replyTimer) clearTimeout(this.replyTimer);
      this.replyTimer = setTimeout(check, Math.max(1, ms));
      this.replyTimer.unref();
    };
    c._sendCommand = (str: string, logStr?: string) => {
      // the command's name for the reason; a line that is none (AUTH LOGIN's user name and password, in base64) is
      // the login's: never quoted, a part of it would be a part of the password
      const verb = /^[A-Za-z]+(?: (?:FROM|TO)(?=:))?/.exec(str)?.[0]?.toUpperCase() ?? '';
      lastCommand = SMTP_VERBS.has(verb) ? verb : 'the login';
      if (lastCommand === 'MAIL FROM' || lastCommand === 'RSET') dataSent = false;
      if (idle) {
        idle = false;
        waitFrom = Date.now();
        written = bytesWritten();
      }
      if (!this.replyTimer) arm(timeoutMs);
      send.call(this.conn, str, logStr);
    };
  }

  /**
   * The ESMTP extensions the server offered (after EHLO), as nodemailer itself reads them to build MAIL FROM; null
   * when they cannot be read. Private field of nodemailer's SMTPConnection 10.6.0 (pinned to exactly that version in
   * package.json): it has no public accessor.
   */
  offered(ext: 'SMTPUTF8' | '8BITMIME'): boolean | null {
    const list = (this.conn as unknown as { _supportedExtensions?: unknown })._supportedExtensions;
    return Array.isArray(list) ? list.includes(ext) : null;
  }

  /**
   * nodemailer adds SMTPUTF8 to MAIL FROM only for a non-ASCII address, and has no envelope option for it: a message
   * that declared SMTPUTF8 with ASCII addresses (UTF-8 only in its header fields, RFC 6532) would lose it. So, when
   * transact() asks (smtpUtf8Next, only when the server offers SMTPUTF8), the MAIL FROM line nodemailer writes gets
   * the keyword. The one place that touches nodemailer's private _sendCommand (SMTPConnection 10.6.0, pinned exactly):
   * every command line goes through it; a version without it keeps nodemailer's own MAIL FROM (no SMTPUTF8 added).
   */
  private declareSmtpUtf8(): void {
    const c = this.conn as unknown as { _sendCommand?: (str: string, logStr?: string) => void };
    const send = c._sendCommand;
    if (typeof send !== 'function') return;
    c._sendCommand = (str: string, logStr?: string) => {
      if (this.smtpUtf8Next && /^MAIL FROM:/i.test(str)) {
        this.smtpUtf8Next = false;
        if (!/ SMTPUTF8(?: |$)/i.test(str)) str = str.replace(/^(MAIL FROM:<[^>]*>)/i, '$1 SMTPUTF8');
      }
      send.call(this.conn, str, logStr);
    };
  }

  private orEnd<T>(p: Promise<T>, onEnd: (e: NodemailerError) => T): Promise<T> {
    return Promise.race([p, this.ended.then(onEnd)]);
  }

  /** Connects, greets, STARTTLS as the mode says, AUTH; null when ready, else why not. */
  async open(auth: AttemptInput['auth']): Promise<{ reason: string; tlsHandshake: boolean; login?: boolean } | null> {
    const { conn, target, mode } = this;
    const err = await this.orEnd(
      // (nodemailer hands a close before the greeting to this callback as its argument, not as an 'error' event: taken
      // as "ready", such a server got every message's own connection and was never marked down, a tryout found)
      new Promise<NodemailerError | null>((resolve) => conn.connect((err?: unknown) => resolve((err as NodemailerError | undefined) ?? null))),
      (e) => e,
    );
    if (err) {
      if (mode === 'required' && err.command === 'STARTTLS' && err.response) {
        return { reason: `${where(target)} does not offer STARTTLS (it answered "${err.response}")`, tlsHandshake: false };
      }
      const handshake = mode === 'opportunistic' && (err.code === 'ETLS' || conn.upgrading === true) && !err.response;
      return { reason: describe(err, target), tlsHandshake: handshake };
    }
    if (mode === 'required' && !conn.secure) {
      return { reason: `${where(target)} did not offer STARTTLS`, tlsHandshake: false };
    }
    const sock = conn._socket as TLSSocket | null | false;
    const secure = conn.secure && !!sock && typeof sock.getProtocol === 'function';
    this.tls = {
      tls: secure,
      tlsProtocol: secure ? sock.getProtocol() : null,
      tlsCipher: secure ? (sock.getCipher()?.name ?? null) : null,
    };
    this.readSizeLimit();
    if (auth && !this.tls.tls && !isLoopbackTarget(target.ip)) {
      // never the password in clear text over a network (Postfix's smtp_sasl_security_options = noplaintext): a
      // temporary failure, so the mail waits in the queue until the smarthost offers TLS or the config changes
      const why = mode === 'plain' ? 'its TLS handshake failed' : mode === 'off' ? 'delivery.tls is "off"' : 'it did not offer STARTTLS';
      return { reason: `${where(target)}: the smarthost password is not sent without TLS, and ${why}`, tlsHandshake: false, login: true };
    }
    if (auth) {
      const authErr = await this.orEnd(
        new Promise<NodemailerError | null>((resolve) => {
          conn.login({ user: auth.user, pass: auth.pass }, (e) => resolve((e as NodemailerError | null) ?? null));
        }),
        (e) => e,
      );
      if (authErr) return { reason: `authentication failed: ${describe(authErr, target)}`, tlsHandshake: false, login: true };
    }
    return null;
  }

  /** RSET before reusing the connection; false when it is no longer usable. */
  async reset(): Promise<boolean> {
    if (this.closed) return false;
    return this.orEnd(
      new Promise<boolean>((resolve) => this.conn.reset((err) => resolve(!err))),
      () => false,
    );
  }

  /**
   * Why this message cannot go to this server without SMTPUTF8 when the server does not offer it (null: it can).
   * RFC 6531 3.4 / Postfix: a non-ASCII address (only a transaction that declared SMTPUTF8 has one), or a message
   * that declared SMTPUTF8 with non-ASCII bytes in its header section (RFC 6532).
   */
  /**
   * Why this message cannot go to this server at all: larger than the SIZE the server announced in its EHLO reply
   * (RFC 1870: its fixed limit; 0 or no number: none). Postfix does not send MAIL then and fails the recipients at
   * once with 5.3.4 "message size N exceeds size limit M of server HOST[IP]": waiting would not change the server's
   * limit. Before, nodemailer refused the send locally with no reply code, and the message was deferred for days.
   * nodemailer's private _maxAllowedSize (SMTPConnection 10.6.0, pinned exactly in package.json) is the limit it read
   * from EHLO; a version without it reads as no limit (nodemailer's own check then defers, as before).
   */
  /**
   * The next hop's SIZE limit, once per connection (after its last EHLO, the one after STARTTLS included): nodemailer
   * finds "SIZE" anywhere in the EHLO reply, its first line (the server's name) too, and a server named sizer.example
   * gave "no limit" and hid its real SIZE line (a tryout). Read from the extension lines (_ehloLines, the first line
   * left out) and told to nodemailer, whose own check and SIZE= use it.
   */
  private readSizeLimit(): void {
    const conn = this.conn as unknown as { _maxAllowedSize?: unknown; _ehloLines?: unknown };
    if (!Array.isArray(conn._ehloLines)) return;
    const line = (conn._ehloLines as unknown[]).find((l): l is string => typeof l === 'string' && /^SIZE(\s|$)/i.test(l));
    conn._maxAllowedSize = line ? Number(/^SIZE\s+(\d+)/i.exec(line)?.[1]) || 0 : 0;
  }

  private sizeRefusal(size: number): string | null {
    const limit = (this.conn as unknown as { _maxAllowedSize?: unknown })._maxAllowedSize;
    if (typeof limit !== 'number' || !(limit > 0) || size <= limit) return null;
    return `message size ${size} exceeds size limit ${limit} of server ${where(this.target)}`;
  }

  private async smtpUtf8Refusal(input: AttemptInput): Promise<string | null> {
    if (this.offered('SMTPUTF8') !== false) return null;
    const needs =
      [input.from, ...input.rcpts].some((a) => NON_ASCII.test(a)) || (input.smtpUtf8 === true && (await headerHasNonAscii(input.data())));
    return needs ? `SMTPUTF8 is required, but was not offered by host ${where(this.target)}` : null;
  }

  /** One mail transaction. */
  async transact(input: AttemptInput): Promise<Extract<AttemptResult, { kind: 'done' }>> {
    const { conn, target } = this;
    this.reusable = false;
    // the relay's own refusals (no command of the transaction is sent): the connection stays in step, and may serve
    // the next message; every recipient of this transaction fails with the enhanced code, bounced by the queue
    // the size as sent: a message held in memory whose long lines were broken is 3 octets longer per break (the SIZE=
    // declared and the next hop's limit are about what goes on the wire; a spool file's is known only as it is read,
    // and declared as stored)
    const source = input.data();
    const data = sendable(source);
    const size = Buffer.isBuffer(data) ? data.length : input.size;
    const tooLarge = this.sizeRefusal(size);
    const refusal = tooLarge ? null : await this.smtpUtf8Refusal(input);
    if (tooLarge || refusal) {
      if (!Buffer.isBuffer(data)) data.destroy();
      if (!Buffer.isBuffer(source)) source.destroy();
      this.reusable = !this.closed;
      const response = (tooLarge ?? refusal)!;
      const [code, localStatus] = tooLarge ? [552, '5.3.4'] : [554, '5.6.7'];
      return { kind: 'done', results: input.rcpts.map((rcpt) => ({ rcpt, code, response, localStatus })), ...this.tls, response };
    }
    this.uses++;
    // SMTPUTF8 declared where offered (nodemailer adds it itself for a non-ASCII address); BODY=8BITMIME goes with
    // nodemailer's use8BitMime (only to a server that offers 8BITMIME; to one that does not, the bytes go unchanged)
    this.smtpUtf8Next = input.smtpUtf8 === true && this.offered('SMTPUTF8') === true;
    const sent = await this.orEnd(
      new Promise<Sent>((resolve) => {
        conn.send({ from: input.from, to: input.rcpts, size, use8BitMime: input.body8bit === true }, data, (err, info) => {
          resolve({ err: (err as NodemailerError | null) ?? null, info: (info as never) ?? null });
        });
      }),
      (e): Sent => ({ err: e, info: null }),
    );
    this.smtpUtf8Next = false;
    // the spool file closed whether or not its bytes were read (no DATA after refused recipients: the line-breaking
    // stream over it never started, and destroying it alone would leave the file open)
    if (!Buffer.isBuffer(data)) data.destroy();
    if (!Buffer.isBuffer(source)) source.destroy();
    const envelope = ((conn as unknown as { _envelope?: EnvelopeState })._envelope || {}) as EnvelopeState;
    const perRcpt = new Map<string, RcptResult>();
    // A refused MAIL FROM decides for every recipient. With PIPELINING the RCPTs went out with it, and a server that
    // refused the MAIL (451: greylisting, a full disk) answers each of them "503 need MAIL command": taken as the
    // recipients' own replies, those 5xx bounced mail that only had to wait (9,066 acknowledged messages lost in the
    // soak test's three minutes of 451).
    const mailRefused = sent.err?.command === 'MAIL FROM';
    const rejected = mailRefused ? [] : (sent.info?.rejectedErrors ?? sent.err?.rejectedErrors ?? envelope.rejectedErrors ?? []);
    for (const e of rejected) {
      if (e.recipient) perRcpt.set(e.recipient, { rcpt: e.recipient, code: e.responseCode ?? 0, response: e.response ? e.response + commandOf(e) : e.message });
    }
    let response: string;
    if (sent.err) {
      const e = sent.err;
      response = e.response ? e.response + commandOf(e) : describe(e, target);
      const code = e.responseCode ?? 0;
      // a MAIL FROM refusal applies to every recipient; a failure of the message itself to every one not already refused
      for (const rcpt of input.rcpts) if (!perRcpt.has(rcpt)) perRcpt.set(rcpt, { rcpt, code, response });
      // A refusal the server said in words (a 4xx or 5xx to MAIL, RCPT, DATA or the message) leaves the conversation
      // in step: the connection may carry the next message after an RSET, as Postfix's cache does. Before, every
      // refused message cost a new connection: a server answering 451 to everything (greylisting, an outage behind
      // it) got one connection per queued message. Not after a 421 (the server is closing), a timeout or a broken
      // socket: atCommandBoundary() says whether every command sent has had its reply.
      this.reusable = code >= 400 && code !== 421 && this.atCommandBoundary();
    } else {
      response = sent.info!.response;
      const code = Number(/^\d{3}/.exec(response)?.[0] ?? 250);
      for (const rcpt of sent.info!.accepted) if (!perRcpt.has(rcpt)) perRcpt.set(rcpt, { rcpt, code, response });
      for (const rcpt of input.rcpts) if (!perRcpt.has(rcpt)) perRcpt.set(rcpt, { rcpt, code: 0, response: 'no reply for this recipient' });
      this.reusable = !this.closed;
    }
    return { kind: 'done', results: input.rcpts.map((r) => perRcpt.get(r)!), ...this.tls, response };
  }

  /** Polite end: QUIT, and close anyway if the server does not answer it soon. */
  quit(): void {
    if (this.closed) return;
    this.conn.quit();
    setTimeout(() => this.conn.close(), 5000).unref();
  }

  /**
   * The server has answered every command sent and no message data is on its way: the next line it reads is a
   * command. Not so after a timeout, a broken socket, a message stream that failed halfway through DATA, or once
   * nodemailer itself dropped the connection (it does after a 421 and on protocol errors).
   */
  private atCommandBoundary(): boolean {
    // private fields of nodemailer's SMTPConnection 10.6.0 (pinned to exactly that version in package.json for this);
    // one that a later version renamed reads as "not at a boundary", so the session is closed, never sent a stray QUIT
    const c = this.conn as unknown as { _closing?: boolean; _destroyed?: boolean; _responseActions?: unknown[]; _currentDataStream?: unknown };
    return !this.closed && !c._closing && !c._destroyed && (c._responseActions?.length ?? 1) === 0 && !c._currentDataStream;
  }

  /**
   * The session will not be used again: QUIT (RFC 5321 4.1.1.10) when the conversation is still in step, whatever
   * the last reply was (a refused RCPT, MAIL or message, a failed AUTH, a stale RSET); a plain close when it is not
   * (a QUIT then would be read as part of a message, or go nowhere).
   */
  end(): void {
    if (this.atCommandBoundary()) this.quit();
    else this.close();
  }

  close(): void {
    this.conn.close();
  }
}

/**
 * Delivers one recipient group to one address, reusing an idle connection to the same address (same TLS policy and
 * credentials) when there is one, as Postfix's connection cache does for a busy destination. In opportunistic mode a
 * failed TLS handshake is retried once in plain text to the same address.
 */
export class SmtpClient {
  private readonly idle = new Map<string, { session: Session; timer: NodeJS.Timeout }[]>();
  private readonly busy = new Set<Session>();
  private readonly idleMs: number;
  private readonly maxUses: number;
  private readonly maxIdlePerAddress: number;

  constructor(opts: { idleMs?: number; maxUses?: number; maxIdlePerAddress?: number } = {}) {
    this.idleMs = opts.idleMs ?? 2000;
    this.maxUses = opts.maxUses ?? 100;
    this.maxIdlePerAddress = opts.maxIdlePerAddress ?? 20;
  }

  private key(input: AttemptInput): string {
    return `${input.target.ip}|${input.target.port}|${input.target.host}|${input.tls}|${input.auth?.user ?? ''}|${input.heloName}`;
  }

  async deliver(input: AttemptInput): Promise<AttemptResult> {
    const key = this.key(input);
    for (let cached = this.take(key); cached; cached = this.take(key)) {
      this.busy.add(cached);
      const untrack = input.track?.(() => cached!.close()) ?? (() => {});
      try {
        if (await cached.reset()) {
          const r = await cached.transact(input);
          this.release(key, cached);
          return r;
        }
      } finally {
        untrack();
        this.busy.delete(cached);
      }
      cached.end(); // went stale while idle (or refused RSET): try the next one, or a new connection
    }
    const first = await this.fresh(key, input, input.tls);
    if (first.kind === 'session-failed' && first.tlsHandshake && input.tls === 'opportunistic') {
      const plain = await this.fresh(key, input, 'plain');
      if (plain.kind === 'session-failed') return { ...plain, reason: `${first.reason}; then in plain text: ${plain.reason}` };
      return plain;
    }
    return first;
  }

  private async fresh(key: string, input: AttemptInput, mode: TlsPolicy | 'plain'): Promise<AttemptResult> {
    const session = new Session(input.target, input, mode);
    this.busy.add(session);
    const untrack = input.track?.(() => session.close()) ?? (() => {});
    try {
      const failed = await session.open(input.auth);
      if (failed) {
        // a refused AUTH still gets its QUIT; a refused greeting, EHLO or STARTTLS and a broken handshake were closed by nodemailer already
        session.end();
        return { kind: 'session-failed', ...failed };
      }
      const r = await session.transact(input);
      this.release(key, session);
      return r;
    } finally {
      untrack();
      this.busy.delete(session);
    }
  }

  private take(key: string): Session | null {
    const list = this.idle.get(key);
    const entry = list?.pop();
    if (!entry) return null;
    if (list!.length === 0) this.idle.delete(key);
    clearTimeout(entry.timer);
    return entry.session;
  }

  /**
   * After a transaction: keep the connection for the next message to the same address (after a delivery, or a
   * refusal that left the conversation in step; the next use starts with RSET), or end it, with QUIT unless it is
   * broken.
   */
  private release(key: string, session: Session): void {
    let list = this.idle.get(key);
    if (!session.reusable || session.closed || session.uses >= this.maxUses || (list?.length ?? 0) >= this.maxIdlePerAddress) {
      session.end();
      return;
    }
    if (!list) this.idle.set(key, (list = []));
    const entry = {
      session,
      timer: setTimeout(() => {
        const l = this.idle.get(key);
        const i = l?.indexOf(entry) ?? -1;
        if (i >= 0) l!.splice(i, 1);
        if (l && l.length === 0) this.idle.delete(key);
        session.quit();
      }, this.idleMs),
    };
    entry.timer.unref();
    list.push(entry);
  }

  /** Ends every idle connection (QUIT) and closes the busy ones. */
  closeAll(): void {
    for (const list of this.idle.values()) {
      for (const e of list) {
        clearTimeout(e.timer);
        e.session.quit();
      }
    }
    this.idle.clear();
    for (const s of this.busy) s.close();
  }

  get idleConnections(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }
}
