/**
 * A raw SMTP server on loopback for the delivery client's tests: it speaks just enough SMTP, records per connection
 * every command line and whether QUIT came, and lets a test script any reply, or no reply at all (a server that
 * hangs), or a reply that keeps coming a line at a time, or a server that stops reading the message data.
 */
import net from 'node:net';
import { afterEach } from 'vitest';
import type { AttemptInput } from '../../relay/queue/smtp-client.ts';

export interface RawSession {
  /** command lines read (message data excluded) */
  commands: string[];
  /** lines read inside DATA */
  dataLines: string[];
  quit: boolean;
  closed: Promise<void>;
}

/** What a script's step can do beyond its reply. */
export interface RawContext {
  /** writes a line (CRLF added) while the connection is open */
  say(line: string): void;
  /** runs fn every `ms` until the connection closes */
  every(ms: number, fn: () => void): void;
  /** stops reading from the client: its writes fill the sockets' buffers */
  stopReading(): void;
}

/** A step's reply: a string to send, undefined for the default, null for no reply at all. */
type Reply = string | null | undefined;

export interface RawScript {
  ehlo?: (ctx: RawContext) => Reply;
  mail?: (ctx: RawContext) => Reply;
  /** the reply to RCPT number n (1 = first on this server); default 250 */
  rcpt?: (line: string, n: number, ctx: RawContext) => Reply;
  /** the reply to DATA (default 354, or 503 without an accepted recipient) */
  dataStart?: (ctx: RawContext) => Reply;
  /** the reply at the end of message n; default 250 */
  data?: (n: number, ctx: RawContext) => Reply;
  /** advertise AUTH PLAIN and answer it with this */
  auth?: string;
  rset?: (ctx: RawContext) => Reply;
  /** a line that is no command (an AUTH LOGIN continuation: a base64 user name or password); default 502 */
  other?: (line: string, ctx: RawContext) => Reply;
}

export interface RawServer {
  port: number;
  address: string;
  sessions: RawSession[];
  /** connections open now; messages whose end of data came */
  stats: { open: number; messages: number };
  close(): Promise<void>;
}

/** Servers made in a test file that calls this at its top are closed after each test. */
export function rawSmtpServers(): (script?: RawScript) => Promise<RawServer> {
  const servers: RawServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  return async (script = {}) => {
    const s = await rawSmtp(script);
    servers.push(s);
    return s;
  };
}

async function rawSmtp(script: RawScript): Promise<RawServer> {
  const sessions: RawSession[] = [];
  const sockets = new Set<net.Socket>();
  const stats = { open: 0, messages: 0 };
  let rcpts = 0;
  let datas = 0;
  const server = net.createServer((sock) => {
    sockets.add(sock);
    stats.open++;
    const timers: NodeJS.Timeout[] = [];
    let closedResolve!: () => void;
    const session: RawSession = { commands: [], dataLines: [], quit: false, closed: new Promise((r) => (closedResolve = r)) };
    sessions.push(session);
    sock.on('close', () => {
      stats.open--;
      sockets.delete(sock);
      for (const t of timers) clearInterval(t);
      closedResolve();
    });
    sock.on('error', () => {});
    const say = (line: string) => {
      if (!sock.destroyed) sock.write(`${line}\r\n`);
    };
    let reading = true;
    const ctx: RawContext = {
      say,
      every: (ms, fn) => void timers.push(setInterval(fn, ms)),
      stopReading: () => {
        reading = false;
        sock.pause();
        sock.removeAllListeners('data');
      },
    };
    const answer = (reply: Reply, otherwise: string) => {
      if (reply !== null) say(reply ?? otherwise);
    };
    say('220 raw.test ESMTP');
    let buf = '';
    let inData = false;
    let accepted = 0;
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (let i = buf.indexOf('\r\n'); i >= 0 && reading; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            stats.messages++;
            answer(script.data?.(++datas, ctx), '250 2.0.0 queued');
          } else session.dataLines.push(line);
          continue;
        }
        session.commands.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO') answer(script.ehlo?.(ctx), script.auth ? '250-raw.test\r\n250 AUTH PLAIN' : '250-raw.test\r\n250 8BITMIME');
        else if (verb === 'HELO') say('250 raw.test');
        else if (verb === 'AUTH') say(script.auth ?? '503 5.5.1 no AUTH here');
        else if (verb === 'MAIL') {
          accepted = 0;
          answer(script.mail?.(ctx), '250 2.1.0 ok');
        } else if (verb === 'RCPT') {
          const r = script.rcpt?.(line, ++rcpts, ctx) ?? '250 2.1.5 ok';
          if (r.startsWith('2')) accepted++;
          say(r);
        } else if (verb === 'DATA') {
          if (accepted === 0) say('503 5.5.1 no valid recipients');
          else {
            inData = true;
            answer(script.dataStart?.(ctx), '354 go ahead');
          }
        } else if (verb === 'RSET') answer(script.rset?.(ctx), '250 2.0.0 ok');
        else if (verb === 'NOOP') say('250 2.0.0 ok');
        else if (verb === 'QUIT') {
          session.quit = true;
          say('221 2.0.0 bye');
          sock.end();
        } else answer(script.other?.(line, ctx), '502 5.5.2 unknown command');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    sessions,
    stats,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One delivery attempt of `message` to bob@example.test on the raw server, in plain text; `over` changes any part. */
export function rawAttempt(server: RawServer, message: Buffer, over: Partial<AttemptInput> = {}): AttemptInput {
  return {
    target: { host: '127.0.0.1', ip: '127.0.0.1', port: server.port },
    from: 'alice@sender.test',
    rcpts: ['bob@example.test'],
    size: message.length,
    data: () => message,
    tls: 'off',
    auth: null,
    heloName: 'relay.test',
    connectTimeoutMs: 5000,
    commandTimeoutMs: 10_000,
    ...over,
  };
}
