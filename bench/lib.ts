/**
 * Bench building blocks: real processes on loopback. The relay runs as a child process (as in production),
 * load comes from Postfix's smtp-source, the destination is Postfix's smtp-sink, DNS from a real
 * loopback server. Every step is bounded in time; every process is killed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

export const ROOT = path.resolve(import.meta.dirname, '..');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
}

export function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, cmd))) || fs.existsSync(`/usr/sbin/${cmd}`);
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

export function startProc(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
  const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  return {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const exited = new Promise((r) => child.once('exit', r));
      if ((await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])) === false) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** smtp-sink as the destination; counts the messages it received. */
export async function startSmtpSink(): Promise<{ port: number; received: () => number; proc: Proc }> {
  const port = await freePort();
  const proc = startProc(hasCommand('smtp-sink') ? 'smtp-sink' : '/usr/sbin/smtp-sink', ['-u', 'nobody', '-c', `127.0.0.1:${port}`, '4096']);
  await waitForPort(port);
  return {
    port,
    proc,
    received: () => {
      const all = [...proc.output().matchAll(/mesg=(\d+)/g)];
      return all.length ? Number(all[all.length - 1]![1]) : 0;
    },
  };
}

/** Run smtp-source; returns wall time in ms. One message per connection unless perConnection is set. */
/** smtp-source running in the background (stop() ends it): a load kept up while something else is measured. */
export function startSmtpSource(opts: { port: number; sessions: number; messages: number; bytes?: number; from?: string; to?: string }): Proc {
  const args = ['-s', String(opts.sessions), '-m', String(opts.messages), '-l', String(opts.bytes ?? 1500),
    '-f', opts.from ?? 'bench@example.org', '-t', opts.to ?? 'alice@example.com', `127.0.0.1:${opts.port}`];
  return startProc(hasCommand('smtp-source') ? 'smtp-source' : '/usr/sbin/smtp-source', args);
}

export async function smtpSource(opts: {
  port: number;
  sessions: number;
  messages: number;
  bytes?: number;
  from?: string;
  to?: string;
  timeoutMs?: number;
}): Promise<{ ms: number; ok: boolean; output: string }> {
  const t0 = performance.now();
  const p = startSmtpSource(opts);
  const code = await Promise.race([
    new Promise<number>((r) => p.child.once('exit', (c) => r(c ?? 1))),
    sleep(opts.timeoutMs ?? 120_000).then(() => -1),
  ]);
  const ms = performance.now() - t0;
  if (code === -1) await p.stop();
  return { ms, ok: code === 0, output: p.output() };
}

/**
 * A relay child process on a fresh data dir with the given config.json: the relay as `npm run relay` runs it (`entry`
 * relay/cli.ts), or a bench variant taking the same --data-dir.
 */
export async function startRelayProcess(config: object, entry = 'relay/cli.ts'): Promise<{ dir: string; proc: Proc; pid: number; stop: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-bench-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  // BENCH_RELAY_NODE_ARGS: extra node flags for the relay (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it)
  const extra = (process.env.BENCH_RELAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = startProc(process.execPath, [...extra, '--import', 'tsx', path.join(ROOT, entry), '--data-dir', dir]);
  const port = Number(/:(\d+)$/.exec((config as { smtp: { listen: string } }).smtp.listen)![1]);
  try {
    await waitForPort(port);
  } catch (err) {
    await proc.stop();
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  }
  return {
    dir,
    proc,
    pid: proc.child.pid!,
    stop: async () => {
      await proc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** CPU time (user + system) a process has used so far, in ms; from /proc, so it is robust to a noisy machine. */
export function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const hz = 100;
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / hz;
}

export function rssKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

export function table(title: string, header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [`\n### ${title}\n`, line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

/** The middle value (the lower of the two middle ones for an even count); NaN for none. */
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * A bench section run as a script (npx tsx bench/<section>.ts --option N): when `moduleUrl` is the file node was
 * started with, run the section with its numeric options read from the command line, print its report and exit 0,
 * or print the error and exit 1. Imported by the runner instead, it does nothing.
 */
export function runIfMain(moduleUrl: string, bench: (arg: (name: string) => number | undefined) => Promise<string>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : undefined;
  };
  bench(arg).then(
    (s) => {
      console.log(s);
      process.exit(0);
    },
    (err: Error) => {
      console.error(err.stack ?? err.message);
      process.exit(1);
    },
  );
}
