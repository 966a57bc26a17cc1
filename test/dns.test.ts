// The relay's DNS layer against a real DNS server on 127.0.0.1 (test/helpers/dns-server.ts): real UDP and TCP
// sockets, real packets, an injected clock for the cache.
import dgram from 'node:dgram';
import { getServers } from 'node:dns';
import type { AddressInfo } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkReverseDns, checkSenderDomain } from '../relay/dns/checks.ts';
import { DnsResolver, type ResolverOptions } from '../relay/dns/resolver.ts';
import { parseDnsServer, parseDnsServers } from '../relay/dns/servers.ts';
import { startDnsServer, type TestDnsServer, type Zone } from './helpers/dns-server.ts';

const V4_ARPA = '2.0.0.127.in-addr.arpa';
const V6_ARPA = `1${'.0'.repeat(31)}.ip6.arpa`; // ::1

const ZONE: Zone = {
  mx: {
    'example.com': [
      { exchange: 'mx2.example.com', priority: 20 },
      { exchange: 'MX1.Example.com.', priority: 10 },
      { exchange: 'mx0.example.com', priority: 20 },
    ],
    'nullmx.test': [{ exchange: '.', priority: 0 }],
    'empty.test': [], // the name exists, with no record of any type
  },
  a: {
    'example.com': ['192.0.2.1', '192.0.2.2'],
    'aonly.test': ['192.0.2.10'],
    'big.test': Array.from({ length: 60 }, (_, i) => `10.0.0.${i + 1}`), // > 512 bytes: truncated over UDP
  },
  aaaa: { 'example.com': ['2001:db8::1'], 'v6only.test': ['2001:db8::10'] },
  ptr: { '127.0.0.2': ['Host.Example.com.'], '::1': ['localhost'], '127.0.0.9': [] },
  cname: { 'www.example.com': 'example.com' },
  servfail: ['servfail.test', '127.0.0.3', 'AAAA aonly-v6fail.test'],
  refused: ['refused.test'],
  timeout: ['timeout.test', '127.0.0.4', 'A v6-v4timeout.test', 'A nomx-v4timeout.test'],
};
// names for the "path that decides" cases
ZONE.aaaa!['v6-v4timeout.test'] = ['2001:db8::20'];
ZONE.a!['aonly-v6fail.test'] = ['192.0.2.30'];
ZONE.mx!['nomx-v4timeout.test'] = [];

let dns: TestDnsServer;
const resolvers: DnsResolver[] = [];
const extraServers: TestDnsServer[] = [];
const rawSockets: dgram.Socket[] = [];

function resolver(opts: Partial<ResolverOptions> = {}): DnsResolver {
  const r = new DnsResolver({ servers: [dns.server], timeoutMs: 1000, ...opts });
  resolvers.push(r);
  return r;
}

async function extraServer(zone: Zone): Promise<TestDnsServer> {
  const s = await startDnsServer(zone);
  extraServers.push(s);
  return s;
}

function asked(server: TestDnsServer, name: string, type?: string): number {
  return server.queries.filter((q) => q.name === name && (type === undefined || q.type === type)).length;
}

/** A UDP socket on 127.0.0.1 that answers every query with the packets `reply` builds (a misbehaving server). */
async function rawServer(reply: (query: dnsPacket.DecodedPacket) => Buffer[]): Promise<string> {
  const socket = dgram.createSocket('udp4');
  rawSockets.push(socket);
  socket.on('message', (msg, rinfo) => {
    for (const out of reply(dnsPacket.decode(msg))) socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(socket.address() as AddressInfo).port}`;
}

/** A port with nothing listening on it (bound, read, closed). */
async function closedPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address() as AddressInfo;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

beforeEach(async () => {
  dns = await startDnsServer(ZONE);
});

afterEach(async () => {
  for (const r of resolvers.splice(0)) r.close();
  for (const s of rawSockets.splice(0)) s.close();
  await Promise.all([dns.close(), ...extraServers.splice(0).map((s) => s.close())]);
});

describe('DnsResolver: answers', () => {
  it('returns MX records sorted by priority (then name), lower-cased, without trailing dot, with their TTL', async () => {
    const answer = await resolver().mx('Example.COM.');
    expect(answer).toEqual({
      status: 'ok',
      ttl: 300,
      records: [
        { exchange: 'mx1.example.com', priority: 10 },
        { exchange: 'mx0.example.com', priority: 20 },
        { exchange: 'mx2.example.com', priority: 20 },
      ],
    });
    expect(dns.queries).toEqual([{ name: 'example.com', type: 'MX', transport: 'udp' }]);
  });

  it('returns a null MX as exchange ""', async () => {
    expect(await resolver().mx('nullmx.test')).toEqual({ status: 'ok', ttl: 300, records: [{ exchange: '', priority: 0 }] });
  });

  it('returns A and AAAA records', async () => {
    const r = resolver();
    expect(await r.a('example.com')).toEqual({ status: 'ok', ttl: 300, records: ['192.0.2.1', '192.0.2.2'] });
    expect(await r.aaaa('example.com')).toEqual({ status: 'ok', ttl: 300, records: ['2001:db8::1'] });
  });

  it('follows a CNAME in the answer to the records of its target', async () => {
    expect(await resolver().a('WWW.example.com')).toEqual({ status: 'ok', ttl: 300, records: ['192.0.2.1', '192.0.2.2'] });
  });

  it('looks up PTR for IPv4, IPv6 and IPv4-mapped IPv6, building the arpa names itself', async () => {
    const r = resolver();
    expect(await r.ptr('127.0.0.2')).toEqual({ status: 'ok', ttl: 300, records: ['host.example.com'] });
    expect(await r.ptr('::1')).toEqual({ status: 'ok', ttl: 300, records: ['localhost'] });
    expect(await r.ptr('::ffff:127.0.0.2')).toMatchObject({ status: 'ok', records: ['host.example.com'] }); // from the cache
    expect(dns.queries.map((q) => `${q.type} ${q.name}`)).toEqual([`PTR ${V4_ARPA}`, `PTR ${V6_ARPA}`]);
    await expect(r.ptr('not-an-ip')).rejects.toThrow(/"not-an-ip" is not an IP address/);
  });

  it('tells nxdomain (no such name) from nodata (the name exists, not that type)', async () => {
    const r = resolver();
    expect(await r.mx('nowhere.test')).toEqual({ status: 'nxdomain' });
    expect(await r.mx('aonly.test')).toEqual({ status: 'nodata' });
    expect(await r.aaaa('aonly.test')).toEqual({ status: 'nodata' });
    expect(await r.ptr('127.0.0.99')).toEqual({ status: 'nxdomain' });
    expect(await r.ptr('127.0.0.9')).toEqual({ status: 'nodata' });
  });

  it('answers nxdomain for names that cannot exist, without asking', async () => {
    const r = resolver();
    for (const bad of ['', '.', 'a..b', `${'x'.repeat(64)}.com`, 'sp ace.test', `${'a.'.repeat(127)}com`]) {
      expect(await r.mx(bad)).toEqual({ status: 'nxdomain' });
    }
    expect(dns.queries).toEqual([]);
    expect(r.stats.queries).toBe(0);
  });

  it('retries a truncated UDP answer over TCP', async () => {
    const answer = await resolver().a('big.test');
    expect(answer.status).toBe('ok');
    expect(answer.status === 'ok' && answer.records).toHaveLength(60);
    expect(dns.queries).toEqual([
      { name: 'big.test', type: 'A', transport: 'udp' },
      { name: 'big.test', type: 'A', transport: 'tcp' },
    ]);
  });
});

describe('DnsResolver: failures are temperrors, said in words', () => {
  it('SERVFAIL', async () => {
    const answer = await resolver().mx('servfail.test');
    expect(answer.status).toBe('temperror');
    expect(answer.status === 'temperror' && answer.reason).toMatch(/MX lookup for servfail\.test .*answered SERVFAIL/);
  });

  it('REFUSED', async () => {
    const answer = await resolver().a('refused.test');
    expect(answer.status === 'temperror' && answer.reason).toMatch(new RegExp(`${dns.server} answered REFUSED`));
  });

  it('a timeout, within the budget, with one retry', async () => {
    const started = performance.now();
    const answer = await resolver({ timeoutMs: 200 }).mx('timeout.test');
    const elapsed = performance.now() - started;
    expect(answer.status === 'temperror' && answer.reason).toMatch(/timed out after 200 ms: .* timed out \(2 tries\)/);
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(1000);
    expect(asked(dns, 'timeout.test')).toBe(2);
  });

  it('a server that is down (closed port)', async () => {
    const port = await closedPort();
    const started = performance.now();
    const answer = await resolver({ servers: [`127.0.0.1:${port}`], timeoutMs: 500 }).a('example.com');
    expect(answer.status === 'temperror' && answer.reason).toMatch(/connection refused/);
    expect(performance.now() - started).toBeLessThan(400); // refused at once, no waiting out the budget
    const v6 = await resolver({ servers: [`[::1]:${port}`], timeoutMs: 200 }).a('example.com');
    expect(v6.status).toBe('temperror'); // refused, or "address not usable" on a host without IPv6
  });

  it('a malformed reply', async () => {
    const server = await rawServer(() => [Buffer.from('this is not a DNS message')]);
    const answer = await resolver({ servers: [server], timeoutMs: 200 }).a('example.com');
    expect(answer.status === 'temperror' && answer.reason).toMatch(/malformed reply/);
  });

  it('after close(): in-flight lookups end at once, later ones are temperror', async () => {
    const r = resolver({ timeoutMs: 5000 });
    const pending = r.a('timeout.test');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    r.close();
    expect(await pending).toEqual({ status: 'temperror', reason: 'DNS resolver closed' });
    expect(performance.now() - started).toBeLessThan(100);
    expect(await r.mx('example.com')).toEqual({ status: 'temperror', reason: 'DNS resolver closed' });
  });
});

describe('DnsResolver: replies are accepted only when they answer our question', () => {
  it('ignores replies with a wrong ID or a different question, and takes the matching one', async () => {
    const server = await rawServer((query) => {
      const q = query.questions![0]!;
      const answer = (id: number, name: string, address: string): Buffer =>
        dnsPacket.encode({
          type: 'response',
          id,
          flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
          questions: [{ ...q, name }],
          answers: [{ type: 'A', name, ttl: 60, data: address }],
        });
      return [
        answer((query.id! + 1) % 0x10000, q.name, '203.0.113.66'), // wrong ID
        answer(query.id!, 'evil.test', '203.0.113.67'), // right ID, other question
        answer(query.id!, q.name, '192.0.2.55'),
      ];
    });
    expect(await resolver({ servers: [server] }).a('example.com')).toEqual({ status: 'ok', ttl: 60, records: ['192.0.2.55'] });
  });

  it('sends a random 16-bit ID with RD set', async () => {
    const seen: dnsPacket.DecodedPacket[] = [];
    const server = await rawServer((query) => {
      seen.push(query);
      return [dnsPacket.encode({ type: 'response', id: query.id!, flags: 0, questions: query.questions! })];
    });
    const r = resolver({ servers: [server] });
    for (let i = 0; i < 8; i++) expect(await r.a(`n${i}.test`)).toEqual({ status: 'nodata' });
    expect(seen.every((q) => q.flag_rd)).toBe(true);
    expect(new Set(seen.map((q) => q.id)).size).toBeGreaterThan(1);
  });
});

describe('DnsResolver: several servers', () => {
  it('falls back to the second server when the first times out', async () => {
    const silent = await extraServer({ timeout: ['example.com'] });
    const r = resolver({ servers: [silent.server, dns.server], timeoutMs: 1000 });
    const started = performance.now();
    expect(await r.mx('example.com')).toMatchObject({ status: 'ok' });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(asked(silent, 'example.com')).toBe(1);
    expect(asked(dns, 'example.com')).toBe(1);
  });

  it('falls back to the second server when the first answers SERVFAIL or is down', async () => {
    const broken = await extraServer({ servfail: ['example.com'] });
    const down = `127.0.0.1:${await closedPort()}`;
    const r = resolver({ servers: [down, broken.server, dns.server], timeoutMs: 1000 });
    expect(await r.a('example.com')).toMatchObject({ status: 'ok', records: ['192.0.2.1', '192.0.2.2'] });
    expect(asked(broken, 'example.com')).toBe(1);
  });

  it('names every server in the reason when all fail', async () => {
    const silent = await extraServer({ timeout: ['servfail.test'] });
    const r = resolver({ servers: [silent.server, dns.server], timeoutMs: 200 });
    const answer = await r.a('servfail.test');
    expect(answer.status === 'temperror' && answer.reason).toMatch(new RegExp(`${silent.server} timed out.*; ${dns.server} answered SERVFAIL`));
  });
});

describe('DnsResolver: cache', () => {
  let clock = 0;
  const now = (): number => clock;
  beforeEach(() => {
    clock = 1_000_000;
  });

  it('honours the TTL of positive answers, and says what is left of it', async () => {
    const r = resolver({ now });
    await r.mx('example.com');
    clock += 100_000;
    expect(await r.mx('example.com')).toMatchObject({ status: 'ok', ttl: 200 });
    expect(asked(dns, 'example.com', 'MX')).toBe(1);
    expect(r.stats).toMatchObject({ queries: 1, cacheHits: 1 });
    clock += 200_001; // past the 300 s TTL
    expect(await r.mx('example.com')).toMatchObject({ status: 'ok', ttl: 300 });
    expect(asked(dns, 'example.com', 'MX')).toBe(2);
  });

  it('caches nxdomain and nodata for the SOA minimum of the reply', async () => {
    const s = await extraServer({ ...ZONE, negativeTtl: 30 });
    const r = resolver({ servers: [s.server], now });
    await r.mx('nowhere.test');
    await r.mx('aonly.test');
    clock += 29_000;
    expect(await r.mx('nowhere.test')).toEqual({ status: 'nxdomain' });
    expect(await r.mx('aonly.test')).toEqual({ status: 'nodata' });
    expect(s.queries).toHaveLength(2);
    clock += 2_000;
    await r.mx('nowhere.test');
    await r.mx('aonly.test');
    expect(s.queries).toHaveLength(4);
  });

  it('caches negative answers for 60 s when the reply carries no SOA', async () => {
    const s = await extraServer({ ...ZONE, negativeTtl: null });
    const r = resolver({ servers: [s.server], now });
    await r.a('nowhere.test');
    clock += 59_000;
    await r.a('nowhere.test');
    expect(s.queries).toHaveLength(1);
    clock += 2_000;
    await r.a('nowhere.test');
    expect(s.queries).toHaveLength(2);
  });

  it('never caches a temperror', async () => {
    const r = resolver({ now });
    expect((await r.a('servfail.test')).status).toBe('temperror');
    dns.setZone({ a: { 'servfail.test': ['192.0.2.77'] } }); // the server recovers
    expect(await r.a('servfail.test')).toMatchObject({ status: 'ok', records: ['192.0.2.77'] });
    expect(asked(dns, 'servfail.test')).toBe(2);
  });

  it('shares one query among 100 identical concurrent lookups', async () => {
    const r = resolver({ now });
    const answers = await Promise.all(Array.from({ length: 100 }, () => r.mx('EXAMPLE.com')));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]).toMatchObject({ status: 'ok' });
    expect(asked(dns, 'example.com', 'MX')).toBe(1);
    expect(r.stats).toMatchObject({ queries: 1, cacheHits: 0, deduplicated: 99 });
  });

  it('evicts the oldest entries beyond cacheMax', async () => {
    const r = resolver({ now, cacheMax: 2 });
    await r.a('example.com');
    await r.a('aonly.test');
    await r.a('v6only.test'); // evicts example.com
    await r.a('v6only.test');
    await r.a('aonly.test');
    expect(dns.queries).toHaveLength(3);
    await r.a('example.com');
    expect(asked(dns, 'example.com', 'A')).toBe(2);
  });

  it('is emptied by reconfigure(), which switches to the new servers', async () => {
    const other = await extraServer({ mx: { 'example.com': [{ exchange: 'other.example.net', priority: 5 }] } });
    const r = resolver({ now });
    await r.mx('example.com');
    r.reconfigure({ servers: [dns.server], timeoutMs: 1000 });
    await r.mx('example.com');
    expect(asked(dns, 'example.com', 'MX')).toBe(2);
    r.reconfigure({ servers: [other.server], timeoutMs: 1000 });
    expect(await r.mx('example.com')).toMatchObject({ records: [{ exchange: 'other.example.net', priority: 5 }] });
  });

  it('refuses a bad reconfigure() and keeps working as before', async () => {
    const r = resolver({ now });
    await r.mx('example.com');
    expect(() => r.reconfigure({ servers: ['dns.example.com'], timeoutMs: 1000 })).toThrow(/"dns\.example\.com"/);
    expect(() => r.reconfigure({ servers: [dns.server], timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(await r.mx('example.com')).toMatchObject({ status: 'ok' });
    expect(asked(dns, 'example.com', 'MX')).toBe(1); // still cached: nothing changed
  });
});

describe('DNS server configuration', () => {
  it('accepts host, host:port, [v6]:port and bare IPv6', () => {
    expect(parseDnsServer('192.0.2.53')).toMatchObject({ host: '192.0.2.53', port: 53, family: 4 });
    expect(parseDnsServer('127.0.0.1:5353')).toMatchObject({ host: '127.0.0.1', port: 5353, label: '127.0.0.1:5353' });
    expect(parseDnsServer('2001:DB8:0::53')).toMatchObject({ host: '2001:db8::53', port: 53, family: 6 });
    expect(parseDnsServer('[::1]:5353')).toMatchObject({ host: '::1', port: 5353, label: '[::1]:5353' });
    expect(parseDnsServer('[::1]')).toMatchObject({ host: '::1', port: 53 });
  });

  it.each([
    ['dns.example.com', /"dns\.example\.com": "dns\.example\.com" is not an IP address/],
    ['dns.example.com:53', /by address, not by name/],
    ['192.0.2.1:0', /port "0" must be a number from 1 to 65535/],
    ['192.0.2.1:65536', /port "65536"/],
    ['192.0.2.1:dns', /port "dns"/],
    ['192.0.2.1:', /port ""/],
    ['[192.0.2.1]:53', /inside brackets is not an IPv6 address/],
    ['2001:db8::1:53:', /not an IPv6 address; write an IPv6 server with a port as "\[address\]:port"/],
    ['', /Invalid DNS server ""/],
    [' 192.0.2.1', /surrounding spaces/],
    ['999.1.1.1', /"999\.1\.1\.1" is not an IP address/],
  ])('refuses %j with a clear error', (entry, message) => {
    expect(() => new DnsResolver({ servers: ['127.0.0.1', entry], timeoutMs: 1000 })).toThrow(message);
  });

  it('refuses a bad timeout or cache size', () => {
    expect(() => new DnsResolver({ servers: [], timeoutMs: -1 })).toThrow(/Invalid DNS timeoutMs -1/);
    expect(() => new DnsResolver({ servers: [], timeoutMs: Number.NaN })).toThrow(/timeoutMs/);
    expect(() => new DnsResolver({ servers: [], timeoutMs: 100, cacheMax: 1.5 })).toThrow(/cacheMax/);
  });

  it('uses the system resolvers when the list is empty', () => {
    const system = getServers();
    const parsed = parseDnsServers([]);
    expect(parsed.length).toBe(Math.max(1, system.length));
    if (system.length > 0) expect(parsed.map((s) => s.host)).toEqual(system.map((s) => parseDnsServer(s).host));
    resolvers.push(new DnsResolver({ servers: [], timeoutMs: 100 }));
  });
});

describe('checkSenderDomain', () => {
  it.each([
    ['example.com', { result: 'ok' }], // MX
    ['Example.COM.', { result: 'ok' }],
    ['nullmx.test', { result: 'nullmx' }],
    ['nowhere.test', { result: 'nodomain' }], // NXDOMAIN
    ['aonly.test', { result: 'ok' }], // no MX, A
    ['v6only.test', { result: 'ok' }], // no MX, AAAA
    ['empty.test', { result: 'nodomain' }], // exists, no MX, no A, no AAAA
    ['v6-v4timeout.test', { result: 'ok' }], // A times out, but AAAA decides
    ['aonly-v6fail.test', { result: 'ok' }], // AAAA fails, but A decides
    ['bad..name', { result: 'nodomain' }],
  ])('%s -> %j', async (domain, fact) => {
    const started = performance.now();
    expect(await checkSenderDomain(resolver({ timeoutMs: 300 }), domain)).toEqual(fact);
    expect(performance.now() - started).toBeLessThan(250); // an answer that decides does not wait for one that times out
  });

  it('is a temperror when the MX lookup fails', async () => {
    const fact = await checkSenderDomain(resolver({ timeoutMs: 200 }), 'servfail.test');
    expect(fact.result).toBe('temperror');
    expect(fact.result === 'temperror' && fact.reason).toMatch(/SERVFAIL/);
    const timedOut = await checkSenderDomain(resolver({ timeoutMs: 200 }), 'timeout.test');
    expect(timedOut.result === 'temperror' && timedOut.reason).toMatch(/timed out/);
  });

  it('is a temperror when there is no MX and the A lookup fails while AAAA has nothing', async () => {
    const fact = await checkSenderDomain(resolver({ timeoutMs: 200 }), 'nomx-v4timeout.test');
    expect(fact.result === 'temperror' && fact.reason).toMatch(/A lookup for nomx-v4timeout\.test .*timed out/);
  });

  it('accepts address literals without any lookup, and refuses malformed ones', async () => {
    const r = resolver();
    expect(await checkSenderDomain(r, '[192.0.2.1]')).toEqual({ result: 'ok' });
    expect(await checkSenderDomain(r, '[IPv6:2001:db8::1]')).toEqual({ result: 'ok' });
    expect(await checkSenderDomain(r, '[999.0.0.1]')).toEqual({ result: 'nodomain' });
    expect(await checkSenderDomain(r, '[2001:db8::1]')).toEqual({ result: 'nodomain' }); // IPv6 literals need the "IPv6:" tag
    expect(dns.queries).toEqual([]);
  });
});

describe('checkReverseDns', () => {
  it('ok with the names for an IP with PTR records (v4 and v6)', async () => {
    const r = resolver();
    expect(await checkReverseDns(r, '127.0.0.2')).toEqual({ result: 'ok', names: ['host.example.com'] });
    expect(await checkReverseDns(r, '::1')).toEqual({ result: 'ok', names: ['localhost'] });
  });

  it('none for nxdomain and for nodata', async () => {
    const r = resolver();
    expect(await checkReverseDns(r, '127.0.0.99')).toEqual({ result: 'none' });
    expect(await checkReverseDns(r, '127.0.0.9')).toEqual({ result: 'none' });
  });

  it('temperror for SERVFAIL and timeout', async () => {
    const r = resolver({ timeoutMs: 200 });
    const servfail = await checkReverseDns(r, '127.0.0.3');
    expect(servfail.result === 'temperror' && servfail.reason).toMatch(/PTR lookup for 3\.0\.0\.127\.in-addr\.arpa .*SERVFAIL/);
    const timeout = await checkReverseDns(r, '127.0.0.4');
    expect(timeout.result === 'temperror' && timeout.reason).toMatch(/timed out/);
  });
});
