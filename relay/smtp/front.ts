/**
 * The SMTP front: smtp-server wiring. It turns protocol moments into questions for policy/
 * (with facts from clients/ and dns/), answers with the verdict, emits events, and hands accepted
 * messages to the spool, answering 250 only once the message is on disk.
 *
 * smtp-server is pinned to exactly 3.21.6 in package.json because this file relies on private parts of
 * its SMTPConnection, per connection (never on the prototype, so other smtp-server instances in the same
 * process are untouched):
 *  - init(): replaced to drop the hard-coded 100 ms early-talker delay for our own smtp.greetingDelayMs;
 *  - send(): wrapped to count every reply >= 400 (its own 500/501/503 included) toward
 *    checks.maxFailedCommands, to keep our own enhanced status codes, and to edit the EHLO capabilities;
 *  - _onCommand(): wrapped to answer early talkers with 554 5.5.0, to neutralise the hard-coded
 *    "10 unrecognized commands" limit (_unrecognizedCommands), which our configurable limit replaces, and
 *    to refuse AUTH without TLS off loopback before any credential is sent (_nextHandler tells a
 *    continuation line of an AUTH exchange from a command);
 *  - _parseAddressCommand(): wrapped to keep an A-label domain (xn--...) the client wrote in ASCII as it was
 *    written (the library decodes it to Unicode, which made an all-ASCII address need SMTPUTF8);
 *  - _ready, _setListeners, connectionReady, close, _socket: read or called as the library does;
 *  - _dataStream, _handlerPending: read by close() to tell idle sessions from transactions in progress;
 *  - the server's _closeTimeout: hidden from _onCommand's synchronous "shutting down" check while a session
 *    finishes a transaction it began before close().
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { SMTPServer, type SMTPServerSession, type SMTPServerDataStream, type SMTPServerAddress, type SMTPServerAuthentication } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { Config } from '../../shared/config.ts';
import type { Rule, Stage } from '../../shared/events.ts';
import { GroupMatcher, clientKey, isLoopback, normalizeIp, parseIp, type ParsedIp } from '../../shared/ip.ts';
import type { Anvil } from '../clients/anvil.ts';
import { checkReverseDns, checkSenderDomain, type ReverseDnsFact, type SenderDomainFact } from '../dns/checks.ts';
import type { DnsResolver } from '../dns/resolver.ts';
import type { EventBus } from '../events/bus.ts';
import { relayHostname, type ConfigStore } from '../store/config-store.ts';
import { DUMMY_HASH, verifyPassword } from '../auth/passwords.ts';
import * as policy from '../policy/verdicts.ts';
import { classifyRecipient, senderDomainOf } from '../policy/routing.ts';
import { HeaderStart, type HeaderStartVerdict } from './header-start.ts';
import { HOP_LIMIT, HopCounter } from './hops.ts';
import { LineEndingFixer } from './line-endings.ts';
import type { SpoolWriter } from '../queue/spool.ts';

/** What the front needs of the spool (relay/queue): a writer per message, and whether storage works. */
export interface SpoolLike {
  begin(): SpoolWriter;
  readonly acceptingMail: boolean;
}

export interface FrontDeps {
  config: ConfigStore;
  bus: EventBus;
  anvil: Anvil;
  resolver: DnsResolver;
  spool: SpoolLike;
  tls: { key: string; cert: string };
  now?: () => number;
  /** how long close() lets sessions in the middle of a message go on (smtp-server's closeTimeout; default 30 s) */
  stopGraceMs?: number;
}

/** Our state of one SMTP connection. */
interface Sess {
  id: string;
  ip: string;
  parsed: ParsedIp;
  key: string;
  loopback: boolean;
  /** onConnect saw it, so it is counted in the anvil and must be uncounted on close */
  counted: boolean;
  ready: boolean;
  failed: number;
  /**
   * RCPTs refused in this session only for checks.maxRecipients (452 4.5.3: "send the rest in another message"). Those
   * replies are not failed commands until there are more than RECIPIENT_OVERSHOOT of them: a client that pipelines 120
   * recipients gets 452 for the last 20 as RFC 5321 4.5.3.1.10 intends, not 421 at the tenth (Postfix's
   * smtpd_recipient_overshoot_limit, 1000, does the same).
   */
  overshoot: number;
  /** the reply about to be sent is such a 452 */
  replyIsOvershoot: boolean;
  lastCommand: string;
  authUser: string | null;
  /** the password hash the login was checked against: a login stays valid while the user keeps it */
  authHash: string | null;
  clientHostname: string | null;
  messages: number;
  /** the envelope (smtp-server makes one per transaction) in which a RCPT was sent after an accepted MAIL */
  rcptTried: object | null;
  /** NOOP, RSET, VRFY and HELP commands answered in this session (JUNK_COMMAND_LIMIT) */
  junk: number;
}

/** The private surface of SMTPConnection 3.21.6 that we use (see the header comment). */
interface ConnInternals {
  id: string;
  session: SMTPServerSession;
  remoteAddress: string;
  secure: boolean;
  hostNameAppearsAs: string | false;
  _ready: boolean;
  _closing: boolean;
  _closed: boolean;
  _unrecognizedCommands: number;
  /** set while an AUTH exchange waits for its next line */
  _nextHandler: unknown;
  /** set while STARTTLS's handshake runs (nothing may be written then) */
  _upgrading?: boolean;
  _socket: net.Socket;
  /** the message stream while DATA is under way */
  _dataStream: unknown;
  /** a command handler (ours included) has not called back yet */
  _handlerPending?: boolean;
  init(): void;
  send(code: number, data?: string | string[], context?: string | false): void;
  close(): void;
  connectionReady(next?: () => void): void;
  _setListeners(cb: () => void): void;
  _onCommand(command: Buffer, callback?: () => void): void;
  /** (the command line as smtp-server has it: a Buffer, or a string) */
  _parseAddressCommand(name: string, command: Buffer | string): { address: string; args: unknown } | false;
  on(event: string, fn: (...args: unknown[]) => void): void;
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
const AUTH_NEEDS_TLS = '5.7.11 Encryption required: use STARTTLS before AUTH.';
/** RFC 4954 4: AUTH inside a mail transaction MUST get 503 (Postfix: "MAIL transaction in progress") */
const AUTH_IN_TRANSACTION = '5.5.1 Error: MAIL transaction in progress. Send AUTH before MAIL FROM (or RSET first).';
/**
 * smtp-server's joke commands (WIZ answered 200 "Please pass, oh mighty wizard": the reply vulnerability scanners
 * look for as sendmail's old wizard backdoor, CVE-1999-0145; SHELL "This incident will be reported", which nothing
 * does; KILL "Can not kill Mom"): answered as any unknown command is
 */
const JOKE_COMMANDS = new Set(['WIZ', 'SHELL', 'KILL']);
const UNKNOWN_COMMAND = '5.5.2 Error: command not recognized';
/**
 * The reply to every VRFY (smtp-server's: "Try to send something. No promises though"). Not RFC 5321 3.5.3's "will
 * accept message and attempt delivery", which is false for an address RCPT refuses (a tryout): it says where the
 * answer is, the same for every address (no directory harvest through it)
 */
const VRFY_TEXT = '2.0.0 Cannot VRFY user; send the message, and the reply to RCPT TO says whether the address is taken';
/** DATA after every RCPT of the transaction was refused (Postfix's words; smtp-server says "need RCPT command") */
const NO_VALID_RECIPIENTS = '5.5.1 Error: no valid recipients';
/** commands that do nothing for a transaction: past JUNK_COMMAND_LIMIT in a session each counts as a failed command */
const JUNK_COMMANDS = new Set(['NOOP', 'RSET', 'VRFY', 'HELP']);
const JUNK_COMMAND_LIMIT = 100;
const ASCII = /^[\x00-\x7f]*$/;
/**
 * The domain of the address in a MAIL or RCPT command line as the client wrote it ("MAIL FROM:<x@XN--BCHER-KVA.test>
 * SIZE=5" -> "XN--BCHER-KVA.test"): after the last "@" inside the angle brackets (or of the first word after the
 * colon without them). Null when there is none.
 */
function writtenDomain(command: string): string | null {
  const colon = command.indexOf(':');
  if (colon < 0) return null;
  const rest = command.slice(colon + 1).trimStart();
  const path = rest.startsWith('<') ? rest.slice(1, rest.indexOf('>') < 0 ? undefined : rest.indexOf('>')) : rest.split(/\s/, 1)[0]!;
  const at = path.lastIndexOf('@');
  return at >= 0 && at < path.length - 1 ? path.slice(at + 1) : null;
}

/** what the Received header does not take from an EHLO name as written */
const HELO_UNSAFE = /[^A-Za-z0-9.\-_:[\]]/g;
/** the longest command line read (smtp-server's maxCommandLength, its own default; RFC 5321's 512 is too tight for long AUTH lines) */
const COMMAND_LINE_LIMIT = 16 * 1024;
const SHUTDOWN_TEXT = '4.3.2 The relay is shutting down. Try again later.';
const SHUTDOWN_CUT_TEXT = '4.3.2 The relay is shutting down and could not wait longer for this message; it was not accepted. Try again later.';
const STATE = Symbol('relay-warden-session');
/** RCPTs past checks.maxRecipients a session may send before their 452s count as failed commands (see Sess.overshoot) */
const RECIPIENT_OVERSHOOT = 1000;
/** what a refusal records beyond its verdict, so policy.simulate can replay it: the recipient, the declared SIZE */
type RejectDetail = { to?: string; declaredSize?: number | null; dns?: string; blocked?: true };

class ReplyError extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message);
  }
}

const matchers = new WeakMap<Config, GroupMatcher>();

/**
 * ESMTP parameters this relay takes (RFC 5321 4.1.1.11: an unknown one gets 555). MAIL: SIZE (RFC 1870), BODY
 * (8BITMIME), SMTPUTF8 (RFC 6531), AUTH= (RFC 4954; accepted and ignored). RET/ENVID and NOTIFY/ORCPT are DSN's, which
 * is not offered; REQUIRETLS (RFC 8689) is not offered either: the relay could not keep its promise downstream.
 */
const MAIL_PARAMS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'AUTH']);
const RCPT_PARAMS = new Set<string>();

function unsupportedParam(address: SMTPServerAddress, allowed: ReadonlySet<string>): ReplyError | null {
  const args = address.args as Record<string, unknown> | false | undefined;
  if (!args) return null;
  for (const key of Object.keys(args)) {
    if (!allowed.has(key)) return new ReplyError(555, `5.5.4 Unsupported parameter: ${key.slice(0, 40).replace(/[^\x21-\x7e]/g, '?')}.`);
  }
  return null;
}

/**
 * RFC 6531 3.4: an address with non-ASCII characters only in a transaction that declared SMTPUTF8 on its MAIL FROM
 * (Postfix: 553 5.6.7). `mail`: the MAIL FROM's address object (its args), or null when there is none yet.
 */
function needsSmtpUtf8(addr: string, mail: SMTPServerAddress | null): ReplyError | null {
  if (/^[\x00-\x7f]*$/.test(addr)) return null;
  if (declaredSmtpUtf8(mail)) return null;
  return new ReplyError(553, '5.6.7 This address has non-ASCII characters: declare SMTPUTF8 on MAIL FROM to use it.');
}

/**
 * Whether this MAIL FROM (the transaction's, once accepted) declared SMTPUTF8. Read from its own parameters, not from
 * smtp-server's session.envelope.smtpUtf8: smtp-server sets that before onMailFrom and leaves it set when the MAIL is
 * refused, so a refused "MAIL ... SMTPUTF8" would count for the next, accepted MAIL that did not declare it.
 */
function declaredSmtpUtf8(mail: SMTPServerAddress | null | false | undefined): boolean {
  const args = mail ? (mail.args as Record<string, unknown> | false | undefined) : undefined;
  return !!args && args['SMTPUTF8'] === true;
}

/** An OpenSSL error from a TLS session with a client (Node's ERR_SSL_* codes, or OpenSSL's "SSL routines" text). */
function isClientTlsError(err: Error & { code?: string; library?: string }): boolean {
  return (typeof err.code === 'string' && err.code.startsWith('ERR_SSL_')) || err.library === 'SSL routines' || /:SSL routines:/.test(err.message);
}
function matcherFor(c: Config): GroupMatcher {
  let m = matchers.get(c);
  if (!m) {
    m = new GroupMatcher(c.groups);
    matchers.set(c, m);
  }
  return m;
}

let dateSecond = -1;
let dateText = '';
/** The Received header's date; formatted once a second, not once a message. */
function rfc5322Date(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString().replace(/GMT$/, '+0000');
  }
  return dateText;
}

export class SmtpFront {
  readonly server: SMTPServer;
  private readonly deps: FrontDeps;
  private readonly now: () => number;
  /** the name the relay gives itself (greeting, EHLO, Received), as the config says now; os.hostname() when unset */
  private hostname: string;

  constructor(deps: FrontDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    const c = deps.config.current;
    this.hostname = relayHostname(c);
    this.server = new SMTPServer({
      name: this.hostname,
      banner: 'Relay Warden',
      key: deps.tls.key,
      cert: deps.tls.cert,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: true,
      // we refuse AUTH without TLS ourselves (loopback is allowed), and hide AUTH from EHLO where it is refused
      allowInsecureAuth: true,
      disableReverseLookup: true,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: true,
      // RFC 8689: a sender's REQUIRETLS asks every hop to use verified TLS; delivery here does not promise that
      hideREQUIRETLS: true,
      useXClient: false,
      useXForward: false,
      logger: false,
      // our own limit (smtp.maxConnections) is checked in init(), where the config is current
      maxClients: 0,
      socketTimeout: 120_000,
      maxCommandLength: COMMAND_LINE_LIMIT,
      closeTimeout: this.stopGraceMs,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onAuth: (auth, session, cb) => this.onAuth(auth, session, cb),
      onSecure: (_socket, session, cb) => this.onSecure(session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
      onClose: (session) => this.onClose(session),
    });
    // a client reset in mid-transaction is reported here; without a listener it would crash the process
    this.server.on('error', (err: Error & { code?: string }) => {
      if (err.code && ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNECTION', 'ERR_STREAM_DESTROYED'].includes(err.code)) return;
      // a client's failed TLS handshake (garbage after STARTTLS, a truncated ClientHello, an old protocol) is the
      // client's: any client could fill stdout with OpenSSL's lines, two per connection, with no address in them
      if (isClientTlsError(err)) return;
      // listen() rejects with it, and the relay's start says it once, with a hint
      if ((err as NodeJS.ErrnoException).syscall === 'listen') return;
      console.error(`smtp: ${err.message}`);
    });
    const server = this.server as unknown as { connect(socket: net.Socket, opts: object): void; connections: Set<unknown> };
    // smtp-server's _handleProxy (private API of 3.21.6, pinned) draws 10 random bytes per connection and turns them
    // into a session id through a BigInt. Ours is a random 50-bit prefix (drawn again every 2^30 sessions) and a
    // counter, in the same 16-character base-32 shape: ids name sessions in events, the history and Received headers;
    // they are not secrets. The setImmediate turn before the session starts is kept: without it, a client that QUITs
    // and reconnects at once often meets onConnect before the server has seen its first socket close, so the
    // concurrent-connection count (and policy.simulate's replay of it) saw two sessions where the client had one.
    let idPrefix = 0n;
    let idCounter = 0x40000000;
    (this.server as unknown as { _handleProxy(socket: net.Socket, cb: (err: Error | null, opts: object) => void): void })._handleProxy = (_socket, cb) => {
      if (idCounter === 0x40000000) {
        idPrefix = (BigInt('0x' + crypto.randomBytes(7).toString('hex')) & ((1n << 50n) - 1n)) << 30n;
        idCounter = 0;
      }
      const id = (idPrefix | BigInt(idCounter++)).toString(32).padStart(16, '0');
      setImmediate(() => cb(null, { id, ignore: false }));
    };
    server.connect = (socket, socketOptions) => {
      const conn = new SMTPConnection(this.server, socket as never, socketOptions as never) as unknown as ConnInternals;
      this.instrument(conn);
      server.connections.add(conn);
      conn.on('error', (err) => this.server.emit('error', err));
      conn.on('connect', (data) => (this.server as unknown as { _onClientConnect(d: unknown): void })._onClientConnect(data));
      conn.init();
    };
    deps.config.onChange(({ config }) => {
      this.hostname = relayHostname(config);
      this.server.options.name = this.hostname;
    });
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const s = this.server.server;
      const onError = (err: Error) => reject(err);
      s.once('error', onError);
      // the default backlog (511) stalls near 1,650 pending connections under load
      s.listen({ host, port, backlog: 8192 }, () => {
        s.off('error', onError);
        resolve();
      });
    });
    return this.server.server.address() as net.AddressInfo;
  }

  /**
   * Stop accepting; idle sessions are told 421 and closed at once, a session in the middle of a transaction may
   * finish it (then QUIT gets 221, any other command the same 421), within smtp-server's closeTimeout; then resolve.
   */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of [...this.server.connections] as unknown as ConnInternals[]) {
      const busy = Boolean(conn.session.envelope?.mailFrom) || Boolean(conn._dataStream) || Boolean(conn._handlerPending);
      if (!busy && !conn._closing && !conn._closed) conn.send(421, SHUTDOWN_TEXT, false);
    }
    return closed;
  }

  get connectionCount(): number {
    return this.server.connections.size;
  }

  /** Sessions the stop cut in the middle of a message when its grace period ran out (never acknowledged). */
  cutAtStop = 0;

  /** How long close() lets a session in the middle of a message go on. */
  get stopGraceMs(): number {
    return this.deps.stopGraceMs ?? 30_000;
  }

  // --- per-connection instrumentation (private smtp-server API, see the header) ---------------
  private instrument(conn: ConnInternals): void {
    const ip = normalizeIp(conn.remoteAddress) ?? conn.remoteAddress;
    const parsed = parseIp(ip) ?? parseIp('0.0.0.0')!;
    const c = this.deps.config.current;
    const sess: Sess = {
      id: conn.id,
      ip,
      parsed,
      key: clientKey(parsed, c.limits.ipv6Prefix),
      loopback: isLoopback(parsed),
      counted: false,
      ready: false,
      failed: 0,
      overshoot: 0,
      replyIsOvershoot: false,
      lastCommand: '',
      authUser: null,
      authHash: null,
      clientHostname: null,
      messages: 0,
      rcptTried: null,
      junk: 0,
    };
    (conn.session as unknown as Record<symbol, Sess>)[STATE] = sess;

    const origSend = conn.send.bind(conn);
    const origOnCommand = conn._onCommand.bind(conn);
    const origParse = conn._parseAddressCommand.bind(conn);
    // smtp-server turns an A-label domain into Unicode (x@xn--bcher-kva.test -> x@bücher.test): an address the client
    // wrote in ASCII, the form RFC 5890 gives a client without SMTPUTF8, then needed SMTPUTF8 (553 5.6.7) and went out
    // rewritten. What the client wrote in ASCII stays ASCII (the domain as its A-label; domains are case-insensitive)
    conn._parseAddressCommand = (name, command) => {
      const parsed = origParse(name, command);
      if (parsed && !ASCII.test(parsed.address) && ASCII.test(String(command))) {
        // the domain as written, taken from the command itself: a round trip through Unicode (domainToASCII) maps
        // some characters to others, and xn--mi7c.test (a fullwidth "a") came back as a.test, another domain (review)
        const at = parsed.address.lastIndexOf('@');
        const written = writtenDomain(String(command));
        if (at > 0 && written) parsed.address = parsed.address.slice(0, at + 1) + written;
      }
      return parsed;
    };
    const origClose = conn.close.bind(conn);

    // The session ends for our counts when smtp-server ends it (after a 421, QUIT's 221, a timeout), not when the
    // client's socket closes: smtp-server gives a client that ignores the end up to 5 s to close its side, and a
    // client refused for too many connections must not go on counting against its own IP meanwhile
    conn.close = () => {
      origClose();
      this.onClose(conn.session);
    };

    conn.init = () => {
      conn._setListeners(() => {
        const cfg = this.deps.config.current;
        if (this.server.connections.size > cfg.smtp.maxConnections) {
          const text = `4.7.0 This server has too many connections (limit ${cfg.smtp.maxConnections}). Try again in a moment.`;
          this.reject(sess, 'connect', 'smtp.maxConnections', 421, text, true);
          origSend(421, text, false);
          return;
        }
        const delay = cfg.smtp.greetingDelayMs > 0 && !this.exempt(sess, cfg) ? cfg.smtp.greetingDelayMs : 0;
        if (delay > 0) setTimeout(() => conn._closing || conn._closed || conn.connectionReady(), delay).unref();
        else conn.connectionReady();
      });
    };

    conn._onCommand = (command: Buffer, callback?: () => void) => {
      if (!conn._ready && !conn._closing) {
        const cfg = this.deps.config.current;
        const text = `5.5.0 Protocol error: ${sess.ip} sent a command before the greeting. Wait for the 220 greeting.`;
        this.reject(sess, 'connect', 'smtp.greetingDelayMs', 554, text, true);
        origSend(554, text, false);
        conn.close();
        return;
      }
      // a continuation line of an AUTH exchange is a credential, not a command: never keep it as lastCommand
      if (!conn._nextHandler) sess.lastCommand = (command || '').toString().split(' ', 1)[0]!.toUpperCase();
      if (!conn._nextHandler && JOKE_COMMANDS.has(sess.lastCommand)) {
        conn.send(500, UNKNOWN_COMMAND);
        callback?.();
        return;
      }
      if (sess.lastCommand === 'AUTH' && !conn._nextHandler && conn.session.envelope?.mailFrom) {
        // (smtp-server allows it: the MAIL was judged as an anonymous client's, its RCPTs would be judged as the
        // login's, relaying included)
        conn.send(503, AUTH_IN_TRANSACTION);
        callback?.();
        return;
      }
      if (sess.lastCommand === 'RCPT' && !conn._nextHandler && conn.session.envelope?.mailFrom) sess.rcptTried = conn.session.envelope;
      if (sess.lastCommand === 'AUTH' && !conn._nextHandler && !conn.secure && !sess.loopback) {
        // smtp-server (allowInsecureAuth, which loopback needs) would prompt for AUTH LOGIN's user name and
        // password before onAuth could refuse: refuse here, before the client sends a credential in clear
        conn.send(538, AUTH_NEEDS_TLS);
        callback?.();
        return;
      }
      // our checks.maxFailedCommands replaces smtp-server's hard-coded limit of 10 unrecognised commands
      conn._unrecognizedCommands = 0;
      const srv = this.server as unknown as { _closeTimeout: unknown };
      if (srv._closeTimeout && sess.lastCommand === 'QUIT' && !conn.session.envelope?.mailFrom && !conn._nextHandler && !conn._upgrading && !conn._closing) {
        // stopping, and this session's transaction (if it had one) is over: QUIT gets its 221 (RFC 5321 4.1.1.10);
        // any other command gets smtp-server's 421, which conn.send below words as the idle sessions' one
        origSend(221, '2.0.0 Bye', false);
        conn.close();
        callback?.();
        return;
      }
      if (srv._closeTimeout && conn.session.envelope?.mailFrom) {
        // stopping: smtp-server answers every command with 421 once close() ran; a transaction already under
        // way may finish (SPEC 1), so hide the flag from its synchronous check for this session's commands
        const saved = srv._closeTimeout;
        srv._closeTimeout = null;
        try {
          origOnCommand(command, callback);
        } finally {
          srv._closeTimeout = saved;
        }
        return;
      }
      origOnCommand(command, callback);
    };

    conn.send = (code: number, data?: string | string[], context?: string | false) => {
      if (code === 220) sess.ready = true;
      if (code === 421 && data === 'Server shutting down') {
        // smtp-server's 421 while stopping, in our words: to a command after the session's transaction, and at the end
        // of the grace period (closeTimeout) to the sessions still open; one cut in the middle of a message is counted
        // (its sender was not told 250: it will try again)
        const midMessage = Boolean(conn.session.envelope?.mailFrom) || Boolean(conn._dataStream);
        if (midMessage) this.cutAtStop++;
        data = midMessage ? SHUTDOWN_CUT_TEXT : SHUTDOWN_TEXT;
        context = false;
      }
      if (code === 421 && data === 'Error: Command line too long') {
        // smtp-server's parser gave up on a line longer than its maxCommandLength (16 KiB by default; RFC 5321 4.5.3.1.4
        // asks for 512 octets); its own words carry 4.4.2 (a bad connection): ours say what was wrong, and the limit
        data = `4.5.0 Protocol error: a command line longer than ${COMMAND_LINE_LIMIT} bytes. Closing the connection.`;
        context = false;
      }
      if (code === 252 && sess.lastCommand === 'VRFY') {
        data = VRFY_TEXT;
        context = false;
      }
      if (code === 503 && sess.lastCommand === 'DATA' && data === 'Error: need RCPT command' && sess.rcptTried === conn.session.envelope && conn.session.envelope?.mailFrom) {
        // every RCPT of this transaction was refused: it did send RCPT (RFC 2920 3.1: a pipelining client learns from
        // this reply that no recipient is left)
        code = 554;
        data = NO_VALID_RECIPIENTS;
        context = false;
      }
      if (code === 250 && (sess.lastCommand === 'EHLO' || sess.lastCommand === 'HELO' || sess.lastCommand === 'LHLO') && conn.hostNameAppearsAs) {
        this.deps.bus.emit({ kind: 'helo', sessionId: sess.id, ip: sess.ip, name: conn.hostNameAppearsAs });
      }
      if (typeof data === 'string' && ENHANCED.test(data)) context = false;
      if (code === 250 && Array.isArray(data) && (sess.lastCommand === 'EHLO' || sess.lastCommand === 'LHLO')) {
        data = this.ehloFeatures(sess, conn.secure, data);
      }
      const overshoot = sess.replyIsOvershoot;
      sess.replyIsOvershoot = false;
      // a failed command; or, past JUNK_COMMAND_LIMIT since the session's last accepted message, a NOOP, RSET, VRFY or
      // HELP (as Postfix's smtpd_junk_command_limit: without it a client held its session, and one of its IP's
      // connection slots, for as long as it sent one every couple of minutes). Both counts start again at each
      // accepted message (onData), as Postfix forgives them: a client that sends RSET after each of its messages on a
      // kept-alive connection is not cut off at its 110th
      const junk = code < 400 && JUNK_COMMANDS.has(sess.lastCommand) && ++sess.junk > JUNK_COMMAND_LIMIT;
      const failed = code >= 400 ? code !== 421 && !(overshoot && code === 452) : junk;
      if (failed && sess.ready && !conn._closing) {
        sess.failed++;
        const cfg = this.deps.config.current;
        const [verdict] = policy.failedCommandLimit(cfg, sess.failed, junk ? { limit: JUNK_COMMAND_LIMIT } : undefined);
        if (verdict && (verdict.mode === 'enforce' || sess.failed === cfg.checks.maxFailedCommands.max)) {
          this.reject(sess, verdict.stage, verdict.rule, verdict.code, verdict.text, verdict.mode === 'enforce');
          if (verdict.mode === 'enforce') {
            origSend(421, verdict.text, false);
            return;
          }
        }
      }
      origSend(code, data, context);
    };
  }

  private ehloFeatures(sess: Sess, secure: boolean, lines: string[]): string[] {
    const cfg = this.deps.config.current;
    let out = lines;
    if (!secure && !sess.loopback) out = out.filter((l) => !l.startsWith('AUTH '));
    if (cfg.checks.maxMessageSize.mode === 'enforce') out = [...out, `SIZE ${cfg.checks.maxMessageSize.maxBytes}`];
    return out;
  }

  // --- helpers -----------------------------------------------------------------------------
  private sess(session: SMTPServerSession): Sess {
    return (session as unknown as Record<symbol, Sess>)[STATE]!;
  }

  private exempt(sess: Sess, cfg: Config): boolean {
    return matcherFor(cfg).inAny(sess.parsed, cfg.limits.exemptGroups, this.now());
  }

  private mayRelay(sess: Sess, cfg: Config): boolean {
    return sess.authUser !== null || matcherFor(cfg).inAny(sess.parsed, cfg.relay.allowGroups, this.now());
  }

  /**
   * A session logged in as a user who has since been removed (`user remove`) or given a new password (`user set`) is
   * ended at its next MAIL or RCPT, or at the end of the message it is sending (which is then not queued): a stolen
   * account stops relaying when the admin removes it, not when the thief disconnects. Returns the 421 to answer, or
   * null while the login stands.
   */
  private loginWithdrawn(sess: Sess, cfg: Config, stage: Stage): ReplyError | null {
    if (sess.authUser === null) return null;
    const user = Object.prototype.hasOwnProperty.call(cfg.users, sess.authUser) ? cfg.users[sess.authUser] : undefined;
    if (user && user.passwordHash === sess.authHash) return null;
    const text = `4.7.0 The login as "${sess.authUser}" is no longer valid: the user was ${user ? 'given a new password' : 'removed'} since. Connect again and log in.`;
    sess.authUser = null;
    sess.authHash = null;
    this.reject(sess, stage, 'relay.access', 421, text, true);
    return new ReplyError(421, text);
  }

  /**
   * The recipients of a transaction so far, lower-cased, as smtp-server keys them: one set per envelope list (a new
   * transaction gets a new list), made the first time a transaction reaches checks.maxRecipients, so a repeat past the
   * limit (monitor mode lets the list grow) is found without scanning the list at every RCPT.
   */
  private readonly rcptKeys = new WeakMap<object, Set<string>>();
  private rcptKeysOf(list: readonly { address: string }[]): Set<string> {
    let keys = this.rcptKeys.get(list);
    if (!keys) this.rcptKeys.set(list, (keys = new Set(list.map((r) => r.address.toLowerCase()))));
    return keys;
  }

  private reject(sess: Sess, stage: Stage, rule: Rule, code: number, text: string, enforced: boolean, detail: RejectDetail = {}): void {
    this.deps.bus.emit({ kind: 'rejected', sessionId: sess.id, ip: sess.ip, stage, rule, code, text, enforced, ...detail });
    this.deps.anvil.recordRejection(sess.key, { at: this.now(), rule, code, text, enforced });
  }

  /**
   * Apply verdicts in order: monitor ones are reported and passed; the first enforced one is returned
   * as the error to answer with (and its side effects, block and close, are applied).
   */
  private decide(sess: Sess, verdicts: policy.Verdict[], detail: RejectDetail = {}): ReplyError | null {
    for (const v of verdicts) {
      // (the verdict's own facts for the record: a DNS failure as the relay saw it, a refusal by a block)
      const facts = v.dns || v.blocked ? { ...detail, dns: v.dns, blocked: v.blocked } : detail;
      this.reject(sess, v.stage, v.rule, v.code, v.text, v.mode === 'enforce', facts);
      if (v.mode !== 'enforce') continue;
      if (v.blockMinutes) this.deps.anvil.block(sess.key, policy.blockOf(v.rule, v.blockMinutes, this.now()));
      return new ReplyError(v.close ? 421 : v.code, v.text);
    }
    return null;
  }

  /**
   * A block set while this session was open, by another session of the same client (policy.blockedNow): refused and
   * closed at its next AUTH, MAIL FROM or RCPT TO, as a new connection is at connect.
   */
  private stillBlocked(sess: Sess, cfg: Config, stage: 'auth' | 'mail' | 'rcpt', detail: RejectDetail = {}): ReplyError | null {
    const block = this.deps.anvil.blocked(sess.key);
    if (!block) return null;
    return this.decide(sess, policy.blockedNow(cfg, { ip: sess.ip, exempt: this.exempt(sess, cfg), block }, stage), detail);
  }

  // --- SMTP stages -------------------------------------------------------------------------
  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const sess = this.sess(session);
    const cfg = this.deps.config.current;
    sess.key = clientKey(sess.parsed, cfg.limits.ipv6Prefix);
    sess.counted = true;
    const connections = this.deps.anvil.connectionOpened(sess.key);
    this.deps.bus.emit({ kind: 'connect', sessionId: sess.id, ip: sess.ip, port: session.remotePort });
    const err = this.decide(sess, policy.atConnect(cfg, {
      ip: sess.ip,
      exempt: this.exempt(sess, cfg),
      connections,
      block: this.deps.anvil.blocked(sess.key),
    }));
    cb(err);
  }

  private onClose(session: SMTPServerSession): void {
    const sess = this.sess(session);
    if (!sess?.counted) return;
    sess.counted = false;
    this.deps.anvil.connectionClosed(sess.key);
    this.deps.bus.emit({ kind: 'disconnect', sessionId: sess.id, ip: sess.ip, messages: sess.messages });
  }

  /**
   * After STARTTLS: RFC 3207 4.2 says to forget what the client said before TLS. smtp-server drops its
   * session.user and EHLO name; our own record of the login must go too, or a login made in clear (by whoever
   * could inject it before the handshake) would still let the TLS session relay.
   */
  private onSecure(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const sess = this.sess(session);
    if (sess) {
      sess.authUser = null;
      sess.authHash = null;
    }
    cb();
  }

  private onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    cb: (err: Error | null | undefined, response?: { user?: unknown }) => void,
  ): void {
    const sess = this.sess(session);
    if (!session.secure && !sess.loopback) {
      cb(new ReplyError(538, AUTH_NEEDS_TLS));
      return;
    }
    const username = String(auth.username ?? '');
    const cfg = this.deps.config.current;
    const blocked = this.stillBlocked(sess, cfg, 'auth');
    if (blocked) {
      cb(blocked);
      return;
    }
    const user = Object.prototype.hasOwnProperty.call(cfg.users, username) ? cfg.users[username] : undefined;
    verifyPassword(String(auth.password ?? ''), user?.passwordHash ?? DUMMY_HASH).then(
      (ok) => {
        const cfgNow = this.deps.config.current;
        if (ok && user) {
          sess.authUser = username;
          sess.authHash = user.passwordHash;
          this.deps.bus.emit({ kind: 'auth', sessionId: sess.id, ip: sess.ip, user: username, success: true, method: auth.method });
          cb(null, { user: username });
          return;
        }
        this.deps.bus.emit({ kind: 'auth', sessionId: sess.id, ip: sess.ip, user: username.slice(0, 128), success: false, method: auth.method });
        const failures = this.deps.anvil.authFailure(sess.key);
        const err = this.decide(sess, policy.authFailureLimit(cfgNow, { ip: sess.ip, exempt: this.exempt(sess, cfgNow), failuresInWindow: failures }));
        cb(err ?? new ReplyError(535, '5.7.8 Authentication failed: wrong user name or password.'));
      },
      (e: Error) => cb(new ReplyError(454, `4.7.0 Temporary authentication failure (${e.message}). Try again later.`)),
    );
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const sess = this.sess(session);
    const cfg = this.deps.config.current;
    if (!this.deps.spool.acceptingMail) {
      const text = '4.3.1 Insufficient system storage: the relay cannot store mail right now. Try again later.';
      this.reject(sess, 'mail', 'storage', 452, text, true);
      cb(new ReplyError(452, text));
      return;
    }
    const blocked = this.stillBlocked(sess, cfg, 'mail');
    if (blocked) {
      cb(blocked);
      return;
    }
    const withdrawn = this.loginWithdrawn(sess, cfg, 'mail');
    if (withdrawn) {
      cb(withdrawn);
      return;
    }
    const paramErr = unsupportedParam(address, MAIL_PARAMS) ?? needsSmtpUtf8(address.address, address);
    if (paramErr) {
      cb(paramErr);
      return;
    }
    const from = address.address || '';
    const senderDomain = senderDomainOf(from);
    const dnsExempt = this.mayRelay(sess, cfg);
    const needs = policy.mailNeeds(cfg, { dnsExempt, senderDomain });
    const sizeArg = address.args ? (address.args as Record<string, string | undefined>)['SIZE'] : undefined;
    const declaredSize = sizeArg !== undefined && /^\d{1,20}$/.test(sizeArg) ? Number(sizeArg) : null;
    const finish = (reverseDnsFact: ReverseDnsFact | null, senderDomainFact: SenderDomainFact | null) => {
      const cfgNow = this.deps.config.current;
      const err = this.decide(sess, policy.atMailFrom(cfgNow, {
        ip: sess.ip,
        exempt: this.exempt(sess, cfgNow),
        dnsExempt,
        messagesLastHour: this.deps.anvil.messagesLastHour(sess.key),
        declaredSize,
        senderDomain,
        senderDomainFact,
        reverseDnsFact,
      }), { declaredSize });
      if (!err) this.deps.bus.emit({ kind: 'mail', sessionId: sess.id, ip: sess.ip, from, declaredSize });
      cb(err);
    };
    if (!needs.reverseDns && !needs.senderDomain) {
      finish(null, null);
      return;
    }
    Promise.all([
      // (with the name the Received header gives the client: its PTR name only once that name points back to it)
      needs.reverseDns ? checkReverseDns(this.deps.resolver, sess.ip, true) : null,
      needs.senderDomain ? checkSenderDomain(this.deps.resolver, senderDomain!) : null,
    ]).then(
      ([rd, sd]) => {
        if (rd?.result === 'ok') sess.clientHostname = rd.confirmed ?? null;
        finish(rd, sd);
      },
      (e: Error) => cb(new ReplyError(451, `4.4.3 DNS lookup failed (${e.message}). Try again later.`)),
    );
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const sess = this.sess(session);
    const cfg = this.deps.config.current;
    const withdrawn = this.loginWithdrawn(sess, cfg, 'rcpt');
    if (withdrawn) {
      cb(withdrawn);
      return;
    }
    const paramErr = unsupportedParam(address, RCPT_PARAMS) ?? needsSmtpUtf8(address.address, session.envelope.mailFrom || null);
    if (paramErr) {
      cb(paramErr);
      return;
    }
    const route = classifyRecipient(cfg, address.address);
    if (route.kind === 'invalid') {
      cb(new ReplyError(501, `5.1.3 Bad recipient address: ${route.why}.`));
      return;
    }
    const to = route.kind === 'trick' ? address.address : route.address;
    const blocked = this.stillBlocked(sess, cfg, 'rcpt', { to });
    if (blocked) {
      cb(blocked);
      return;
    }
    // a recipient written again (in any case) replaces its earlier entry (smtp-server): it adds none. Looked up only
    // at the limit (the set is built then, and kept up to date from there on)
    const key = address.address.toLowerCase();
    const over = policy.tooManyRecipients(cfg, session.envelope.rcptTo.length);
    const tooMany = over.length === 0 || this.rcptKeysOf(session.envelope.rcptTo).has(key) ? null : this.decide(sess, over, { to });
    if (tooMany) {
      if ((tooMany as ReplyError).responseCode === 452) {
        sess.overshoot++;
        sess.replyIsOvershoot = sess.overshoot <= RECIPIENT_OVERSHOOT;
      }
      cb(tooMany);
      return;
    }
    const mayRelay = this.mayRelay(sess, cfg);
    if ((route.kind === 'relay' || route.kind === 'trick') && !mayRelay) {
      const why = route.kind === 'trick'
        ? `the address uses ${route.why}, which this relay does not route for unauthenticated clients`
        : `${route.domain} is not a local domain, and ${sess.ip} has not authenticated and is not in an allowed group`;
      const text = `5.7.1 Relay access denied: ${why}.`;
      this.reject(sess, 'rcpt', 'relay.access', 554, text, true, { to });
      cb(new ReplyError(554, text));
      return;
    }
    if (route.kind === 'local' && !route.known) {
      const text = `5.1.1 <${route.address}>: no such recipient here. Check the address.`;
      const exempt = this.exempt(sess, cfg);
      const unknownLastHour = exempt ? 0 : this.deps.anvil.unknownRecipient(sess.key);
      const limitErr = this.decide(sess, policy.unknownRecipientLimit(cfg, { ip: sess.ip, exempt, unknownLastHour }), { to });
      // the recipient that reaches the limit gets the limit's 421, not a 550: one event for the reply that was sent
      // (both were recorded, and Live traffic and the per-rule counts showed a 550 nobody got)
      if (!limitErr) this.reject(sess, 'rcpt', 'recipient.unknown', 550, text, true, { to });
      cb(limitErr ?? new ReplyError(550, text));
      return;
    }
    this.deps.bus.emit({ kind: 'rcpt', sessionId: sess.id, ip: sess.ip, to, local: route.kind === 'local' });
    this.rcptKeys.get(session.envelope.rcptTo)?.add(key);
    cb();
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    const sess = this.sess(session);
    const cfg = this.deps.config.current;
    const now = this.now();
    const writer = this.deps.spool.begin();
    const fixer = new LineEndingFixer();
    const hops = new HopCounter();
    // the size rule as it stood when DATA began: the whole message is judged by it
    const sizeRule = cfg.checks.maxMessageSize;
    let size = 0;
    let stopWriting = false;
    let done = false;
    // kept by the config listener: no os.hostname() call per message
    const name = this.hostname;
    // (as the client wrote it, but only characters of a host name or address literal: a ';' would end the header's
    // tokens early for a parser looking for its date, a '(' open a comment, 8-bit bytes go into a 7-bit header; as
    // Postfix's printable(), each such character is a '?')
    const helo = session.hostNameAppearsAs ? session.hostNameAppearsAs.replace(HELO_UNSAFE, '?') : 'unknown';
    // RFC 6531 3.7.3: a transaction that declared SMTPUTF8 is "UTF8SMTP" (UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA) in the
    // Received header's "with" clause, in place of ESMTP
    const baseProto = session.transmissionType || 'ESMTP';
    const proto = declaredSmtpUtf8(session.envelope.mailFrom) ? baseProto.replace(/^ESMTP/, 'UTF8SMTP') : baseProto;
    // a bare <postmaster> is queued as the address it was accepted for (postmaster@ the first local domain): the queue
    // would route "postmaster" as a domain of its own and bounce it. Mapped here, not at RCPT: smtp-server keys its
    // merging of repeated recipients (any case; the last form written is kept) on the text the client sent. Once each:
    // <postmaster> and <postmaster@first-domain> in one envelope are one mailbox. Without a bare address (nearly every
    // message) smtp-server's list is already one entry per mailbox
    let rcpts = session.envelope.rcptTo.map((r) => r.address);
    if (rcpts.some((a) => !a.includes('@'))) {
      const byKey = new Map<string, string>();
      for (const a of rcpts) {
        const route = a.includes('@') ? null : classifyRecipient(cfg, a);
        const queued = route?.kind === 'local' ? route.address : a;
        if (!byKey.has(queued.toLowerCase())) byKey.set(queued.toLowerCase(), queued);
      }
      rcpts = [...byKey.values()];
    }
    // an IPv6 client as RFC 5321's address literal, [IPv6:2001:db8::1]
    const received =
      `Received: from ${helo} (${sess.clientHostname ?? 'unknown'} [${sess.parsed.family === 6 ? 'IPv6:' : ''}${sess.ip}])\r\n` +
      `\tby ${name} (Relay Warden) with ${proto} id ${sess.id}${rcpts.length === 1 ? `\r\n\tfor <${rcpts[0]}>` : ''};\r\n` +
      `\t${rfc5322Date(now)}\r\n`;
    // the Received: field goes out once the first octets tell whether the client sent a header section (HeaderStart);
    // until then the data (line ends already fixed) is held here
    let start: HeaderStart | null = new HeaderStart();
    let held: Buffer[] = [];
    let countHops = true;
    const begin = (verdict: HeaderStartVerdict) => {
      start = null;
      // no header section: the empty line that ends the relay's own, the client's text its body
      writer.write(Buffer.from(verdict === 'body' ? `${received}\r\n` : received));
      for (const b of held) writer.write(b);
      held = [];
    };
    const finish = (err: Error | null, message?: string) => {
      if (done) return;
      done = true;
      cb(err, message);
    };
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (stopWriting) return; // keep draining: the reply comes at the end of DATA
      if (sizeRule.mode === 'enforce' && size > sizeRule.maxBytes) {
        stopWriting = true;
        return;
      }
      const fixed = fixer.push(chunk);
      const verdict = start ? start.push(chunk) : null;
      if (verdict === 'body') countHops = false;
      // (an undecided chunk holds no line end: nothing the hop counter could count is lost by reading it now)
      if (countHops) hops.push(chunk);
      if (start) {
        if (verdict === null) {
          held.push(fixed);
          return;
        }
        begin(verdict);
      }
      writer.write(fixed);
    });
    stream.on('error', () => {
      // the client went away mid-DATA: nothing was acknowledged, leave no orphan in the spool
      done = true;
      void writer.abort();
    });
    stream.on('close', () => {
      if (!done && !stream.readableEnded) {
        done = true;
        void writer.abort();
      }
    });
    stream.on('end', () => {
      const cfgNow = this.deps.config.current;
      // a login withdrawn since RCPT (the user removed while the message came in): nothing is queued
      const withdrawn = this.loginWithdrawn(sess, cfgNow, 'data');
      if (withdrawn) {
        void writer.abort();
        finish(withdrawn);
        return;
      }
      const tooBig = this.decide(sess, policy.messageTooBig(sizeRule, size));
      if (tooBig) {
        void writer.abort();
        finish(new ReplyError(552, tooBig.message));
        return;
      }
      if (start) begin(start.end());
      writer.write(fixer.end());
      if (fixer.sawBare) {
        const bare = this.decide(sess, policy.bareLineEnding(cfgNow));
        if (bare) {
          void writer.abort();
          finish(bare);
          return;
        }
      }
      if (hops.tooMany) {
        // a mail loop (RFC 5321 6.3): refused, not queued to go round again (HopCounter)
        const text = `5.4.6 Too many hops: this message has passed ${hops.count} mail servers (the limit is ${HOP_LIMIT}); it is probably in a mail loop. Check where its domain's mail is sent.`;
        this.reject(sess, 'data', 'protocol', 554, text, true);
        void writer.abort();
        finish(new ReplyError(554, text));
        return;
      }
      const mailArgs = (session.envelope.mailFrom ? session.envelope.mailFrom.args : false) || ({} as Record<string, unknown>);
      writer
        .commit({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address || '' : '',
          to: rcpts,
          sessionId: sess.id,
          clientIp: sess.ip,
          clientHostname: sess.clientHostname,
          helo,
          authUser: sess.authUser,
          receivedAt: now,
          // what the MAIL itself declared (its own args, as declaredSmtpUtf8 reads them; smtp-server's envelope flags
          // can outlive a refused MAIL), for delivery to declare again: BODY=8BITMIME (RFC 6152; 7BIT is the default,
          // nothing to record) and SMTPUTF8 (RFC 6531)
          ...(/^8bitmime$/i.test(String(mailArgs['BODY'] ?? '')) ? { body8bit: true as const } : {}),
          ...(declaredSmtpUtf8(session.envelope.mailFrom) ? { smtpUtf8: true as const } : {}),
        })
        .then(
          ({ id, size: stored }) => {
            this.deps.anvil.messageAccepted(sess.key);
            sess.messages++;
            // (a message accepted forgives the session's failed and junk commands so far, as Postfix does)
            sess.failed = 0;
            sess.junk = 0;
            this.deps.bus.emit({
              kind: 'accepted', sessionId: sess.id, ip: sess.ip, queueId: id, size: stored,
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address || '' : '', to: rcpts,
            });
            finish(null, `2.0.0 Ok: queued as ${id}`);
          },
          (e: Error & { code?: string }) => {
            const text = `4.3.1 Insufficient system storage: the message could not be stored (${e.code ?? e.message}). Try again later.`;
            this.reject(sess, 'data', 'storage', 452, text, true);
            finish(new ReplyError(452, text));
          },
        );
    });
  }
}
