/**
 * Crash safety: the relay runs as a child process (relay/cli.ts, as `npm run relay -- --data-dir DIR` runs it),
 * 20 SMTP sessions push 10,000 messages through it into a sink, and the relay is killed with SIGKILL several times:
 *  1. mid-load: sessions are mid-DATA and deliveries to a slow sink are in flight;
 *  2. mid-rename: at a commit renamed into the queue whose directory is not yet fsynced (RELAY_WARDEN_TEST_CRASH=dirsync:N);
 *  3. before the rename: at a commit whose data is fsynced but not yet in the queue (RELAY_WARDEN_TEST_CRASH=rename:N);
 *  4. mid-delivery: the sink holds every delivery for a while, the relay is killed while they wait.
 * After each kill the relay restarts on the same data directory. At the end every message that got a 250 must have
 * reached the sink (at least once; duplicates are allowed) and the spool must drain.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSink, type Sink } from './helpers/sink.ts';
import { SmtpLoad, TOKEN_RE } from './helpers/queue-load.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOTAL = 10_000;

let dir: string;
let sink: Sink;
let smtpPort: number;
let child: ChildProcess | null = null;
let childPid = 0;
let sinkDelayMs = 0;
const received = new Map<string, number>();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Starts the relay; resolves with its pid once it says it is running. */
function startRelay(env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', 'relay/cli.ts', '--data-dir', dir], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the relay did not start within 20 s:\n${out}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Relay Warden is running \(pid (\d+)\)/.exec(out);
      if (m) {
        clearTimeout(timer);
        c.stdout!.off('data', onData);
        c.stdout!.resume();
        childPid = Number(m[1]);
        resolve(childPid);
      }
    };
    c.stdout!.on('data', onData);
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    c.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the relay exited (${code ?? sig}) before it was running:\n${out}`));
    });
  });
}

function exited(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
  });
}

async function kill(): Promise<void> {
  const c = child!;
  process.kill(childPid, 'SIGKILL');
  await exited(c);
  if (child === c) child = null;
}

function spoolCount(): number {
  try {
    // message files and segments (several messages each): 0 once the queue is empty
    return fs.readdirSync(path.join(dir, 'spool', 'queue')).filter((n) => n.endsWith('.msg') || n.endsWith('.seg')).length;
  } catch {
    return 0;
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-crash-'));
  sink = await startSink({
    // the sink's answer can be slowed down to keep deliveries in flight at a kill
    dataDelayMs: () => sinkDelayMs,
    onData: (m) => {
      const token = TOKEN_RE.exec(m.data.toString('latin1'))?.[1];
      if (token) received.set(token, (received.get(token) ?? 0) + 1);
    },
  });
  smtpPort = await freePort();
  const config = {
    smtp: { listen: `127.0.0.1:${smtpPort}`, hostname: 'relay.test' },
    manage: { listen: `127.0.0.1:${await freePort()}` },
    groups: { Trusted: [{ address: '127.0.0.0/8', comment: 'the load generator: no per-IP limits, no DNS checks' }] },
    domains: { 'sink.test': { deliverTo: sink.address, recipients: '*' } },
    delivery: { tls: 'off' },
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
});

afterAll(async () => {
  if (child) await kill().catch(() => {});
  await sink?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('every message acknowledged with 250 reaches the sink across four SIGKILLs', { timeout: 180_000 }, async () => {
  const acked = new Set<string>();
  let sent = 0;
  const load = async (prefix: string, limit: number, until: (n: number) => boolean) => {
    const l = new SmtpLoad({ port: smtpPort, sessions: 20, limit, prefix, rcpt: 'user@sink.test' });
    let killed: Promise<void> | null = null;
    const poll = setInterval(() => {
      if (!killed && until(l.acked.size)) killed = kill();
    }, 2);
    await l.done;
    clearInterval(poll);
    await killed;
    for (const t of l.acked) acked.add(t);
    sent += l.acked.size;
    return l;
  };
  const log: string[] = [];

  // 1. mid-load: SIGKILL after 2,000 acknowledgements while sessions are mid-DATA
  await startRelay();
  let l = await load('A', 3000, (n) => n >= 2000);
  log.push(`A: ${l.acked.size} acked, spool ${spoolCount()}`);
  expect(l.acked.size).toBeGreaterThanOrEqual(2000);

  // 2. mid-rename: the 1,500th commit of this run is renamed into the queue, the directory not yet fsynced
  await startRelay({ RELAY_WARDEN_TEST_CRASH: 'dirsync:1500' });
  const c2 = child!;
  l = await load('B', 3000, () => false);
  await exited(c2);
  expect(c2.signalCode).toBe('SIGKILL');
  child = null;
  log.push(`B: ${l.acked.size} acked, spool ${spoolCount()}`);
  expect(l.acked.size).toBeGreaterThan(1000);
  expect(l.acked.size).toBeLessThan(1500);

  // 3. before the rename: the 1,000th commit of this run has its data fsynced, not yet in the queue
  await startRelay({ RELAY_WARDEN_TEST_CRASH: 'rename:1000' });
  const c3 = child!;
  l = await load('C', 3000, () => false);
  await exited(c3);
  expect(c3.signalCode).toBe('SIGKILL');
  child = null;
  log.push(`C: ${l.acked.size} acked, spool ${spoolCount()}`);
  expect(l.acked.size).toBeLessThan(1000);

  // 4. mid-delivery: the sink holds each message for 300 ms; kill while deliveries wait for its answer
  sinkDelayMs = 300;
  await startRelay();
  let inFlightAtKill = 0;
  l = await load('D', TOTAL - sent, (n) => {
    if (n >= Math.min(1000, TOTAL - sent - 1) && sink.activeTransactions >= 5) {
      inFlightAtKill = sink.activeTransactions;
      return true;
    }
    return false;
  });
  log.push(`D: ${l.acked.size} acked, spool ${spoolCount()}, ${inFlightAtKill} deliveries in flight at the kill`);
  expect(inFlightAtKill).toBeGreaterThanOrEqual(5);
  sinkDelayMs = 0;

  // 5. the rest, then let the queue drain
  await startRelay();
  if (sent < TOTAL) {
    l = await load('E', TOTAL - sent, () => false);
    log.push(`E: ${l.acked.size} acked`);
  }
  expect(sent).toBeGreaterThanOrEqual(TOTAL);
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline && [...acked].some((t) => !received.has(t))) await new Promise((r) => setTimeout(r, 100));
  const missing = [...acked].filter((t) => !received.has(t));
  const duplicates = [...received.values()].filter((n) => n > 1).length;
  log.push(`acked ${acked.size}, received ${received.size} distinct, ${duplicates} duplicated, missing ${missing.length}`);
  console.log(log.join('\n'));
  expect(missing).toEqual([]);
  // the queue drains: nothing is stuck, nothing was found unreadable
  await expect.poll(spoolCount, { timeout: 30_000, interval: 100 }).toBe(0);
  expect(fs.existsSync(path.join(dir, 'spool', 'corrupt'))).toBe(false);
});
