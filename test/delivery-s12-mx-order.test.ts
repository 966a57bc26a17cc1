/**
 * MX hosts of equal preference are tried in a random order (RFC 5321 5.1: SHOULD, to spread the load; Postfix does),
 * shuffled at each routing decision, preferences still in order. Before, they were always tried in the DNS answer's
 * order: every message went to the first host of a preference.
 *
 * The answers come from a real DNS server on loopback through the relay's own resolver. resolveTargets takes the
 * random source (the queue's `random` option); the queue-level case uses the default source and real sinks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsResolver } from '../relay/dns/resolver.ts';
import { resolveTargets } from '../relay/queue/route.ts';
import { startDnsServer, type TestDnsServer } from './helpers/dns-server.ts';
import { queueHarness } from './helpers/queue-harness.ts';
import { startSink, type Sink } from './helpers/sink.ts';

let dns: TestDnsServer;
let resolver: DnsResolver;

beforeAll(async () => {
  dns = await startDnsServer({
    mx: {
      // listed in this order in every answer
      'eq.test': [
        { exchange: 'e1.eq.test', priority: 10 },
        { exchange: 'e2.eq.test', priority: 10 },
        { exchange: 'backup.eq.test', priority: 20 },
        { exchange: 'first.eq.test', priority: 5 },
      ],
    },
    a: {
      'e1.eq.test': ['127.0.0.2'],
      'e2.eq.test': ['127.0.0.3'],
      'backup.eq.test': ['127.0.0.4'],
      'first.eq.test': ['127.0.0.5'],
    },
  });
  resolver = new DnsResolver({ servers: [dns.server], timeoutMs: 1000 });
});
afterAll(async () => {
  resolver.close();
  await dns.close();
});

async function order(random: () => number): Promise<string[]> {
  const r = await resolveTargets({ kind: 'mx', key: 'mx:eq.test', domain: 'eq.test' }, resolver, 25, random);
  if (!r.ok) throw new Error(r.reason);
  return r.targets.map((t) => t.host);
}

describe('equal-preference MX hosts', () => {
  it('are ordered by the random source, within their preference only', async () => {
    // (Fisher-Yates over the two hosts of preference 10: a draw below 0.5 swaps them, one above keeps them)
    expect(await order(() => 0)).toEqual(['first.eq.test', 'e2.eq.test', 'e1.eq.test', 'backup.eq.test']);
    expect(await order(() => 0.99)).toEqual(['first.eq.test', 'e1.eq.test', 'e2.eq.test', 'backup.eq.test']);
  });

  it('share the mail of a domain through the queue (default random source, both hosts get some)', async () => {
    // two sinks on one port (MX delivery goes to one port for every host)
    let s1: Sink | null = null;
    let s2: Sink | null = null;
    for (let tries = 0; tries < 20 && !s2; tries++) {
      const first = await startSink({ host: '127.0.0.2' });
      try {
        s2 = await startSink({ host: '127.0.0.3', port: first.port });
        s1 = first;
      } catch {
        await first.close();
      }
    }
    if (!s1 || !s2) throw new Error('no port free on both 127.0.0.2 and 127.0.0.3');
    // first.eq.test (preference 5) refuses connections (nothing listens on 127.0.0.5 at that port)
    const h = await queueHarness(
      { smtp: { hostname: 'relay.test' }, dns: { servers: [dns.server] }, delivery: { mode: 'mx', tls: 'off' } },
      { resolver, mxPort: s1.port, connectionCacheMs: 0 },
    );
    try {
      await h.queue.start();
      // 24 messages: with the hosts in a random order each time, all on one host has a chance of 2 in 2^24
      const ids: string[] = [];
      for (let i = 0; i < 24; i++) ids.push(await h.submit('alice@sender.test', [`r${i}@eq.test`]));
      await expect.poll(() => h.events.filter((e) => e.kind === 'delivered').length, { timeout: 20_000 }).toBe(24);
      expect(s1.messages.length + s2.messages.length).toBe(24);
      expect(s1.messages.length).toBeGreaterThan(0);
      expect(s2.messages.length).toBeGreaterThan(0);
    } finally {
      await h.close();
      await s1.close();
      await s2.close();
    }
  });
});
