/**
 * Open a wss connection to a relay with SSH-style certificate pinning. TLS verification is off (the relay's
 * certificate is self-signed); instead the peer certificate's SHA-256 fingerprint is compared on
 * secureConnect, and only then is the HTTP upgrade request finished (ws's finishRequest), so nothing at all
 * (not the upgrade, not the token) leaves before the pin matches.
 */
import type { ClientRequest } from 'node:http';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { MAX_FRAME_BYTES } from '../../shared/protocol.ts';
import type { CertificateInfo } from '../../shared/console-api.ts';

export class PinError extends Error {
  constructor(
    readonly kind: 'unknown' | 'mismatch',
    readonly certificate: CertificateInfo,
    readonly pinned: string | null,
  ) {
    super(
      kind === 'unknown'
        ? `The relay presented a certificate this console has not seen before (SHA-256 ${certificate.fingerprint256}). Compare it with the fingerprint the relay printed at start, then accept it.`
        : `The relay's certificate CHANGED: it now presents SHA-256 ${certificate.fingerprint256}, but ${pinned} was accepted before. This can be an attack; nothing was sent. If the certificate was replaced on purpose, forget the old fingerprint and connect again.`,
    );
    this.name = 'PinError';
  }
}

/**
 * Something answers at host:port, but not in TLS: another service, most often the relay's own SMTP port typed in place
 * of its management port. Retrying cannot help (the address is wrong), so the connection stops and says so. Only a
 * greeting that names SMTP makes it "an SMTP port": an FTP server greets "220" too.
 */
export class NotTlsError extends Error {
  constructor(
    readonly address: string,
    /** the first line the peer sent by itself (an SMTP or FTP server greets first), if any */
    readonly greeting: string | null,
  ) {
    super(
      isSmtpGreeting(greeting)
        ? `${address} is an SMTP port, not the relay's management port: it greeted "${greeting}" instead of speaking TLS. ${MANAGEMENT_PORT}`
        : greeting !== null
          ? `${address} does not speak TLS: another plain-text service answers there, not the relay; its first line was "${greeting}". ${MANAGEMENT_PORT}`
          : `${address} does not speak TLS: is it the relay's SMTP port? ${MANAGEMENT_PORT}`,
    );
    this.name = 'NotTlsError';
  }
}

const MANAGEMENT_PORT = 'The management port is manage.listen in config.json (8465 by default).';

/**
 * An SMTP server's greeting: "220", then text naming the protocol, as every SMTP server's does ("220 mx.example.net
 * ESMTP Postfix", the relay's own "220 host ESMTP Relay Warden"). A bare "220" is not enough: FTP servers greet with it
 * too ("220 ProFTPD Server ready").
 */
export function isSmtpGreeting(line: string | null): boolean {
  return line !== null && /^220(?:[ -]|$)/.test(line) && /(?:^|[^a-z0-9])e?smtp(?:[^a-z0-9]|$)/i.test(line.slice(3));
}

/**
 * The TLS library's reasons for "the bytes that came back are not a TLS record": the peer speaks something else. Node
 * turns the library's reason text into the error's code ("ERR_SSL_" + the reason, upper case, spaces as "_"), and puts
 * the text itself in its reason and message. OpenSSL (Node) writes "wrong version number" (ERR_SSL_WRONG_VERSION_NUMBER,
 * message "...:SSL routines:ssl3_get_record:wrong version number:..."); BoringSSL (Electron) writes the macro's name,
 * "WRONG_VERSION_NUMBER" ("...:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:.../tls_record.cc:..."), and an
 * error that surfaces on a write carries code EPROTO with the reason in its message only. BoringSSL's client reports a
 * plain-text peer as WRONG_VERSION_NUMBER (its record layer checks the version byte first); OpenSSL may also say
 * "packet length too long", and either names an HTTP request or proxy request when it sees one.
 */
const NOT_TLS_REASONS = ['WRONG_VERSION_NUMBER', 'PACKET_LENGTH_TOO_LONG', 'HTTP_REQUEST', 'HTTPS_PROXY_REQUEST', 'UNKNOWN_PROTOCOL'];

/** one spelling for both libraries: "wrong version number", "WRONG_VERSION_NUMBER", "ERR_SSL_WRONG_VERSION_NUMBER" -> WRONG_VERSION_NUMBER */
const reasonKey = (text: string): string => text.trim().toUpperCase().replace(/[\s-]+/g, '_').replace(/^(?:ERR_SSL_|SSL_R_)/, '');

/**
 * Whether a connection error says the peer does not speak TLS, under OpenSSL (Node) or BoringSSL (Electron): by its
 * code, its reason, or the reason in its message (an EPROTO write error carries it there only).
 */
export function isNotTlsError(err: { code?: unknown; reason?: unknown; message?: unknown }): boolean {
  const said = [err.code, err.reason].filter((x): x is string => typeof x === 'string').map(reasonKey);
  if (said.some((k) => NOT_TLS_REASONS.includes(k))) return true;
  if (typeof err.message !== 'string') return false;
  // the message's SSL reason, whatever the library's layout (each reason as a whole word, not inside another)
  const words = err.message.toUpperCase().replace(/[ -]+/g, '_');
  return NOT_TLS_REASONS.some((r) => new RegExp(`(?:^|[^A-Z0-9_])(?:ERR_SSL_|SSL_R_)?${r}(?:[^A-Z0-9_]|$)`).test(words));
}

/**
 * What the peer at host:port says by itself on a plain TCP connection, within waitMs: its first line (printable
 * characters only, at most 100), or null when it says nothing (a web server waits for a request). An SMTP server
 * greets at once; it is told QUIT so that it closes cleanly. Anything else is only hung up on: nothing is said to a
 * service whose protocol is not known.
 */
export function firstLine(host: string, port: number, waitMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    let got = '';
    let done = false;
    const sock = net.connect({ host, port });
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const line = got.split(/\r?\n/)[0]!.replace(/[^\x20-\x7e]/g, '').trim().slice(0, 100);
      if (isSmtpGreeting(line)) {
        sock.end('QUIT\r\n');
        // a server that does not hang up after QUIT is not waited for
        setTimeout(() => sock.destroy(), 1000).unref();
      } else sock.destroy();
      resolve(line || null);
    };
    const timer = setTimeout(finish, waitMs);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      got += d;
      if (got.includes('\n') || got.length >= 512) finish();
    });
    sock.on('error', finish);
    sock.on('close', finish);
  });
}

/** OpenSSL's error text without its source location: "SSL routines:ssl3_get_record:wrong version number" -> "wrong version number" */
function sslReason(message: string): string {
  return /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1]?.trim() ?? message.split('\n')[0]!.slice(0, 200);
}

function describe(sock: TLSSocket): CertificateInfo | null {
  const c = sock.getPeerCertificate();
  if (!c || !c.fingerprint256) return null;
  const name = (x: unknown) =>
    x && typeof x === 'object' ? Object.entries(x as Record<string, string | string[]>).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(', ') : '';
  return { fingerprint256: c.fingerprint256, subject: name(c.subject), issuer: name(c.issuer), validFrom: c.valid_from, validTo: c.valid_to };
}

export interface PinnedOptions {
  host: string;
  port: number;
  /** the accepted fingerprint, or null on first contact */
  pinned: string | null;
  /** a fingerprint the user just accepted for this attempt (the first-contact prompt's answer); ignored when `pinned` is set */
  accept?: string | null;
  timeoutMs?: number;
}

/** Resolves with an open WebSocket once the pin matched and the upgrade succeeded. */
export function openPinned(opts: PinnedOptions): Promise<{ ws: WebSocket; certificate: CertificateInfo }> {
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return new Promise((resolve, reject) => {
    let certificate: CertificateInfo | null = null;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        ws.terminate();
      } catch {
        // not open yet
      }
      reject(err);
    };
    const ws = new WebSocket(`wss://${host}:${opts.port}/`, {
      rejectUnauthorized: false,
      maxPayload: MAX_FRAME_BYTES * 16,
      handshakeTimeout: opts.timeoutMs ?? 10_000,
      perMessageDeflate: false,
      finishRequest: (req: ClientRequest) => {
        req.on('socket', (socket) => {
          const tlsSock = socket as TLSSocket;
          const check = () => {
            const info = describe(tlsSock);
            if (!info) {
              req.destroy(new Error('the relay presented no certificate'));
              return;
            }
            certificate = info;
            const fp = info.fingerprint256.toUpperCase();
            // an existing pin is the only certificate accepted: `accept` answers the first-contact prompt and never
            // replaces a pin (forgetting the pin first is the only way to another certificate, as with SSH)
            const wanted = (opts.pinned ?? opts.accept)?.toUpperCase() ?? null;
            if (wanted === fp) {
              req.end();
              return;
            }
            const err = new PinError(opts.pinned && opts.pinned.toUpperCase() !== fp ? 'mismatch' : 'unknown', info, opts.pinned);
            fail(err);
            req.destroy(err);
          };
          tlsSock.once('secureConnect', check);
        });
      },
    });
    const timer = setTimeout(() => fail(new Error(`no answer from ${host}:${opts.port} within ${opts.timeoutMs ?? 10_000} ms`)), (opts.timeoutMs ?? 10_000) + 1000);
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ws, certificate: certificate! });
    });
    ws.once('error', (err: Error & { code?: string }) => {
      if (settled) return;
      if (isNotTlsError(err)) {
        // say what answers there instead (an SMTP greeting names the mistake); the probe is bounded by its own wait
        clearTimeout(timer);
        void firstLine(opts.host, opts.port).then((line) => fail(new NotTlsError(`${host}:${opts.port}`, line)));
        return;
      }
      const hint =
        err.code === 'ECONNREFUSED' ? `nothing listens on ${host}:${opts.port}; is the relay running, and is manage.listen that address?`
          : err.code === 'ENOTFOUND' ? `the host name ${opts.host} is not known`
            : err.code === 'ETIMEDOUT' ? `${host}:${opts.port} did not answer (firewall?)`
              : err.code?.startsWith('ERR_SSL_') ? `the TLS handshake with ${host}:${opts.port} failed (${sslReason(err.message)})` : err.message;
      // (brief: the fact without the configuration hint, for a console that reached this relay a moment ago: the
      // relay stopped, its address did not change)
      const brief = err.code === 'ECONNREFUSED' ? `nothing listens on ${host}:${opts.port}` : hint;
      fail(err instanceof PinError ? err : Object.assign(new Error(hint), { code: err.code, brief }));
    });
    ws.once('unexpected-response', (_req, res) => fail(new Error(`the relay answered HTTP ${res.statusCode} instead of a WebSocket upgrade`)));
  });
}
