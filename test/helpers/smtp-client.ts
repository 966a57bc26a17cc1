/**
 * A raw SMTP client on a real socket, for tests that need to see every reply (and for abusive clients:
 * pipelining, garbage, bare LF, early talk). Clients pick their loopback source address (127.0.0.x) to
 * stand for different hosts. Every wait is bounded.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach } from 'vitest';

export interface Reply {
  code: number;
  lines: string[];
  /** the text of the last line without the code, e.g. "4.7.1 Too much mail ..." */
  text: string;
}

export class RawSmtp {
  private buf = '';
  private replies: Reply[] = [];
  private waiters: Array<(r: Reply | null) => void> = [];
  private pending: string[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;
  private socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
  }

  static connect(port: number, opts: { localAddress?: string; host?: string } = {}): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress });
      s.once('connect', () => resolve(new RawSmtp(s)));
      s.once('error', reject);
    });
  }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.pending.push(line);
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const lines = this.pending.splice(0);
        const r: Reply = { code: Number(line.slice(0, 3)), lines, text: line.slice(4) };
        const w = this.waiters.shift();
        if (w) w(r);
        else this.replies.push(r);
      }
    }
  }

  /** The next reply, or null when the server closed the connection first. */
  read(timeoutMs = 5000): Promise<Reply | null> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(new Error(`no SMTP reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (x: Reply | null) => {
        clearTimeout(t);
        resolve(x);
      };
      this.waiters.push(done);
    });
  }

  write(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  async cmd(line: string, timeoutMs?: number): Promise<Reply> {
    this.write(line + '\r\n');
    const r = await this.read(timeoutMs);
    if (!r) throw new Error(`connection closed after "${line}"`);
    return r;
  }

  /** Greeting + EHLO. */
  async hello(name = 'client.test'): Promise<Reply> {
    const g = await this.read();
    if (!g || g.code !== 220) throw new Error(`no greeting: ${JSON.stringify(g)}`);
    return this.cmd(`EHLO ${name}`);
  }

  /** DATA with a body (dot-stuffing done here), returns the final reply. */
  async data(body: string): Promise<Reply> {
    const r = await this.cmd('DATA');
    if (r.code !== 354) return r;
    const stuffed = body.replace(/\r\n\./g, '\r\n..');
    this.write((stuffed.startsWith('.') ? '.' + stuffed : stuffed) + (stuffed.endsWith('\r\n') ? '' : '\r\n') + '.\r\n');
    const f = await this.read(15_000);
    if (!f) throw new Error('connection closed after DATA');
    return f;
  }

  /** STARTTLS, then a new EHLO over TLS. */
  async starttls(name = 'client.test'): Promise<Reply> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) return r;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.buf = '';
    this.attach(secure);
    return this.cmd(`EHLO ${name}`);
  }

  async quit(): Promise<void> {
    if (!this.closed) {
      try {
        this.write('QUIT\r\n');
      } catch {
        // already gone
      }
    }
    this.socket.end();
    await Promise.race([this.closedPromise, new Promise((r) => setTimeout(r, 1000))]);
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** One whole message from a client address; returns every reply on the way. */
export async function sendMail(
  port: number,
  opts: { from: string; to: string[]; body?: string; localAddress?: string; helo?: string },
): Promise<{ mail: Reply; rcpts: Reply[]; data: Reply | null }> {
  const c = await RawSmtp.connect(port, { localAddress: opts.localAddress });
  try {
    await c.hello(opts.helo);
    const mail = await c.cmd(`MAIL FROM:<${opts.from}>`);
    const rcpts: Reply[] = [];
    if (mail.code === 250) for (const t of opts.to) rcpts.push(await c.cmd(`RCPT TO:<${t}>`));
    let data: Reply | null = null;
    if (rcpts.some((r) => r.code === 250)) data = await c.data(opts.body ?? 'Subject: test\r\n\r\nhello\r\n');
    return { mail, rcpts, data };
  } finally {
    await c.quit();
  }
}

/**
 * The SMTP test files' shared fixture: clients opened with `open` (or pushed to `clients`) are destroyed after each
 * test, then `after` runs (it stops the file's relay). `open` connects from `localAddress` (each test client is its own
 * loopback address, 127.0.0.x).
 */
export function smtpClients(after: () => Promise<void> | void): {
  clients: RawSmtp[];
  open(port: number, localAddress?: string, host?: string): Promise<RawSmtp>;
} {
  const clients: RawSmtp[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await after();
  });
  return {
    clients,
    async open(port, localAddress = '127.0.0.5', host) {
      const c = await RawSmtp.connect(port, { localAddress, host });
      clients.push(c);
      return c;
    },
  };
}

/** The RCPT reply for a foreign recipient from `localAddress` (250 when it may relay), in a session of its own. */
export async function relayCode(port: number, localAddress: string): Promise<number> {
  const c = await RawSmtp.connect(port, { localAddress });
  try {
    await c.hello();
    if ((await c.cmd('MAIL FROM:<a@example.org>')).code !== 250) throw new Error(`MAIL FROM refused for ${localAddress}`);
    return (await c.cmd('RCPT TO:<someone@foreign.example>')).code;
  } finally {
    await c.quit();
  }
}
