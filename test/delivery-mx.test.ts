/**
 * Relayed mail by MX, with every answer coming from a real DNS server on loopback and the relay's own resolver:
 * MX sorted by preference with a dead first host, A fallback when there is no MX, null MX and NXDOMAIN bounce,
 * SERVFAIL and timeouts defer. The MX hosts are sinks on 127.0.0.2, 127.0.0.3 (same port; the queue's mxPort option
 * stands in for port 25).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DnsResolver } from '../relay/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from './helpers/dns-server.ts';
import { queueHarness, type Harness } from './helpers/queue-harness.ts';
import { startSink, type Sink } from './helpers/sink.ts';

let dns: TestDnsServer;
let resolver: DnsResolver;
let mx1: Sink; // 127.0.0.2
let mx2: Sink; // 127.0.0.3, with STARTTLS
let senderSink: Sink; // the sender's own domain (a local domain of the relay)
let port: number;

/** Sinks on two loopback addresses sharing one port (MX delivery goes to one port for every host). */
async function sinksOnSharedPort(): Promise<void> {
  for (let tries = 0; tries < 20; tries++) {
    // (mx1 refuses nobody@: a bounce whose DSN names the host as the delivery client does)
    const first = await startSink({ host: '127.0.0.2', onRcpt: (rcpt) => (rcpt.startsWith('nobody@') ? { code: 550, message: '5.1.1 no such user here' } : undefined) });
    try {
      mx2 = await startSink({ host: '127.0.0.3', port: first.port, tls: true });
      mx1 = first;
      port = first.port;
      return;
    } catch {
      await first.close(); // that port is taken on 127.0.0.3: try another
    }
  }
  throw new Error('no port free on both 127.0.0.2 and 127.0.0.3');
}

beforeAll(async () => {
  await sinksOnSharedPort();
  senderSink = await startSink();
  dns = await startDnsServer({
    mx: {
      'mx.test': [
        { exchange: 'mx2.mx.test', priority: 20 },
        { exchange: 'dead.mx.test', priority: 5 },
        { exchange: 'mx1.mx.test', priority: 10 },
      ],
      'tls.test': [{ exchange: 'mx2.mx.test', priority: 10 }],
      'nullmx.test': [{ exchange: '.', priority: 0 }],
      // (an outbound tryout: MX hosts that do not exist were retried for 5 days)
      'ghostmx.test': [
        { exchange: 'ghost.mx.test', priority: 10 },
        { exchange: 'noaddr.mx.test', priority: 20 },
      ],
      'halfghost.test': [
        { exchange: 'ghost.mx.test', priority: 10 },
        { exchange: 'slowhost.mx.test', priority: 20 },
      ],
      'alldead.test': [
        { exchange: 'dead.mx.test', priority: 10 },
        { exchange: 'dead2.mx.test', priority: 20 },
      ],
    },
    a: {
      'mx1.mx.test': ['127.0.0.2'],
      'mx2.mx.test': ['127.0.0.3'],
      'dead.mx.test': ['127.0.0.4'],
      'dead2.mx.test': ['127.0.0.5'],
      'afallback.test': ['127.0.0.3'],
    },
    servfail: ['broken.test'],
    timeout: ['slow.test', 'slowhost.mx.test'],
    // a name that exists with no address record of either kind
    cname: { 'noaddr.mx.test': 'mx.test' },
  });
  resolver = new DnsResolver({ servers: [dns.server], timeoutMs: 400 });
});
afterAll(async () => {
  resolver.close();
  await dns.close();
  await mx1.close();
  await mx2.close();
  await senderSink.close();
});

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});
async function relay(): Promise<Harness> {
  const h = await queueHarness(
    {
      smtp: { hostname: 'relay.test' },
      dns: { servers: [dns.server] },
      domains: { 'sender.test': { deliverTo: senderSink.address, recipients: '*' } },
      delivery: { mode: 'mx' },
    },
    { resolver, mxPort: port },
  );
  harnesses.push(h);
  await h.queue.start();
  return h;
}

describe('MX delivery through the DNS layer', () => {
  it('tries MX hosts by preference: the dead one first, then the next, never the third', async () => {
    const h = await relay();
    const before = { mx1: mx1.messages.length, mx2: mx2.messages.length };
    const id = await h.submit('alice@sender.test', ['bob@mx.test']);
    const ev = await h.waitEvent('delivered', (e) => e.queueId === id);
    expect(ev.host).toBe(`mx1.mx.test[127.0.0.2]:${port}`);
    expect(mx1.messages.length).toBe(before.mx1 + 1);
    expect(mx1.messages.at(-1)!.to).toEqual(['bob@mx.test']);
    expect(mx2.messages.length).toBe(before.mx2);
    expect(h.events.some((e) => e.kind === 'deferred')).toBe(false);
  });

  it('a refusal by an MX host: the DSN says which host said it, NAME[IP]:PORT, as the reasons and events do', async () => {
    const h = await relay();
    const before = senderSink.messages.length;
    const id = await h.submit('alice@sender.test', ['nobody@mx.test']);
    const ev = await h.waitEvent('bounced', (e) => e.queueId === id);
    expect(ev.reason).toMatch(/550 5\.1\.1 no such user here/);
    await expect.poll(() => senderSink.messages.length).toBe(before + 1);
    const dsn = senderSink.messages.at(-1)!.data.toString();
    expect(dsn).toContain(`host mx1.mx.test[127.0.0.2]:${port} said: 550 5.1.1 no such user here`);
    expect(dsn).toMatch(/Remote-MTA: dns; mx1\.mx\.test\r\n/);
  });

  it('delivers over opportunistic TLS to an MX host with a self-signed certificate', async () => {
    const h = await relay();
    const id = await h.submit('alice@sender.test', ['bob@tls.test']);
    const ev = await h.waitEvent('delivered', (e) => e.queueId === id);
    expect(ev.tls).toBe(true);
    expect(ev.host).toContain('mx2.mx.test');
    expect(mx2.messages.at(-1)!.secure).toBe(true);
  });

  it('falls back to the A record when the domain has no MX', async () => {
    const h = await relay();
    const id = await h.submit('alice@sender.test', ['bob@afallback.test']);
    const ev = await h.waitEvent('delivered', (e) => e.queueId === id);
    expect(ev.host).toBe(`afallback.test[127.0.0.3]:${port}`);
    expect(mx2.messages.at(-1)!.to).toEqual(['bob@afallback.test']);
  });

  it('groups recipients per destination domain: one transaction each', async () => {
    const h = await relay();
    const before = mx1.messages.length;
    const id = await h.submit('alice@sender.test', ['a@mx.test', 'b@afallback.test', 'c@mx.test']);
    await expect.poll(() => h.events.filter((e) => e.kind === 'delivered' && e.queueId === id).length).toBe(2);
    expect(mx1.messages.slice(before).map((m) => m.to)).toEqual([['a@mx.test', 'c@mx.test']]);
  });

  it('a null MX is permanent: bounced (5.1.10) with a DSN to the sender, no connection tried', async () => {
    const h = await relay();
    const before = senderSink.messages.length;
    const id = await h.submit('alice@sender.test', ['bob@nullmx.test']);
    const ev = await h.waitEvent('bounced', (e) => e.queueId === id);
    expect(ev.reason).toMatch(/null MX/);
    const dsn = (await senderSink.waitFor(before + 1))[before]!;
    expect(dsn.from).toBe('');
    expect(dsn.to).toEqual(['alice@sender.test']);
    expect(dsn.data.toString()).toMatch(/Status: 5\.1\.10/);
  });

  it('a domain that does not exist bounces (5.1.2)', async () => {
    const h = await relay();
    const id = await h.submit('alice@sender.test', ['bob@nowhere.test']);
    const ev = await h.waitEvent('bounced', (e) => e.queueId === id);
    expect(ev.reason).toMatch(/does not exist/);
  });

  it('SERVFAIL and a DNS timeout are temporary: deferred, not bounced', async () => {
    const h = await relay();
    const a = await h.submit('alice@sender.test', ['bob@broken.test']);
    const b = await h.submit('alice@sender.test', ['bob@slow.test']);
    const ea = await h.waitEvent('deferred', (e) => e.queueId === a);
    const eb = await h.waitEvent('deferred', (e) => e.queueId === b);
    expect(ea.reason).toMatch(/^DNS MX lookup for broken\.test failed: .*SERVFAIL/);
    expect(eb.reason).toMatch(/^DNS MX lookup for slow\.test timed out after \d+ ms: .*timed out/);
    expect(h.events.some((e) => e.kind === 'bounced')).toBe(false);
  });

  it('all MX hosts down: deferred, the reason names each host tried', async () => {
    const h = await relay();
    const id = await h.submit('alice@sender.test', ['bob@alldead.test']);
    const ev = await h.waitEvent('deferred', (e) => e.queueId === id);
    expect(ev.reason).toMatch(/dead\.mx\.test\[127\.0\.0\.4\]:\d+: could not connect: the connection was refused.*dead2\.mx\.test\[127\.0\.0\.5\]:\d+: could not connect: the connection was refused/);
  });

  it('every MX host missing from DNS: bounced at once (5.4.4), as Postfix; one whose lookup failed: deferred', async () => {
    const h = await relay();
    const id = await h.submit('alice@sender.test', ['bob@ghostmx.test']);
    const ev = await h.waitEvent('bounced', (e) => e.queueId === id);
    expect(ev.reason).toMatch(/^no MX host of ghostmx\.test exists in DNS \(ghost\.mx\.test, noaddr\.mx\.test: not found, or no address record\)/);
    expect(h.events.some((e) => e.kind === 'deferred' && e.queueId === id)).toBe(false);
    const other = await h.submit('alice@sender.test', ['bob@halfghost.test']);
    const d = await h.waitEvent('deferred', (e) => e.queueId === other);
    expect(d.reason).toMatch(/slowhost\.mx\.test/);
  });

  it('an address literal recipient goes straight to that address', async () => {
    const h = await relay();
    const id = await h.submit('alice@sender.test', ['postmaster@[127.0.0.2]']);
    const ev = await h.waitEvent('delivered', (e) => e.queueId === id);
    expect(ev.host).toBe(`127.0.0.2:${port}`);
  });
});
