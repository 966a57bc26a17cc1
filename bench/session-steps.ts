/**
 * Where one SMTP session's time goes under load: a probe client runs 150 transactions one after the other (connect,
 * EHLO, MAIL, RCPT, DATA, the message, QUIT) while smtp-source keeps 19 other sessions busy, and the median wait for
 * each reply is printed, for the bare smtp-server baseline, the relay's checks alone (bench/relay-discard.ts) and the
 * whole relay (the message fsynced in the spool before its 250, delivery running). It shows which step a goal at 20
 * sessions depends on. `npm run bench -- steps`, or `npx tsx bench/session-steps.ts --probes N`.
 */
import net from 'node:net';
import { startDnsServer } from '../test/helpers/dns-server.ts';
import { fmt, freePort, runIfMain, smtpSource, startProc, startRelayProcess, startSmtpSink, startSmtpSource, table, waitForPort, ROOT } from './lib.ts';
import { benchRelayConfig, BENCH_ZONE } from './smtp-accept.ts';

const STEPS = ['TCP connect', '220 greeting', 'EHLO', 'MAIL FROM', 'RCPT TO', 'DATA (354)', 'end of data (250)', 'QUIT (221)'];

/** One transaction; the time from the start to each reply (the first entry: the TCP connection). */
function probe(port: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const marks: number[] = [];
    const t0 = performance.now();
    const s = net.connect({ port, host: '127.0.0.1' });
    const say = ['EHLO probe.bench.test\r\n', 'MAIL FROM:<probe@example.org>\r\n', 'RCPT TO:<alice@example.com>\r\n', 'DATA\r\n', `Subject: probe\r\n\r\n${'x'.repeat(1400)}\r\n.\r\n`, 'QUIT\r\n'];
    let buf = '';
    let next = 0;
    s.on('connect', () => marks.push(performance.now() - t0));
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      // a reply is complete at its last line: "NNN text\r\n"
      if (!/(^|\n)\d{3} [^\n]*\r\n$/.test(buf)) return;
      if (!/^[23]/.test(buf)) return reject(new Error(`probe refused: ${buf.trim()}`));
      buf = '';
      marks.push(performance.now() - t0);
      if (next < say.length) s.write(say[next++]!);
      else s.end();
    });
    s.on('close', () => (marks.length === STEPS.length ? resolve(marks) : reject(new Error(`probe ended after ${marks.length} replies`))));
    s.on('error', reject);
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(port: number, probes: number): Promise<number[]> {
  await smtpSource({ port, sessions: 20, messages: 500 }); // warm-up
  const load = startSmtpSource({ port, sessions: 19, messages: 1_000_000 });
  const runs: number[][] = [];
  try {
    for (let i = 0; i < probes; i++) runs.push(await probe(port));
  } finally {
    await load.stop();
  }
  const steps = STEPS.map((_, j) => median(runs.map((m) => m[j]! - (j ? m[j - 1]! : 0))));
  return [...steps, median(runs.map((m) => m[m.length - 1]!))];
}

export async function benchSessionSteps(opts: { probes?: number } = {}): Promise<string> {
  const probes = opts.probes ?? 150;
  const dns = await startDnsServer(BENCH_ZONE);
  const sink = await startSmtpSink();
  const cols: { name: string; ms: number[] }[] = [];
  try {
    const barePort = await freePort();
    const bare = startProc(process.execPath, ['--import', 'tsx', `${ROOT}/bench/baseline-sink.ts`, String(barePort), '--no-delay']);
    try {
      await waitForPort(barePort);
      cols.push({ name: 'bare smtp-server (ms)', ms: await measure(barePort, probes) });
    } finally {
      await bare.stop();
    }
    for (const [name, entry] of [['Relay Warden checks only (ms)', 'bench/relay-discard.ts'], ['Relay Warden whole relay (ms)', 'relay/cli.ts']] as const) {
      const port = await freePort();
      const relay = await startRelayProcess(benchRelayConfig(port, dns.server, sink.port, await freePort()), entry);
      try {
        cols.push({ name, ms: await measure(port, probes) });
      } finally {
        await relay.stop();
      }
    }
  } finally {
    await sink.proc.stop();
    await dns.close();
  }
  const rows = [...STEPS, 'whole session'].map((step, i) => [step, ...cols.map((c) => fmt(c.ms[i]!, 2))]);
  return table(`One session's steps under load: median wait for each reply over ${probes} probe transactions while smtp-source keeps 19 other sessions busy (1.5 KB, one message per connection)`, ['step', ...cols.map((c) => c.name)], rows);
}

runIfMain(import.meta.url, (arg) => benchSessionSteps({ probes: arg('--probes') }));
