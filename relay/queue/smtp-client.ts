/**
 * One SMTP delivery of one message to one address, with nodemailer's SMTPConnection carrying the bytes unchanged
 * (explicit envelope, the stored message as the data stream, no pool, no requeue: the queue owns retries).
 *
 * TLS (delivery.tls):
 *  - opportunistic: STARTTLS when offered, certificate not verified; if the TLS handshake itself fails, one more
 *    session in plain text to the same address (Postfix's "may"); a refused STARTTLS command goes on in plain text.
 *  - required: no STARTTLS or a failed handshake is a temporary failure, never plain text.
 *  - off: STARTTLS is never used.
 */
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Target } from './route.ts';

export type TlsPolicy = 'opportunistic' | 'required' | 'off';

export interface AttemptInput {
  target: Target;
  from: string;
  rcpts: string[];
  size: number;
  data: () => Readable;
  tls: TlsPolicy;
  auth: { user: string; pass: string } | null;
  heloName: string;
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
}

export type AttemptResult =
  | {
      /** could not reach the point of sending the envelope: try the next address */
      kind: 'session-failed';
      reason: string;
      /** the TLS handshake failed (opportunistic may retry in plain text) */
      tlsHandshake: boolean;
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

function describe(err: NodemailerError, target: Target): string {
  const where = target.host === target.ip ? `${target.ip}:${target.port}` : `${target.host}[${target.ip}]:${target.port}`;
  if (err.response) return `${where} said: ${err.response}`;
  const code = (err as NodemailerError & { originalCode?: string }).originalCode ?? err.code;
  return `${where}: ${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}`;
}

async function session(input: AttemptInput, mode: TlsPolicy | 'plain'): Promise<AttemptResult> {
  const { target } = input;
  const conn = new SMTPConnection({
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
    socketTimeout: input.commandTimeoutMs,
    socketCloseTimeout: 0,
    logger: false,
    debug: false,
  });
  const untrack = input.track?.(() => conn.close()) ?? (() => {});
  let lastError: NodemailerError | null = null;
  let quitting = false;
  // 'end' settles whatever is waiting: close() (on stop) does not always call back a send in flight
  let endedResolve!: (err: NodemailerError) => void;
  const ended = new Promise<NodemailerError>((resolve) => (endedResolve = resolve));
  conn.on('error', (err: NodemailerError) => {
    lastError = err;
  });
  conn.on('end', () => endedResolve(lastError ?? Object.assign(new Error('connection closed'), { code: 'ECONNECTION' })));
  const orEnd = <T>(p: Promise<T>, onEnd: (e: NodemailerError) => T): Promise<T> => Promise.race([p, ended.then(onEnd)]);
  try {
    const connectErr = await orEnd(
      new Promise<NodemailerError | null>((resolve) => conn.connect(() => resolve(null))),
      (e) => e,
    );
    if (connectErr) {
      if (mode === 'required' && connectErr.command === 'STARTTLS' && connectErr.response) {
        const where = target.host === target.ip ? `${target.ip}:${target.port}` : `${target.host}[${target.ip}]:${target.port}`;
        return { kind: 'session-failed', reason: `${where} does not offer STARTTLS (it answered "${connectErr.response}")`, tlsHandshake: false };
      }
      const handshake = mode === 'opportunistic' && (connectErr.code === 'ETLS' || conn.upgrading === true) && !connectErr.response;
      return { kind: 'session-failed', reason: describe(connectErr, target), tlsHandshake: handshake };
    }
    if (mode === 'required' && !conn.secure) {
      return { kind: 'session-failed', reason: `${target.host}[${target.ip}]:${target.port} did not offer STARTTLS and delivery.tls is "required"`, tlsHandshake: false };
    }
    const sock = conn._socket as TLSSocket | null | false;
    const secure = conn.secure && !!sock && typeof sock.getProtocol === 'function';
    const tls = {
      tls: secure,
      tlsProtocol: secure ? sock.getProtocol() : null,
      tlsCipher: secure ? (sock.getCipher()?.name ?? null) : null,
    };
    if (input.auth) {
      const authErr = await orEnd(
        new Promise<NodemailerError | null>((resolve) => {
          conn.login({ user: input.auth!.user, pass: input.auth!.pass }, (err) => resolve((err as NodemailerError | null) ?? null));
        }),
        (e) => e,
      );
      if (authErr) return { kind: 'session-failed', reason: `authentication failed: ${describe(authErr, target)}`, tlsHandshake: false };
    }
    type Sent = { err: NodemailerError | null; info: { accepted: string[]; rejectedErrors?: NodemailerError[]; response: string } | null };
    const data = input.data();
    const sent = await orEnd(
      new Promise<Sent>((resolve) => {
        conn.send({ from: input.from, to: input.rcpts, size: input.size }, data, (err, info) => {
          resolve({ err: (err as NodemailerError | null) ?? null, info: (info as never) ?? null });
        });
      }),
      (e): Sent => ({ err: e, info: null }),
    );
    data.destroy();
    const envelope = ((conn as unknown as { _envelope?: EnvelopeState })._envelope || {}) as EnvelopeState;
    const perRcpt = new Map<string, RcptResult>();
    const rejected = sent.info?.rejectedErrors ?? sent.err?.rejectedErrors ?? envelope.rejectedErrors ?? [];
    for (const e of rejected) {
      if (e.recipient) perRcpt.set(e.recipient, { rcpt: e.recipient, code: e.responseCode ?? 0, response: e.response ?? e.message });
    }
    let response: string;
    if (sent.err) {
      const e = sent.err;
      response = e.response ?? describe(e, target);
      const code = e.responseCode ?? 0;
      const text = e.response ?? describe(e, target);
      // a MAIL FROM refusal or a failure of the message itself applies to every recipient not already refused
      for (const rcpt of input.rcpts) if (!perRcpt.has(rcpt)) perRcpt.set(rcpt, { rcpt, code, response: text });
    } else {
      response = sent.info!.response;
      const code = Number(/^\d{3}/.exec(response)?.[0] ?? 250);
      for (const rcpt of sent.info!.accepted) if (!perRcpt.has(rcpt)) perRcpt.set(rcpt, { rcpt, code, response });
      for (const rcpt of input.rcpts) if (!perRcpt.has(rcpt)) perRcpt.set(rcpt, { rcpt, code: 0, response: 'no reply for this recipient' });
    }
    if (!sent.err || sent.err.responseCode) {
      conn.quit();
      quitting = true;
      // a server that never answers QUIT does not hold the socket for the whole command timeout
      setTimeout(() => conn.close(), 5000).unref();
    }
    return { kind: 'done', results: input.rcpts.map((r) => perRcpt.get(r)!), ...tls, response };
  } finally {
    untrack();
    if (!quitting) conn.close();
  }
}

/** Delivers to one address; in opportunistic mode a failed TLS handshake is retried once in plain text. */
export async function attempt(input: AttemptInput): Promise<AttemptResult> {
  const first = await session(input, input.tls);
  if (first.kind === 'session-failed' && first.tlsHandshake && input.tls === 'opportunistic') {
    const plain = await session(input, 'plain');
    if (plain.kind === 'session-failed') return { ...plain, reason: `${first.reason}; then in plain text: ${plain.reason}` };
    return plain;
  }
  return first;
}
