/**
 * Issue 3 bench: end to end. smtp-source (20 sessions, 1.5 KB, one recipient, one message per connection) submits
 * through the relay (every option enforced, fsync on) to smtp-sink as the destination. Prints accepted msgs/s,
 * delivered msgs/s and the time until the last message reached the sink; beside it, in the same run,
 * smtp-source straight into smtp-sink (the tools' ceiling). Each relay gets the warm-up the Postfix measurement gets
 * (max(3 x sessions, 300) messages, all delivered, then 0.5 s) before the measured load.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startDnsServer } from '../test/helpers/dns-server.ts';
import { cpuMs, fmt, freePort, smtpSource, startRelayProcess, startSmtpSink, table } from './lib.ts';
import { benchRelayConfig, BENCH_ZONE } from './smtp-accept.ts';

export async function benchEndToEnd(opts: { messages?: number; sessions?: number[] } = {}): Promise<string> {
  const messages = opts.messages ?? 3000;
  const rows: (string | number)[][] = [];
  const dns = await startDnsServer(BENCH_ZONE);
  try {
    for (const sessions of opts.sessions ?? [20, 100]) {
      // ceiling: the tools alone
      const direct = await startSmtpSink();
      const d = await smtpSource({ port: direct.port, sessions, messages });
      await direct.proc.stop();
      // through the relay
      const sink = await startSmtpSink();
      const relayPort = await freePort();
      const relay = await startRelayProcess(benchRelayConfig(relayPort, dns.server, sink.port, await freePort()));
      try {
        // the same warm-up as the Postfix measurement (bench/postfix.ts): JIT, DNS cache, worker threads, connections
        const warm = Math.max(sessions * 3, 300);
        const w = await smtpSource({ port: relayPort, sessions, messages: warm });
        if (!w.ok) throw new Error(`smtp-source (warm-up) failed: ${w.output.slice(-400)}`);
        const warmUntil = Date.now() + 60_000;
        while (sink.received() < warm && Date.now() < warmUntil) await sleep(20);
        if (sink.received() < warm) throw new Error(`warm-up: ${sink.received()}/${warm} at smtp-sink`);
        await sleep(500);
        const base = sink.received();
        const c0 = cpuMs(relay.pid);
        const t0 = performance.now();
        const r = await smtpSource({ port: relayPort, sessions, messages });
        if (!r.ok) throw new Error(`smtp-source failed: ${r.output.slice(-400)}`);
        const until = Date.now() + 120_000;
        while (sink.received() - base < messages && Date.now() < until) await sleep(20);
        const tLast = performance.now() - t0;
        const got = sink.received() - base;
        const cpu = (cpuMs(relay.pid) - c0) / messages;
        rows.push([sessions, fmt((messages / r.ms) * 1000), fmt((got / tLast) * 1000), fmt(tLast / 1000, 2), `${got}/${messages}`, fmt(cpu, 2), fmt((messages / d.ms) * 1000)]);
      } finally {
        await relay.stop();
        await sink.proc.stop();
      }
    }
  } finally {
    await dns.close();
  }
  return table(`End to end: smtp-source -> Relay Warden -> smtp-sink (${messages} messages of 1.5 KB, 1 recipient, one per connection)`,
    ['sessions', 'accepted msgs/s', 'delivered msgs/s', 'time to last at sink (s)', 'arrived', 'relay CPU ms/msg', 'ceiling: smtp-source -> smtp-sink (msgs/s)'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchEndToEnd().then((t) => console.log(t), (e: Error) => {
    console.error(e);
    process.exit(1);
  });
}
