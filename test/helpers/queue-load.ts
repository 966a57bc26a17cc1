/**
 * A load generator for crash tests: N SMTP sessions on raw sockets, each sending messages one after another on its
 * connection, every message carrying a unique token. A token is recorded as acknowledged only when the relay answered
 * 250 to the end of its DATA, so "every acknowledged message arrives" can be checked token by token at the sink.
 */
import net from 'node:net';

export interface LoadOptions {
  port: number;
  host?: string;
  sessions: number;
  /** stop after this many acknowledged messages (across all sessions) */
  limit: number;
  prefix: string;
  rcpt: string;
  from?: string;
  /** approximate body size (default 1500 bytes) */
  bodyBytes?: number;
  /** called after each acknowledgement */
  onAck?: (token: string, acked: number) => void;
}

export const TOKEN_RE = /X-Load-Token: (\S+)/;

export class SmtpLoad {
  readonly acked = new Set<string>();
  refused = 0;
  private stopped = false;
  private seq = 0;
  private readonly sockets = new Set<net.Socket>();
  readonly done: Promise<void>;

  constructor(private readonly opts: LoadOptions) {
    this.done = Promise.all(Array.from({ length: opts.sessions }, (_, i) => this.session(i).catch(() => {}))).then(() => {});
  }

  stop(): void {
    this.stopped = true;
  }

  /** destroys every connection (the sessions end) */
  destroy(): void {
    this.stopped = true;
    for (const s of this.sockets) s.destroy();
  }

  private body(token: string): string {
    const filler = 'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstuvwxyz\r\n';
    const n = Math.max(1, Math.round((this.opts.bodyBytes ?? 1500) / filler.length));
    return `From: <${this.opts.from ?? 'load@sender.test'}>\r\nTo: <${this.opts.rcpt}>\r\nSubject: load ${token}\r\nX-Load-Token: ${token}\r\n\r\n${filler.repeat(n)}`;
  }

  private async session(_i: number): Promise<void> {
    const sock = net.connect(this.opts.port, this.opts.host ?? '127.0.0.1');
    this.sockets.add(sock);
    sock.setNoDelay(true);
    let buf = '';
    const waiters: ((r: { code: number; text: string } | null) => void)[] = [];
    const replies: { code: number; text: string }[] = [];
    let closed = false;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (/^\d{3}(?: |$)/.test(line)) {
          const r = { code: Number(line.slice(0, 3)), text: line };
          const w = waiters.shift();
          if (w) w(r);
          else replies.push(r);
        }
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      this.sockets.delete(sock);
      for (const w of waiters.splice(0)) w(null);
    });
    const reply = () =>
      new Promise<{ code: number; text: string } | null>((resolve) => {
        const r = replies.shift();
        if (r) resolve(r);
        else if (closed) resolve(null);
        else waiters.push(resolve);
      });
    const cmd = async (line: string) => {
      if (closed) return null;
      sock.write(line + '\r\n');
      return reply();
    };
    try {
      if ((await reply())?.code !== 220) return;
      if ((await cmd('EHLO load.test'))?.code !== 250) return;
      while (!this.stopped && !closed && this.acked.size < this.opts.limit) {
        const token = `${this.opts.prefix}-${++this.seq}`;
        const m = await cmd(`MAIL FROM:<${this.opts.from ?? 'load@sender.test'}>`);
        if (m?.code !== 250) {
          if (m) this.refused++;
          if (m) await cmd('RSET');
          if (m && m.code >= 400) await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const r = await cmd(`RCPT TO:<${this.opts.rcpt}>`);
        if (r?.code !== 250) {
          if (r) this.refused++;
          if (r) await cmd('RSET');
          continue;
        }
        if ((await cmd('DATA'))?.code !== 354) continue;
        const end = await cmd(this.body(token) + '.');
        if (end?.code === 250) {
          this.acked.add(token);
          this.opts.onAck?.(token, this.acked.size);
        } else if (end) this.refused++;
      }
      if (!closed) await cmd('QUIT');
    } finally {
      sock.destroy();
    }
  }
}
