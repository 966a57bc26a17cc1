/**
 * Management channel bench (issue 4). The relay runs as a child process (as in production) on a data directory whose
 * history already holds 1,000,000 events; load comes from Postfix's smtp-source; mail goes to smtp-sink; DNS from a
 * loopback server. Measured, with the baseline from the same run:
 *  1. SMTP msgs/s with 0 subscribers (baseline), 1 subscriber, and 3 subscribers of which one is stalled (never reads),
 *     interleaved over rounds (median), and the ratios to the baseline;
 *  2. events/s delivered to one subscriber under that load;
 *  3. the time from a config.update reply to the reply of the first SMTP command that meets the new policy;
 *  4. events.query by IP over the 1,000,000 stored events, over wss (end to end) and in-process (the store alone).
 *
 * Usage: npx tsx bench/manage.ts [--messages N] [--rounds N] [--events N]   (or call benchManage() from a runner)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { RelayEvent } from '../shared/events.ts';
import { EventHistory } from '../relay/store/history.ts';
import { startDnsServer } from '../test/helpers/dns-server.ts';
import { RawSmtp } from '../test/helpers/smtp-client.ts';

import { ROOT, cpuMs, fmt, freePort, median, smtpSource as runSmtpSource, runIfMain, startProc, table, waitForPort, type Proc } from './lib.ts';

// --- process and network helpers: bench/lib.ts ------------------------------------------------------------------------

function which(cmd: string): string | null {
  for (const d of [...(process.env.PATH ?? '').split(':'), '/usr/sbin']) if (fs.existsSync(path.join(d, cmd))) return path.join(d, cmd);
  return null;
}

/** smtp-source (one message per connection, 1.5 KB); returns the wall time in ms, throws if a message was refused. */
async function smtpSource(port: number, sessions: number, messages: number): Promise<number> {
  if (!which('smtp-source')) throw new Error('smtp-source is missing: apt-get install -y postfix (its service is not started)');
  const r = await runSmtpSource({ port, sessions, messages, timeoutMs: 300_000 });
  if (!r.ok) throw new Error(`smtp-source failed: ${r.output.slice(-500)}`);
  return r.ms;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};
// --- a light management client: pins the certificate, counts events, parses nothing it does not need --------------

class Console {
  events = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: { result?: unknown; error?: { code: number; message: string } }) => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('{"jsonrpc":"2.0","method":"events.batch"')) {
        // count without building objects: each event has one "kind" key
        let i = -1;
        while ((i = text.indexOf('"kind":', i + 1)) >= 0) this.events++;
        return;
      }
      const m = JSON.parse(text) as { id?: number; result?: unknown; error?: { code: number; message: string } };
      if (m.id !== undefined) this.waiting.get(m.id)?.(m);
    });
    ws.on('error', () => {});
  }

  static connect(port: number, fingerprint: string): Promise<Console> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/`, {
        rejectUnauthorized: false,
        maxPayload: 512 * 1024 * 1024,
        createConnection: ((o: tls.ConnectionOptions) => {
          const s = tls.connect({ ...o, rejectUnauthorized: false });
          s.once('secureConnect', () => {
            if (s.getPeerX509Certificate()?.fingerprint256 !== fingerprint) s.destroy(new Error('certificate fingerprint mismatch'));
          });
          return s;
        }) as never,
      });
      ws.once('open', () => resolve(new Console(ws)));
      ws.once('error', reject);
    });
  }

  call<T>(method: string, params: object = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (r) => {
        this.waiting.delete(id);
        if (r.error) reject(new Error(`${method}: ${r.error.code} ${r.error.message}`));
        else resolve(r.result as T);
      });
      this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  /** Stop reading from the socket: a console that hangs. */
  stall(): void {
    (this.ws as unknown as { _socket: net.Socket })._socket.pause();
  }

  close(): void {
    this.ws.terminate();
  }
}

// --- the stored history: 1,000,000 events over the last three days ----------------------------------------------------

function syntheticEvents(n: number, now: number): Iterable<RelayEvent> {
  const span = 3 * 86_400_000;
  const ips = 2000;
  return {
    *[Symbol.iterator]() {
      for (let i = 0; i < n; i++) {
        const ip = `10.${(i % ips) >> 8}.${i % ips & 255}.7`;
        const at = now - span + Math.floor((i / n) * span);
        const sessionId = `bench${Math.floor(i / 5)}`;
        const base = { id: i + 1, at, sessionId, ip };
        switch (i % 5) {
          case 0:
            yield { ...base, kind: 'connect' };
            break;
          case 1:
            yield { ...base, kind: 'mail', from: 'sender@example.org' };
            break;
          case 2:
            yield { ...base, kind: 'rcpt', to: 'alice@example.com', local: true };
            break;
          case 3:
            yield i % 20 === 3
              ? { ...base, kind: 'rejected', stage: 'mail', rule: 'limits.messagesPerHour', code: 450, text: `4.7.1 Too much mail from ${ip}: 100 messages in the last hour (limit 100). Try again later.`, enforced: true }
              : { ...base, kind: 'accepted', queueId: `Q${i}`, size: 1800, from: 'sender@example.org', to: ['alice@example.com'] };
            break;
          default:
            yield { ...base, kind: 'disconnect', messages: 1 };
        }
      }
    },
  };
}

// --- the bench -------------------------------------------------------------------------------------------------------

export interface ManageBenchOptions {
  /** messages per smtp-source run (default 3000) */
  messages?: number;
  /** interleaved rounds of the 0/1/3 subscriber runs (default 3) */
  rounds?: number;
  /** events stored before the relay starts (default 1,000,000) */
  storedEvents?: number;
  sessions?: number;
  log?: (line: string) => void;
}

export async function benchManage(opts: ManageBenchOptions = {}): Promise<string> {
  const messages = opts.messages ?? 2000;
  const rounds = opts.rounds ?? 5;
  const stored = opts.storedEvents ?? 1_000_000;
  const sessions = opts.sessions ?? 20;
  const log = opts.log ?? ((l: string) => console.error(l));
  const out: string[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-bench-manage-'));
  const dns = await startDnsServer({
    mx: { 'example.org': [{ exchange: 'mx.example.org', priority: 10 }] },
    a: { 'mx.example.org': ['127.0.0.1'] },
    ptr: { '127.0.0.1': ['localhost.bench.test'] },
    ttl: 3600,
  });
  const procs: Proc[] = [];
  const consoles: Console[] = [];
  try {
    // the destination
    const sinkBin = which('smtp-sink');
    if (!sinkBin) throw new Error('smtp-sink is missing: apt-get install -y postfix (its service is not started)');
    const sinkPort = await freePort();
    procs.push(startProc(sinkBin, ['-u', 'nobody', '-c', `127.0.0.1:${sinkPort}`, '4096']));
    await waitForPort(sinkPort);

    // 1,000,000 events in the history before the relay starts
    log(`manage bench: storing ${fmt(stored)} events in the history`);
    const t0 = performance.now();
    const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), log: () => {} });
    h.load(syntheticEvents(stored, Date.now()));
    const loadMs = performance.now() - t0;
    // the store alone, in this process
    const inProcess: number[] = [];
    for (let i = 0; i < 30; i++) {
      const ip = `10.${(i * 37) % 2000 >> 8}.${(i * 37) % 2000 & 255}.7`;
      const q0 = performance.now();
      const r = h.query({ ip, order: 'desc', limit: 500 });
      inProcess.push(performance.now() - q0);
      if (r.events.length !== Math.min(500, Math.floor(stored / 2000))) throw new Error(`query by ${ip} returned ${r.events.length} events`);
    }
    const storeBytes = h.bytes();
    h.close();

    // the relay
    const smtpPort = await freePort();
    const managePort = await freePort();
    fs.writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({
        smtp: { listen: `127.0.0.1:${smtpPort}`, hostname: 'relay.bench.test' },
        manage: { listen: `127.0.0.1:${managePort}` },
        dns: { servers: [dns.server], timeoutMs: 2000 },
        domains: { 'example.com': { deliverTo: `127.0.0.1:${sinkPort}`, recipients: ['alice', 'bob'] } },
        limits: { messagesPerHour: { max: 1_000_000 }, concurrentConnections: { max: 100_000 } },
      }),
    );
    const relay = startProc(process.execPath, ['--import', 'tsx', path.join(ROOT, 'relay/cli.ts'), '--data-dir', dir]);
    procs.push(relay);
    await waitForPort(managePort, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${relay.output()}`);
    });
    await waitForPort(smtpPort);
    const token = fs.readFileSync(path.join(dir, 'admin-token'), 'utf8').trim();
    const fingerprint = new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'tls', 'cert.pem'))).fingerprint256;
    const open = async () => {
      const c = await Console.connect(managePort, fingerprint);
      await c.call('auth.login', { token });
      consoles.push(c);
      return c;
    };
    const admin = await open();

    // events.query over wss, on the running relay
    const overWss: number[] = [];
    const ranged: number[] = [];
    for (let i = 0; i < 30; i++) {
      const ip = `10.${(i * 53) % 2000 >> 8}.${(i * 53) % 2000 & 255}.7`;
      const q0 = performance.now();
      const r = await admin.call<{ events: unknown[] }>('events.query', { ip, limit: 500 });
      overWss.push(performance.now() - q0);
      if (r.events.length !== Math.min(500, Math.floor(stored / 2000))) throw new Error(`events.query by ${ip} returned ${r.events.length} events`);
      const now = Date.now();
      const q1 = performance.now();
      await admin.call('events.query', { ip, from: now - 86_400_000 * 2, to: now - 86_400_000, rejectionsOnly: true, limit: 100 });
      ranged.push(performance.now() - q1);
    }

    // SMTP throughput with 0, 1 and 3 (one stalled) subscribers, interleaved
    await smtpSource(smtpPort, sessions, Math.min(500, messages)); // warm-up: JIT, DNS cache, sink connections
    const rate: Record<string, number[]> = { '0': [], '1': [], '3': [] };
    const cpu: Record<string, number[]> = { '0': [], '1': [], '3': [] };
    const delivered: number[] = [];
    const relayPid = relay.child.pid!;
    const orders = [['0', '1', '3'], ['1', '3', '0'], ['3', '0', '1']] as const;
    for (let round = 0; round < rounds; round++) {
      for (const n of orders[round % 3]!) {
        const subs: Console[] = [];
        if (n !== '0') {
          const c = await open();
          await c.call('events.subscribe', {});
          subs.push(c);
        }
        if (n === '3') {
          const healthy = await open();
          await healthy.call('events.subscribe', { filter: { rejectionsOnly: true } });
          const stalled = await open();
          await stalled.call('events.subscribe', {});
          stalled.stall();
          subs.push(healthy, stalled);
        }
        await sleep(200);
        const c0 = cpuMs(relayPid);
        const ms = await smtpSource(smtpPort, sessions, messages);
        rate[n]!.push((messages / ms) * 1000);
        cpu[n]!.push(((cpuMs(relayPid) - c0) * 1000) / messages);
        if (n === '1') {
          await sleep(300); // the last batch
          delivered.push((subs[0]!.events / ms) * 1000);
        }
        for (const c of subs) c.close();
        await sleep(300);
      }
      log(`manage bench: round ${round + 1}/${rounds}: ${['0', '1', '3'].map((n) => `${n} subs ${fmt(rate[n]!.at(-1)!)} msg/s`).join(', ')}`);
    }

    // config.update -> the first SMTP command that meets the new policy
    const lat: number[] = [];
    let missed = 0;
    for (let i = 0; i < 20; i++) {
      // an open, greeted session (a failed MAIL counts toward maxFailedCommands, so one session per try)
      const smtp = await RawSmtp.connect(smtpPort);
      await smtp.hello('bench.client');
      const g = await admin.call<{ revision: number; config: { limits: { messagesPerHour: { max: number } } } }>('config.get');
      const strict = i % 2 === 0; // alternate: a limit this client is far over, then one it is far under
      g.config.limits.messagesPerHour.max = strict ? 1 : 1_000_000;
      await admin.call('config.update', { baseRevision: g.revision, config: g.config });
      const t1 = performance.now();
      const r = await smtp.cmd('MAIL FROM:<bench@example.org>');
      lat.push(performance.now() - t1);
      if ((strict && r.code !== 450) || (!strict && r.code !== 250)) missed++;
      await smtp.quit();
    }

    const base = median(rate['0']!);
    const baseCpu = median(cpu['0']!);
    const spread = (xs: number[]) => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
    out.push(
      table(`Management channel (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'})`, ['measure', 'value', 'baseline / goal', 'ratio'], [
        ['SMTP msgs/s, 0 subscribers (baseline)', `${fmt(base)} (${spread(rate['0']!)})`, `median of ${rounds} rounds`, '1.00'],
        ['SMTP msgs/s, 1 subscriber (all events)', `${fmt(median(rate['1']!))} (${spread(rate['1']!)})`, fmt(base), fmt(median(rate['1']!) / base, 3)],
        ['SMTP msgs/s, 3 subscribers (1 stalled)', `${fmt(median(rate['3']!))} (${spread(rate['3']!)})`, `${fmt(base)} (goal: within 5%)`, fmt(median(rate['3']!) / base, 3)],
        ['relay CPU per message, 0 subscribers (us)', fmt(baseCpu), 'baseline', '1.00'],
        ['relay CPU per message, 1 subscriber (us)', fmt(median(cpu['1']!)), fmt(baseCpu), fmt(median(cpu['1']!) / baseCpu, 3)],
        ['relay CPU per message, 3 subscribers, 1 stalled (us)', fmt(median(cpu['3']!)), fmt(baseCpu), fmt(median(cpu['3']!) / baseCpu, 3)],
        ['events/s delivered to one subscriber', fmt(median(delivered)), `${fmt(median(rate['1']!))} msg/s x ~5 events`, ''],
        ['config.update reply -> next SMTP reply (median / max ms)', `${fmt(median(lat), 1)} / ${fmt(Math.max(...lat), 1)}`, 'goal < 50 ms', `${missed} of ${lat.length} missed the new policy`],
        [`events.query by IP over ${fmt(stored)} events, wss (median / p95 ms)`, `${fmt(median(overWss), 1)} / ${fmt(pct(overWss, 95), 1)}`, 'goal < 100 ms', 'limit 500, newest first'],
        ['  same, with a 24 h time range, rejections only', `${fmt(median(ranged), 1)} / ${fmt(pct(ranged, 95), 1)}`, 'goal < 100 ms', ''],
        ['  the store alone, in-process (median / p95 ms)', `${fmt(median(inProcess), 1)} / ${fmt(pct(inProcess, 95), 1)}`, '', ''],
        [`loading ${fmt(stored)} events (s) / file size (MiB)`, `${fmt(loadMs / 1000, 1)} / ${fmt(storeBytes / 1024 ** 2)}`, '', ''],
      ]),
    );
    out.push(`\nSMTP runs: smtp-source -s ${sessions} -m ${messages} -l 1500, one message per connection, the three cases interleaved in rotating order; each run opens fresh consoles; the stalled console never reads its socket. msgs/s is wall-clock (min-max in brackets) and moves with whatever else the machine runs; relay CPU per message (from /proc) is the steadier measure of what subscribers cost the relay. Machine load average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}.`);
    return out.join('\n');
  } finally {
    for (const c of consoles) c.close();
    for (const p of procs.reverse()) await p.stop();
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, (arg) => benchManage({ messages: arg('--messages'), rounds: arg('--rounds'), storedEvents: arg('--events') }));
