/**
 * A downstream SMTP server for tests: a real smtp-server on loopback that records what it receives and answers what
 * the test tells it to. Variants:
 *  - plain (no STARTTLS), or `tls: true` with a self-signed certificate made at test time (or your own key/cert);
 *  - `brokenTls: true`: advertises STARTTLS, answers 220 to it, then breaks the handshake (a TLS alert and a close);
 *    a later session that does not use STARTTLS goes through normally;
 *  - `auth`: requires AUTH PLAIN/LOGIN with that user and password;
 *  - hooks (onMailFrom, onRcpt, onData) that return a reply to refuse with, e.g. { code: 550, message: '5.1.1 no such user' }.
 *
 * Usage:
 *   const sink = await startSink({ tls: true });
 *   ... deliver to sink.host:sink.port ...
 *   const [msg] = await sink.waitFor(1);
 *   await sink.close();
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { generate } from 'selfsigned';

export interface SinkMessage {
  from: string;
  to: string[];
  data: Buffer;
  /** the session used TLS */
  secure: boolean;
  tlsProtocol: string | null;
  tlsCipher: string | null;
  user: string | null;
  helo: string;
  remoteAddress: string;
  receivedAt: number;
}

export interface SinkReply {
  code: number;
  message: string;
}

export interface SinkOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** default 0 (any free port) */
  port?: number;
  /** true: STARTTLS with a self-signed certificate made now; or a key and certificate (PEM) */
  tls?: boolean | { key: string; cert: string };
  /** advertise STARTTLS, then break every TLS handshake */
  brokenTls?: boolean;
  auth?: { user: string; pass: string };
  /** the reply to a refused AUTH (n: how many AUTHs this sink has seen, counting this one); default 535 5.7.8 */
  authRefusal?: (n: number) => SinkReply;
  onMailFrom?: (from: string, session: SMTPServerSession) => SinkReply | void;
  /** n: how many RCPT commands this sink has seen for this address, counting this one (1 = first) */
  onRcpt?: (rcpt: string, n: number, session: SMTPServerSession) => SinkReply | void;
  /** n: how many messages reached the end of DATA on this sink, counting this one (1 = first) */
  onData?: (msg: SinkMessage, n: number) => SinkReply | void;
  /** wait this long before answering the end of DATA (a slow server); a function is asked at each message */
  dataDelayMs?: number | (() => number);
  /** answer the end of DATA only once this promise settles (a server held for as long as a test needs; after dataDelayMs) */
  holdData?: (msg: SinkMessage) => Promise<unknown>;
}

export interface Sink {
  host: string;
  port: number;
  /** "host:port", ready for a deliverTo */
  address: string;
  /** messages accepted (250 at the end of DATA), in order */
  messages: SinkMessage[];
  /** messages refused at the end of DATA by onData */
  refused: SinkMessage[];
  /** TCP connections accepted so far */
  connections: number;
  /** most TCP connections open at the same time */
  maxConcurrent: number;
  /** most mail transactions (MAIL FROM to the reply at the end of DATA) under way at the same time */
  maxTransactions: number;
  /** mail transactions under way now */
  readonly activeTransactions: number;
  /** STARTTLS handshakes broken so far (brokenTls) */
  brokenHandshakes: number;
  /** every AUTH this sink was sent, accepted or not, and whether the session was in TLS by then */
  authAttempts: { user: string; secure: boolean }[];
  /** closes every open connection from the server side (as a server's idle timeout does) */
  dropConnections(): void;
  /** resolves with the first n accepted messages once they are there; rejects after timeoutMs */
  waitFor(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  close(): Promise<void>;
}

let certCache: Promise<{ key: string; cert: string }> | null = null;
/** One self-signed certificate per test process (RSA generation takes a moment). */
export function selfSignedCert(): Promise<{ key: string; cert: string }> {
  certCache ??= generate([{ name: 'commonName', value: 'sink.test' }], {
    keySize: 2048,
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'sink.test' }, { type: 7, ip: '127.0.0.1' }] }],
  } as never).then((p) => ({ key: p.private, cert: p.cert }));
  return certCache;
}

function reply(r: SinkReply): Error {
  return Object.assign(new Error(r.message), { responseCode: r.code });
}

export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const host = opts.host ?? '127.0.0.1';
  const events = new EventEmitter();
  const messages: SinkMessage[] = [];
  const refused: SinkMessage[] = [];
  const rcptCounts = new Map<string, number>();
  let dataCount = 0;
  const inTransaction = new Set<string>();
  const wantsTls = !!opts.tls || !!opts.brokenTls;
  const tlsMaterial = opts.tls && typeof opts.tls === 'object' ? opts.tls : wantsTls ? await selfSignedCert() : null;

  const server = new SMTPServer({
    secure: false,
    ...(tlsMaterial ? { key: tlsMaterial.key, cert: tlsMaterial.cert } : {}),
    disabledCommands: wantsTls ? (opts.auth ? [] : ['AUTH']) : opts.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: !opts.auth,
    allowInsecureAuth: true,
    logger: false,
    banner: 'test sink',
    disableReverseLookup: true,
    onAuth(auth, session, cb) {
      sink.authAttempts.push({ user: auth.username ?? '', secure: session.secure });
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) return cb(null, { user: auth.username });
      cb(reply(opts.authRefusal?.(sink.authAttempts.length) ?? { code: 535, message: '5.7.8 Authentication credentials invalid' }));
    },
    onMailFrom(address, session, cb) {
      const r = opts.onMailFrom?.(address.address, session);
      if (!r) {
        inTransaction.add(session.id);
        sink.maxTransactions = Math.max(sink.maxTransactions, inTransaction.size);
      }
      cb(r ? reply(r) : null);
    },
    onClose(session) {
      inTransaction.delete(session.id);
    },
    onRcptTo(address, session, cb) {
      const n = (rcptCounts.get(address.address) ?? 0) + 1;
      rcptCounts.set(address.address, n);
      const r = opts.onRcpt?.(address.address, n, session);
      cb(r ? reply(r) : null);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const cipher = session.secure ? (session.tlsOptions as { name?: string; version?: string } | false) : false;
        const msg: SinkMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          secure: session.secure,
          tlsProtocol: cipher ? (cipher.version ?? null) : null,
          tlsCipher: cipher ? (cipher.name ?? null) : null,
          user: (session.user as string | undefined) ?? null,
          helo: session.hostNameAppearsAs,
          remoteAddress: session.remoteAddress,
          receivedAt: Date.now(),
        };
        const r = opts.onData?.(msg, ++dataCount);
        const answer = () => {
          inTransaction.delete(session.id);
          if (r) {
            refused.push(msg);
            return cb(reply(r));
          }
          messages.push(msg);
          events.emit('message');
          cb(null, 'Ok: queued as sink');
        };
        const delay = typeof opts.dataDelayMs === 'function' ? opts.dataDelayMs() : (opts.dataDelayMs ?? 0);
        const held = opts.holdData ? () => void opts.holdData!(msg).finally(answer) : answer;
        if (delay > 0) setTimeout(held, delay).unref(); // a long delay must not hold the test process open
        else held();
      });
    },
  });
  server.on('error', () => {});

  const sink: Sink = {
    host,
    port: 0,
    address: '',
    messages,
    refused,
    connections: 0,
    maxConcurrent: 0,
    maxTransactions: 0,
    get activeTransactions() {
      return inTransaction.size;
    },
    brokenHandshakes: 0,
    authAttempts: [],
    waitFor(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length >= n) {
            cleanup();
            resolve(messages.slice(0, n));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`sink ${sink.address}: expected ${n} messages within ${timeoutMs} ms, got ${messages.length}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          events.off('message', check);
        };
        events.on('message', check);
        check();
      });
    },
    close: async () => {},
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
  };

  const sockets = new Set<net.Socket>();
  if (!opts.brokenTls) {
    server.server.on('connection', (sock: net.Socket) => {
      sink.connections++;
      sockets.add(sock);
      sink.maxConcurrent = Math.max(sink.maxConcurrent, sockets.size);
      sock.on('close', () => sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
    sink.port = (server.server.address() as net.AddressInfo).port;
    sink.close = () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
  } else {
    // The smtp-server listens on a private port; a front proxy passes bytes through, except that it answers
    // STARTTLS itself and then breaks the handshake with a fatal TLS alert.
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const innerPort = (server.server.address() as net.AddressInfo).port;
    let openClients = 0;
    const front = net.createServer((client) => {
      sink.connections++;
      sockets.add(client);
      sink.maxConcurrent = Math.max(sink.maxConcurrent, ++openClients);
      const inner = net.connect(innerPort, '127.0.0.1');
      sockets.add(inner);
      client.on('close', () => {
        openClients--;
        sockets.delete(client);
        inner.destroy();
      });
      inner.on('close', () => {
        sockets.delete(inner);
        client.destroy();
      });
      client.on('error', () => {});
      inner.on('error', () => {});
      inner.pipe(client);
      let buffered = '';
      let passthrough = false;
      let breaking = false;
      client.on('data', (chunk: Buffer) => {
        if (breaking) {
          // the ClientHello arrived: answer with a fatal handshake_failure alert and hang up
          client.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
          inner.destroy();
          return;
        }
        if (passthrough) {
          inner.write(chunk);
          return;
        }
        buffered += chunk.toString('latin1');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl + 1);
          buffered = buffered.slice(nl + 1);
          if (/^STARTTLS\s*$/i.test(line.trim())) {
            breaking = true;
            sink.brokenHandshakes++;
            inner.unpipe(client);
            client.write('220 2.0.0 Ready to start TLS\r\n');
            return;
          }
          inner.write(line);
          if (/^MAIL FROM/i.test(line)) {
            passthrough = true;
            if (buffered) inner.write(buffered);
            buffered = '';
            return;
          }
        }
      });
    });
    await new Promise<void>((resolve) => front.listen(opts.port ?? 0, host, () => resolve()));
    sink.port = (front.address() as net.AddressInfo).port;
    sink.close = () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        front.close(() => server.close(() => resolve()));
      });
  }
  sink.address = host.includes(':') ? `[${host}]:${sink.port}` : `${host}:${sink.port}`;
  return sink;
}
