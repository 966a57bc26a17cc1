/**
 * The relay's command line, run as a child process (node --import tsx relay/cli.ts): first start, refusal of a bad
 * config.json and of a spool the queue cannot start on, SIGHUP with a bad and a good edit, `user set`,
 * `token create/list/revoke`, SIGTERM.
 * Every wait is bounded and every child is killed in afterEach.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyPassword } from '../relay/auth/passwords.ts';
import { defaultConfig } from '../shared/config.ts';
import { RawSmtp } from './helpers/smtp-client.ts';
import { waitFor } from './helpers/wait.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const children: ChildProcess[] = [];
const dirs: string[] = [];
const clients: RawSmtp[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  for (const ch of children.splice(0)) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-cli-'));
  dirs.push(d);
  return d;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function portIsFree(port: number): Promise<boolean> {
  const s = net.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => s.close(() => resolve()));
  return ok;
}

interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** resolves when stdout (or stderr) has matched the pattern */
  waitOut(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  waitErr(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

function run(args: string[], opts: { stdin?: string } = {}): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'relay/cli.ts', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const waitIn = (get: () => string, what: string) => (re: RegExp, ms = 15_000) =>
    waitFor(() => get().match(re), `${what} to match ${re}; stdout so far:\n${out}\nstderr so far:\n${err}`, ms, 20);
  return { child, out: () => out, err: () => err, exited, waitOut: waitIn(() => out, 'stdout'), waitErr: waitIn(() => err, 'stderr') };
}

/** Run a one-shot command to its end (bounded). */
async function runToEnd(args: string[], opts: { stdin?: string } = {}, ms = 15_000) {
  const r = run(args, opts);
  const t = setTimeout(() => r.child.kill('SIGKILL'), ms);
  const { code } = await r.exited;
  clearTimeout(t);
  return { code, out: r.out(), err: r.err() };
}

/** A data dir whose config.json listens on free ports and asks a DNS server that is not there (nothing here needs DNS). */
async function dataDirWithConfig(extra: Record<string, unknown> = {}): Promise<{ dir: string; port: number }> {
  const dir = tmpDir();
  const port = await freePort();
  const config = {
    ...defaultConfig(),
    smtp: { ...defaultConfig().smtp, listen: `127.0.0.1:${port}` },
    manage: { listen: `127.0.0.1:${await freePort()}` },
    dns: { servers: ['127.0.0.1:9'], timeoutMs: 200 },
    ...extra,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return { dir, port };
}

async function startRelay(dir: string): Promise<Run> {
  const r = run(['--data-dir', dir]);
  await r.waitOut(/Reload config\.json with: kill -HUP \d+/);
  return r;
}

async function smtp(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port, { localAddress: '127.0.0.5' });
  clients.push(c);
  await c.hello();
  return c;
}

describe('relay CLI', () => {
  it('first start on an empty directory writes config.json with every default, tls/cert.pem and a 0600 admin token', async () => {
    const dir = path.join(tmpDir(), 'data');
    const free = await portIsFree(2525); // the default smtp.listen
    const r = run(['--data-dir', dir]);
    if (free) await r.waitOut(/Reload config\.json with/);
    else await r.waitErr(/cannot listen for SMTP on 127\.0\.0\.1:2525/);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).toEqual(defaultConfig());
    expect(fs.readFileSync(path.join(dir, 'tls', 'cert.pem'), 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const token = path.join(dir, 'admin-token');
    expect(fs.statSync(token).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(token, 'utf8').trim()).toMatch(/^rwt_[A-Za-z0-9_-]{43}$/);
    if (free) {
      expect(r.out()).toContain('SMTP           : 127.0.0.1:2525');
      r.child.kill('SIGTERM');
      expect((await r.exited).code).toBe(0);
    } else {
      expect((await r.exited).code).not.toBe(0);
    }
  });

  it('`init` makes the data directory (config.json, certificate, admin token) and listens on nothing; a second init keeps them', async () => {
    // (a console tryout: a first start listens at once on the embedded default ports, before they can be changed)
    const dir = path.join(tmpDir(), 'data');
    const first = await runToEnd(['--data-dir', dir, 'init']);
    expect(first.code).toBe(0);
    expect(first.out).toContain(`config.json    : ${path.join(dir, 'config.json')} (new, with every default)`);
    expect(first.out).toMatch(/SHA-256        : ([0-9A-F]{2}:){31}[0-9A-F]{2}\n/);
    expect(first.out).toContain('will listen on : SMTP 127.0.0.1:2525, management wss://127.0.0.1:8465/');
    expect(first.out).toContain('Nothing listens yet.');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).toEqual(defaultConfig());
    expect(fs.statSync(path.join(dir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(path.join(dir, 'relay.pid'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'spool'))).toBe(false);
    const token = fs.readFileSync(path.join(dir, 'admin-token'), 'utf8');
    // the ports chosen now are the ones the first start uses; a second init changes nothing
    const port = await freePort();
    const config = { ...defaultConfig(), smtp: { ...defaultConfig().smtp, listen: `127.0.0.1:${port}` }, manage: { listen: `127.0.0.1:${await freePort()}` } };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
    const [again, stray] = await Promise.all([runToEnd(['--data-dir', dir, 'init']), runToEnd(['--data-dir', dir, 'init', 'now'])]);
    expect(again.code).toBe(0);
    expect(again.out).toContain('(kept as it was)');
    expect(again.out).toContain(`will listen on : SMTP 127.0.0.1:${port}`);
    expect(fs.readFileSync(path.join(dir, 'admin-token'), 'utf8')).toBe(token);
    expect(stray.code).toBe(2);
    expect(stray.err).toContain('"init" takes no arguments (got "now")');
    const r = await startRelay(dir);
    expect(r.out()).toContain(`SMTP           : 127.0.0.1:${port}`);
    expect(r.out()).not.toContain('(new');
    // init while it runs: says so, and how to reload it (not "nothing listens yet")
    const during = await runToEnd(['--data-dir', dir, 'init']);
    expect(during.code).toBe(0);
    expect(during.out).toContain(`A relay (pid ${r.child.pid}) is running on this directory. After editing config.json, reload it: kill -HUP ${r.child.pid}`);
    expect(during.out).not.toContain('Nothing listens yet');
    r.child.kill('SIGTERM');
    expect((await r.exited).code).toBe(0);
  });

  it('prints the SMTP address, the certificate SHA-256 fingerprint and where the admin token is; SIGTERM exits 0', async () => {
    const { dir, port } = await dataDirWithConfig();
    const r = await startRelay(dir);
    const out = r.out();
    expect(out).toContain(`SMTP           : 127.0.0.1:${port}`);
    const fp = /SHA-256\s+: ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})/.exec(out)?.[1];
    expect(fp).toBeDefined();
    const cert = fs.readFileSync(path.join(dir, 'tls', 'cert.pem'), 'utf8');
    expect(new (await import('node:crypto')).X509Certificate(cert).fingerprint256).toBe(fp);
    expect(out).toContain(`admin token    : ${path.join(dir, 'admin-token')} (new; mode 0600)`);
    expect(out).toContain('(new, self-signed)');
    expect(out).toContain('queue          : empty');
    expect(fs.statSync(path.join(dir, 'admin-token')).mode & 0o777).toBe(0o600);
    // config.json was used as it is
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).smtp.listen).toBe(`127.0.0.1:${port}`);
    const c = await smtp(port);
    expect((await c.cmd('NOOP')).code).toBe(250);
    // SIGTERM with an idle session open: it is told 421 and the relay exits 0 without waiting for it
    const started = Date.now();
    r.child.kill('SIGTERM');
    expect((await c.read(5000))?.code).toBe(421);
    const { code } = await r.exited;
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(fs.existsSync(path.join(dir, 'relay.pid'))).toBe(false);
    expect(r.out()).toContain('stopped; the queue is empty');
  });

  it('a restart says how many queued messages it found on disk, and resumes them', async () => {
    // a local domain whose server does not answer: the message is deferred and stays queued
    const { dir, port } = await dataDirWithConfig({
      groups: { Trusted: [{ address: '127.0.0.5', comment: 'the test client: no DNS checks' }] },
      domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: ['alice'] } },
    });
    let r = await startRelay(dir);
    const c = await smtp(port);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.data('Subject: for later\r\n\r\nbody')).code).toBe(250);
    r.child.kill('SIGTERM');
    expect((await r.exited).code).toBe(0);
    expect(r.out()).toContain('stopped; 1 message left in the queue, delivered after the next start');
    r = await startRelay(dir);
    expect(r.out()).toContain('queue          : 1 message found on disk, delivery resumed');
    r.child.kill('SIGTERM');
    await r.exited;
  });

  it('a bad config.json is refused: non-zero exit and a message naming the key', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ limits: { messagesPerHour: { max: 'lots' } }, smtpp: {} }));
    const { code, err } = await runToEnd(['--data-dir', dir]);
    expect(code).not.toBe(0);
    expect(err).toContain('limits.messagesPerHour.max');
    expect(err).toContain('smtpp');
    expect(err).toMatch(/did not start/);
    expect(err).toContain('limits.messagesPerHour.max: must be a number; it is "lots"');
    expect(err).toContain('Fix the key named above');
  });

  it('a tokens.json that is not JSON, or holds no list of tokens, is refused naming the file; nothing is minted or written over it', async () => {
    const { dir } = await dataDirWithConfig();
    const file = path.join(dir, 'tokens.json');
    for (const text of ['{"tokens": [ oops\n', '{"tokens": {}}\n', '{"tokens": [{"name": "x"}]}\n']) {
      fs.writeFileSync(file, text);
      const r = await runToEnd(['--data-dir', dir]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`error: ${file} is `);
      expect(r.err).toContain('The relay did not start.');
      // taken for "no tokens", a start had minted an admin token and written an empty list over the file
      expect(fs.readFileSync(file, 'utf8')).toBe(text);
      expect(fs.existsSync(path.join(dir, 'admin-token'))).toBe(false);
    }
    fs.writeFileSync(file, '{"tokens": [ oops\n');
    expect((await runToEnd(['--data-dir', dir])).err).toMatch(/is not valid JSON: line 1, column 14/);
  });

  it('a config.json that is not JSON is refused with the line and column, and says to fix the file', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'config.json'), '{\n  "smtp": {\n    "maxConnections": 50,\n  }\n}\n');
    const { code, err } = await runToEnd(['--data-dir', dir]);
    expect(code).toBe(1);
    expect(err).toContain(`error: ${path.join(dir, 'config.json')} is not valid JSON: line 4, column 3: Expected double-quoted property name: a comma before a closing } is not allowed in JSON; remove the one at the end of line 3\n    }\n    ^\n`);
    expect(err).toContain('Fix the file named above');
  });

  it('a spool the queue cannot start on is refused: exit 1 (no hang) and a message saying the queue could not start, where and why', async () => {
    const { dir } = await dataDirWithConfig();
    // a structural fault (chmod would not stop a test running as root): the spool's tmp/ is a file
    fs.mkdirSync(path.join(dir, 'spool'));
    fs.writeFileSync(path.join(dir, 'spool', 'tmp'), 'in the way');
    const { code, out, err } = await runToEnd(['--data-dir', dir]);
    expect(code).toBe(1);
    expect(err).toContain(`error: cannot start the queue (spool ${path.join(dir, 'spool')}): EEXIST`);
    expect(out).not.toContain('Relay Warden is running');
  });

  it('one relay per data directory: a second start is refused naming the first; a relay that was killed leaves no lock', async () => {
    const { dir, port } = await dataDirWithConfig();
    const first = await startRelay(dir);
    const pid = first.child.pid!;
    const second = await runToEnd(['--data-dir', dir]);
    expect(second.code).toBe(1);
    expect(second.err).toContain(`error: a relay (pid ${pid}) is already running on ${dir}; stop it first (kill ${pid}), or start this one with another --data-dir`);
    // the first one goes on, its pid file untouched
    expect(fs.readFileSync(path.join(dir, 'relay.pid'), 'utf8').trim()).toBe(String(pid));
    expect((await (await smtp(port)).cmd('NOOP')).code).toBe(250);
    // killed hard, it leaves its pid file: the next start takes it over
    first.child.kill('SIGKILL');
    await first.exited;
    expect(fs.existsSync(path.join(dir, 'relay.pid'))).toBe(true);
    const third = await startRelay(dir);
    expect(fs.readFileSync(path.join(dir, 'relay.pid'), 'utf8').trim()).toBe(String(third.child.pid));
    third.child.kill('SIGTERM');
    expect((await third.exited).code).toBe(0);
  });

  it('a relay.pid left by a killed relay whose pid another program has now: user and token commands do not signal it', async () => {
    const { dir } = await dataDirWithConfig();
    // a live program that is not a relay (SIGHUP would end it), named by a stale relay.pid
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(path.join(dir, 'relay.pid'), `${other.pid}\n`);
      const set = await runToEnd(['--data-dir', dir, 'user', 'set', 'sales'], { stdin: 'correct horse battery\n' });
      expect(set.code).toBe(0);
      expect(set.out).not.toContain('was told to reload');
      const token = await runToEnd(['--data-dir', dir, 'token', 'create', '--name', 'laptop', '--role', 'viewer']);
      expect(token.code).toBe(0);
      expect(other.exitCode).toBeNull();
      expect(other.signalCode).toBeNull();
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a relay.pid whose pid another relay-like program got later (started after the file was written) is taken over, and not signalled', async () => {
    const { dir, port } = await dataDirWithConfig();
    // a live program with "cli.ts" in its command line, as another relay on another data directory would have;
    // SIGHUP would end it
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', 'relay/cli.ts'], { stdio: 'ignore' });
    try {
      await waitFor(() => fs.existsSync(`/proc/${other.pid}/cmdline`) && fs.readFileSync(`/proc/${other.pid}/cmdline`, 'utf8').includes('cli.ts'), 'the other program to start');
      const pidFile = path.join(dir, 'relay.pid');
      fs.writeFileSync(pidFile, `${other.pid}\n`);
      // written by a relay that died an hour ago, before this program started
      const anHourAgo = new Date(Date.now() - 3_600_000);
      fs.utimesSync(pidFile, anHourAgo, anHourAgo);
      const set = await runToEnd(['--data-dir', dir, 'user', 'set', 'sales'], { stdin: 'correct horse battery\n' });
      expect(set.code).toBe(0);
      expect(set.out).not.toContain('was told to reload');
      const r = await startRelay(dir);
      expect(fs.readFileSync(pidFile, 'utf8').trim()).toBe(String(r.child.pid));
      expect((await (await smtp(port)).cmd('NOOP')).code).toBe(250);
      expect(other.exitCode).toBeNull();
      expect(other.signalCode).toBeNull();
      r.child.kill('SIGTERM');
      expect((await r.exited).code).toBe(0);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a second SIGTERM while a message is still coming in says what the stop waits for; a third stops at once', async () => {
    const { dir, port } = await dataDirWithConfig({
      domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } },
      checks: { senderDomain: { mode: 'off' }, reverseDns: { mode: 'off' } },
    });
    const r = await startRelay(dir);
    const c = await smtp(port);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write('Subject: slow\r\n\r\nstill typing\r\n');
    r.child.kill('SIGTERM');
    await r.waitOut(/SIGTERM: no new connections; letting open sessions finish/);
    r.child.kill('SIGTERM');
    await r.waitOut(/SIGTERM: still stopping: 1 SMTP session finishing a message \(at most \d+ s more\)\. SIGTERM again stops at once/);
    expect(r.child.exitCode).toBeNull();
    r.child.kill('SIGTERM');
    expect((await r.exited).code).toBe(1);
    expect(r.out()).toContain('SIGTERM: stopping at once; 1 SMTP session cut, their messages not acknowledged (their senders try again)');
    expect(fs.existsSync(path.join(dir, 'relay.pid'))).toBe(false);
  });

  it('SIGHUP with a bad edit keeps running on the old config and says so; with a good edit applies it', async () => {
    const { dir, port } = await dataDirWithConfig();
    const r = await startRelay(dir);
    const file = path.join(dir, 'config.json');
    const good = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...good, checks: { ...good.checks, maxFailedCommands: { mode: 'enforce', max: 'one' } } }));
    r.child.kill('SIGHUP');
    await r.waitErr(/config NOT reloaded, the relay keeps the last good config:[\s\S]*checks\.maxFailedCommands\.max/);
    // ... and that the file on disk is still the bad one, which the next start would read
    await r.waitErr(/The file on disk still holds this error: fix it \(`check` reads it as a start would\), or the relay's next start fails on it\./);
    expect(r.child.exitCode).toBeNull();
    const checked = await runToEnd(['--data-dir', dir, 'check']);
    expect(checked.code).toBe(1);
    expect(checked.err).toContain('checks.maxFailedCommands.max');
    const c = await smtp(port);
    expect((await c.cmd('BOGUS')).code).toBe(500); // the old limit (10) still applies
    await c.quit();

    fs.writeFileSync(file, JSON.stringify({ ...good, checks: { ...good.checks, maxFailedCommands: { mode: 'enforce', max: 1 } } }));
    r.child.kill('SIGHUP');
    // the line says what changed
    await r.waitOut(/config reloaded \(revision \d+\): checks\.maxFailedCommands\.max 10 -> 1$/m);
    const d = await smtp(port);
    expect((await d.cmd('BOGUS')).code).toBe(421);
    // a SIGHUP after a token was added by hand-copying tokens.json, with config.json as it is: the tokens are named
    const tokens = JSON.parse(fs.readFileSync(path.join(dir, 'tokens.json'), 'utf8')) as { tokens: { name: string }[] };
    fs.writeFileSync(path.join(dir, 'tokens.json'), JSON.stringify({ tokens: [...tokens.tokens, { ...tokens.tokens[0]!, name: 'laptop' }] }));
    r.child.kill('SIGHUP');
    await r.waitOut(/config\.json unchanged; tokens added: laptop/);
    r.child.kill('SIGTERM');
    expect((await r.exited).code).toBe(0);
  });

  it('the reload line names group entries by address and expiry, and a new group by its addresses', async () => {
    const { dir } = await dataDirWithConfig();
    const r = await startRelay(dir);
    const file = path.join(dir, 'config.json');
    const good = JSON.parse(fs.readFileSync(file, 'utf8'));
    const partners = ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4'].map((address) => ({ address }));
    fs.writeFileSync(file, JSON.stringify({
      ...good,
      groups: {
        Trusted: [{ address: '192.0.2.7', comment: 'the printer on the 3rd floor, until it is replaced', expiresAt: '2026-12-01T08:00:00+01:00' }],
        Partners: partners,
      },
    }));
    r.child.kill('SIGHUP');
    await r.waitOut(/config reloaded \(revision \d+\): .*$/m);
    const line = /config reloaded \(revision \d+\): .*$/m.exec(r.out())![0];
    expect(line).toContain('groups.Trusted[192.0.2.7] (none) -> 192.0.2.7 "the printer on the 3rd floor, until it i..." until 2026-12-01T08:00:00+01:00');
    expect(line).toContain('groups.Partners (none) -> [198.51.100.1 (no expiry), 198.51.100.2 (no expiry), 198.51.100.3 (no expiry) and 1 more]');
    r.child.kill('SIGTERM');
    expect((await r.exited).code).toBe(0);
  });

  it('a SIGHUP or SIGTERM that comes while the relay is starting (relay.pid written) is acted on once it has started, not fatal', async () => {
    for (const sig of ['SIGHUP', 'SIGTERM'] as const) {
      const { dir, port } = await dataDirWithConfig();
      const r = run(['--data-dir', dir]);
      const pidFile = path.join(dir, 'relay.pid');
      // as `user set` or systemd's ExecReload would: the pid in relay.pid, as soon as it is there
      await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '', 'relay.pid', 15_000, 2);
      process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), sig);
      if (sig === 'SIGHUP') {
        // the window closes when the real handler is installed: either line says the signal was taken, and the relay runs
        await r.waitOut(/SIGHUP came while the relay was starting: reloading now|config\.json unchanged/);
        expect(r.child.exitCode).toBeNull();
        const c = await smtp(port);
        await c.quit();
        r.child.kill('SIGTERM');
      } else {
        await r.waitOut(/SIGTERM came while the relay was starting: stopping now|SIGTERM: no new connections/);
      }
      expect(await r.exited).toEqual({ code: 0, signal: null });
      expect(fs.existsSync(pidFile)).toBe(false);
    }
  });

  it('`check` reads config.json, tokens.json and the certificate as a start would, changes nothing, and says what it found', async () => {
    const { dir } = await dataDirWithConfig({ tls: { certFile: 'missing.pem', keyFile: 'missing.key' } });
    const before = fs.readdirSync(dir);
    const bad = await runToEnd(['--data-dir', dir, 'check']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/tls\.certFile: cannot read the TLS certificate .*missing\.pem/);
    expect(bad.err).toContain('Fix the key named above, then run check again (a running relay takes the file with kill -HUP).');
    expect(bad.err).not.toContain('Nothing was changed');
    expect(fs.readdirSync(dir)).toEqual(before);
    const ok = await dataDirWithConfig();
    const good = await runToEnd(['--data-dir', ok.dir, 'check']);
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/config\.json: valid \(SMTP 127\.0\.0\.1:\d+, management 127\.0\.0\.1:\d+, 0 local domain\(s\), 1 group\(s\)\)/);
    expect(good.out).toContain('tokens.json: 0 token(s), 0 admin (none: nobody can change the relay from the console');
    const missing = await runToEnd(['--data-dir', path.join(ok.dir, 'nope'), 'check']);
    expect(missing.code).not.toBe(0);
    expect(fs.existsSync(path.join(ok.dir, 'nope'))).toBe(false);
  });

  it('`user set NAME` reads the password from stdin, tells the running relay, and that user can AUTH', async () => {
    const { dir, port } = await dataDirWithConfig();
    const r = await startRelay(dir);
    const set = await runToEnd(['--data-dir', dir, 'user', 'set', 'sales'], { stdin: 'correct horse battery\n' });
    expect(set.code).toBe(0);
    expect(set.out).toContain('user "sales" can now authenticate');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).users.sales.passwordHash).toMatch(/^scrypt\$/);
    await r.waitOut(/config reloaded \(revision \d+\)/);
    const c = await smtp(port);
    const plain = (p: string) => Buffer.from(`\0sales\0${p}`).toString('base64');
    // too short a password is refused (run while the AUTH checks go on)
    const short = runToEnd(['--data-dir', dir, 'user', 'set', 'bob'], { stdin: 'short\n' });
    expect((await c.cmd(`AUTH PLAIN ${plain('correct horse')}`)).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${plain('correct horse battery')}`)).code).toBe(235);
    const refused = await short;
    expect(refused.code).not.toBe(0);
    expect(refused.err).toMatch(/at least 8 characters/);

    // `user remove` as an admin runs it: the session already logged in as sales is ended at its next command
    const removed = await runToEnd(['--data-dir', dir, 'user', 'remove', 'sales']);
    expect(removed.out).toContain('the running relay');
    await r.waitOut(/config reloaded \(revision \d+\): users\.sales/);
    expect(await c.cmd('MAIL FROM:<me@example.org>')).toMatchObject({
      code: 421,
      text: '4.7.0 The login as "sales" is no longer valid: the user was removed since. Connect again and log in.',
    });
  });

  it('user and token commands on a directory that is not a relay\'s (a mistyped --data-dir) are refused and create nothing', async () => {
    const parent = tmpDir();
    const typo = path.join(parent, 'relay-dta');
    const empty = path.join(parent, 'empty');
    fs.mkdirSync(empty);
    const [user, token, inEmpty] = await Promise.all([
      runToEnd(['--data-dir', typo, 'user', 'set', 'sales'], { stdin: 'correct horse battery\n' }),
      runToEnd(['--data-dir', typo, 'token', 'create', '--name', 'laptop', '--role', 'viewer']),
      runToEnd(['--data-dir', empty, 'token', 'list']),
    ]);
    for (const r of [user, token]) {
      expect(r.code).toBe(1);
      expect(r.err).toContain(`${typo} does not exist: it is not a relay's data directory. Check --data-dir, or start the relay once with --data-dir ${typo} to create it.`);
    }
    // a relay directory whose config.json is broken: user set says what to fix, and that nothing changed
    const { dir } = await dataDirWithConfig();
    fs.writeFileSync(path.join(dir, 'config.json'), '{"smtp": {"maxConnections": "ten"}}');
    const broken = await runToEnd(['--data-dir', dir, 'user', 'set', 'sales'], { stdin: 'correct horse battery\n' });
    expect(broken.code).toBe(1);
    expect(broken.err).toContain('smtp.maxConnections: must be a number; it is "ten"\nNothing was changed. Fix the key named above and run the command again.');
    expect(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).toBe('{"smtp": {"maxConnections": "ten"}}');
    // a user name the config cannot hold: the argument is named, not a config key
    const badName = await runToEnd(['--data-dir', dir, 'user', 'set', 'j doe'], { stdin: 'correct horse battery\n' });
    expect(badName.code).toBe(2);
    expect(badName.err).toContain('error: "j doe" cannot be a user name: user names are 1-128 letters, digits or . _ @ + -');
    expect(inEmpty.code).toBe(1);
    expect(inEmpty.err).toContain(`${empty} has no config.json`);
    expect(fs.existsSync(typo)).toBe(false);
    expect(fs.readdirSync(empty)).toEqual([]);
  });

  it('`user set` at a terminal asks twice without echoing, Enter ends each; a mismatch or Ctrl+C changes nothing', async () => {
    const { dir } = await dataDirWithConfig();
    const atTerminal = async (...answers: string[]) => {
      const pairs = answers.flatMap((a, i) => [i === 0 ? 'password: ' : 'again: ', a]);
      const child = spawn('python3', [path.join(ROOT, 'test/helpers/pty-run.py'), ...pairs, '--', process.execPath, '--import', 'tsx', 'relay/cli.ts', '--data-dir', dir, 'user', 'set', 'sales'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let shown = '';
      child.stdout.on('data', (d: Buffer) => (shown += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      return { code, shown };
    };
    const users = () => (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { users: Record<string, { passwordHash: string }> }).users;

    const ok = await atTerminal('correct horse battery\r', 'correct horse battery\r');
    expect(ok.code).toBe(0);
    expect(ok.shown).toContain('password: ');
    expect(ok.shown).toContain('the same password again: ');
    expect(ok.shown).toContain('user "sales" can now authenticate');
    expect(ok.shown).not.toContain('horse');
    expect(await verifyPassword('correct horse battery', users().sales!.passwordHash)).toBe(true);

    // Backspace takes a character back; the two answers differ: refused, the stored password unchanged
    const before = users().sales!.passwordHash;
    const differ = await atTerminal('new password 1X\u007f\r', 'new password 2\r');
    expect(differ.code).toBe(1);
    expect(differ.shown).toContain('error: the two passwords differ; nothing was changed');
    expect(users().sales!.passwordHash).toBe(before);
    const fixed = await atTerminal('new password 1X\u007f\r', 'new password 1\r');
    expect(fixed.code).toBe(0);
    expect(await verifyPassword('new password 1', users().sales!.passwordHash)).toBe(true);

    const gaveUp = await atTerminal('half\u0003');
    expect(gaveUp.code).toBe(1);
    expect(gaveUp.shown).toContain('error: no password given; nothing was changed');
    expect(await verifyPassword('new password 1', users().sales!.passwordHash)).toBe(true);

    // from standard input (not a terminal): one line; an empty one and two lines are refused
    const [empty, twoLines] = await Promise.all([
      runToEnd(['--data-dir', dir, 'user', 'set', 'sales'], { stdin: '' }),
      runToEnd(['--data-dir', dir, 'user', 'set', 'sales'], { stdin: 'correct horse battery\ncorrect horse battery\n' }),
    ]);
    expect(empty.code).toBe(1);
    expect(empty.err).toContain('error: no password on standard input');
    expect(twoLines.code).toBe(1);
    expect(twoLines.err).toContain('error: the password on standard input is more than one line; give one line');
    expect(await verifyPassword('new password 1', users().sales!.passwordHash)).toBe(true);
  });

  it('token create, list and revoke', async () => {
    const { dir } = await dataDirWithConfig();
    const created = await runToEnd(['--data-dir', dir, 'token', 'create', '--name', 'laptop', '--role', 'viewer']);
    expect(created.code).toBe(0);
    expect(created.out.trim()).toMatch(/^rwt_[A-Za-z0-9_-]{43}$/);
    // independent steps run side by side to keep the file fast (each child pays tsx's start-up)
    const [list, again] = await Promise.all([
      runToEnd(['--data-dir', dir, 'token', 'list']),
      runToEnd(['--data-dir', dir, 'token', 'create', '--name', 'laptop']),
    ]);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^laptop\tviewer\t\S+$/m);
    expect(list.out).not.toContain(created.out.trim());
    expect(again.code).not.toBe(0);
    expect(again.err).toContain('exists already');
    const revoked = await runToEnd(['--data-dir', dir, 'token', 'revoke', 'laptop']);
    expect(revoked.code).toBe(0);
    // the last admin token revoked: said, with the way back
    const admin = await runToEnd(['--data-dir', dir, 'token', 'create', '--name', 'boss', '--role', 'admin']);
    expect(admin.code).toBe(0);
    const lastAdmin = await runToEnd(['--data-dir', dir, 'token', 'revoke', 'boss']);
    expect(lastAdmin.code).toBe(0);
    expect(lastAdmin.err).toContain('warning: no admin token is left: nobody can change the relay from the console. Make one with: token create --name NAME --role admin');
    expect(revoked.err).not.toContain('warning');
    const [after, missing] = await Promise.all([
      runToEnd(['--data-dir', dir, 'token', 'list']),
      runToEnd(['--data-dir', dir, 'token', 'revoke', 'laptop']),
    ]);
    expect(after.out).not.toContain('laptop');
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain('there is no token "laptop"');
    expect(fs.statSync(path.join(dir, 'tokens.json')).mode & 0o777).toBe(0o600);
  });
});

describe('the command line when the ground is not as expected', () => {
  it('unknown options, --help, a bad role and a stray argument are told apart', async () => {
    const [unknown, help, role, stray, single, listRole, userName] = await Promise.all([
      runToEnd(['--foo']),
      runToEnd(['--help']),
      runToEnd(['--data-dir', tmpDir(), 'token', 'create', '--name', 'x', '--role', 'root']),
      runToEnd(['--data-dir', tmpDir(), 'token', 'list', 'extra']),
      runToEnd(['-x']),
      runToEnd(['--data-dir', tmpDir(), 'token', 'list', '--role', 'admin']),
      runToEnd(['--data-dir', tmpDir(), 'user', 'remove', 'sales', '--name', 'x']),
    ]);
    expect(listRole.err).toContain('--name and --role belong to "token create", not "token list"');
    expect(userName.err).toContain('--name belongs to "token create"');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^error: unknown option --foo\nusage:/);
    expect(single.err).toMatch(/^error: unknown option -x\n/);
    // asked for: the usage on standard output, and success
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage:\n/);
    expect(help.out).toContain('(default role: viewer)');
    expect(help.err).toBe('');
    expect(role.code).toBe(2);
    expect(role.err).toContain('--role must be admin or viewer (it is "root")');
    expect(stray.code).toBe(2);
    expect(stray.err).toContain('token list takes no argument (it was given "extra")');
  });

  it('extra words after a user or token NAME are refused, not dropped; a name an object has by inheritance is no user', async () => {
    const { dir } = await dataDirWithConfig();
    const before = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
    const [userSet, userRemove, create, revoke, proto] = await Promise.all([
      runToEnd(['--data-dir', dir, 'user', 'set', 'John', 'Smith'], { stdin: 'longenough1\n' }),
      runToEnd(['--data-dir', dir, 'user', 'remove', 'a', 'b']),
      runToEnd(['--data-dir', dir, 'token', 'create', '--name', 'y', 'extra']),
      runToEnd(['--data-dir', dir, 'token', 'revoke', 'y', 'z']),
      runToEnd(['--data-dir', dir, 'user', 'remove', 'toString']),
    ]);
    expect([userSet.code, userRemove.code, create.code, revoke.code]).toEqual([2, 2, 2, 2]);
    expect(userSet.err).toContain('user set takes one NAME (it was given "John" "Smith"; a user name is one word)');
    expect(userRemove.err).toContain('user remove takes one NAME (it was given "a" "b"; a user name is one word)');
    expect(create.err).toContain('token create takes --name and --role, no other words (it was given "extra")');
    expect(revoke.err).toContain('token revoke takes one NAME (it was given "y" "z")');
    expect(proto.code).toBe(1);
    expect(proto.err).toContain('there is no user "toString"');
    // nothing was made or changed
    expect(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).toBe(before);
    expect(fs.existsSync(path.join(dir, 'tokens.json')) ? fs.readFileSync(path.join(dir, 'tokens.json'), 'utf8') : '').not.toContain('"y"');
  });

  it('a --data-dir that is a file, or lies under one, is refused in words, and nothing is made', async () => {
    const file = path.join(tmpDir(), 'afile');
    fs.writeFileSync(file, 'x');
    const [isFile, under] = await Promise.all([runToEnd(['--data-dir', file]), runToEnd(['--data-dir', path.join(file, 'data')])]);
    expect(isFile.code).toBe(1);
    expect(isFile.err).toContain(`cannot use ${file}: ${file} is a file, not a directory. Check --data-dir.`);
    expect(under.code).toBe(1);
    expect(under.err).toContain('a part of that path is a file, not a directory');
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });

  it('a port in use is reported once, and a failed first start says what it made and keeps', async () => {
    const { dir, port } = await dataDirWithConfig();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', () => resolve()));
    try {
      const r = await runToEnd(['--data-dir', dir]);
      expect(r.code).toBe(1);
      expect(r.err.match(/EADDRINUSE/g)).toHaveLength(1);
      expect(r.err).toContain(`cannot listen for SMTP on 127.0.0.1:${port}`);
      expect(r.err).toContain(`this start made, in ${dir}, and keeps for the next one: a self-signed certificate (tls/); the admin token`);
      expect(r.err).not.toContain('config.json (every default)'); // it was there before
      expect(fs.existsSync(path.join(dir, 'admin-token'))).toBe(true);
      expect(fs.existsSync(path.join(dir, 'relay.pid'))).toBe(false);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('the relay outlives its log: standard output gone (a closed terminal, `| head`), SIGHUP still reloads, SMTP still answers', async () => {
    const { dir, port } = await dataDirWithConfig({
      domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } },
      checks: { reverseDns: { mode: 'off' }, senderDomain: { mode: 'off' } },
    });
    const r = await startRelay(dir);
    // the reading end goes away: every later write to the relay's stdout fails with EPIPE
    r.child.stdout!.destroy();
    // a reload the test can see over SMTP: it logs its line (to the dead stdout) in the same step that applies it
    const file = path.join(dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    cfg.checks.maxRecipients = { mode: 'enforce', max: 1 };
    fs.writeFileSync(file, JSON.stringify(cfg, null, 2));
    r.child.kill('SIGHUP');
    const c = await smtp(port); // greeted, and EHLO answered
    await waitFor(async () => {
      await c.cmd('RSET');
      await c.cmd('MAIL FROM:<a@example.org>');
      await c.cmd('RCPT TO:<alice@example.com>');
      return (await c.cmd('RCPT TO:<bob@example.com>')).code === 452;
    }, 'the reload to apply (maxRecipients 1)');
    r.child.kill('SIGHUP');
    expect((await c.cmd('NOOP')).code).toBe(250);
    await c.quit();
    expect(r.child.exitCode).toBeNull();
    expect(r.err()).not.toMatch(/EPIPE|Unhandled/);
    r.child.kill('SIGTERM');
    expect((await r.exited).code).toBe(0);
  });
});
