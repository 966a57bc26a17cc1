/**
 * A real relay in the test process: its own temp data directory, a config written before start, SMTP on a
 * free loopback port, DNS answered by a real DNS server on loopback, a fake clock, and every event recorded.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ConfigInput } from '../../shared/config.ts';
import type { RelayEvent } from '../../shared/events.ts';
import { Relay, type RelayOptions } from '../../relay/relay.ts';
import { startDnsServer, type TestDnsServer, type Zone } from './dns-server.ts';

export class FakeClock {
  constructor(public t = Date.parse('2026-11-27T12:00:00Z')) {}
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface TestRelay {
  relay: Relay;
  port: number;
  dir: string;
  dns: TestDnsServer;
  clock: FakeClock;
  events: RelayEvent[];
  /** events of one kind (and, for rejections, rule) */
  rejections(rule?: string): Extract<RelayEvent, { kind: 'rejected' }>[];
  stop(): Promise<void>;
}

/** DNS for the usual test clients: 127.0.0.0/24 have PTR records, example.org has an MX. */
export const DEFAULT_ZONE: Zone = {
  mx: { 'example.org': [{ exchange: 'mx.example.org', priority: 10 }], 'nullmx.example': [{ exchange: '.', priority: 0 }] },
  // (each client's PTR name points back to it: the Received header names a client only so)
  a: { 'mx.example.org': ['127.0.0.1'], 'a-only.example': ['127.0.0.1'], ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`host${i + 1}.test`, [`127.0.0.${i + 1}`]])) },
  ptr: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`127.0.0.${i + 1}`, [`host${i + 1}.test`]])),
  timeout: ['slow.example'],
  servfail: ['broken.example'],
};

export async function startTestRelay(
  config: ConfigInput = {},
  opts: { zone?: Zone; clock?: FakeClock; relay?: Partial<RelayOptions> } = {},
): Promise<TestRelay> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-test-'));
  const dns = await startDnsServer(opts.zone ?? DEFAULT_ZONE);
  const clock = opts.clock ?? new FakeClock();
  const full = {
    ...config,
    dns: { servers: [dns.server], timeoutMs: 300, ...(config.dns ?? {}) },
    domains: config.domains ?? { 'example.com': { deliverTo: '127.0.0.1:9', recipients: ['alice', 'bob@example.com'] } },
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(full, null, 2));
  let relay: Relay;
  try {
    relay = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', now: clock.now, log: () => {}, ...opts.relay });
  } catch (err) {
    await dns.close();
    throw err;
  }
  const events: RelayEvent[] = [];
  relay.bus.subscribe((e) => events.push(e));
  return {
    relay,
    port: relay.smtpAddress.port,
    dir,
    dns,
    clock,
    events,
    rejections: (rule) =>
      events.filter((e): e is Extract<RelayEvent, { kind: 'rejected' }> => e.kind === 'rejected' && (rule === undefined || e.rule === rule)),
    async stop() {
      await relay.stop();
      await dns.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
