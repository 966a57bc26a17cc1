/**
 * confirmedName: the Received header's name for a client is a PTR name whose A/AAAA records hold the client's address.
 * The MAIL reply waits for it, so the names are asked side by side, the first that points back settles it, and it
 * waits at most waitMs (a review: one name after another, each up to a DNS timeout, held a MAIL for up to 9 s, every
 * time, since failures are not cached). The resolver here answers from a table, and never for a "dead" name: the
 * edge, the DNS, made to hang.
 */
import { describe, expect, it } from 'vitest';
import { confirmedName } from '../relay/dns/checks.ts';
import type { DnsAnswer, DnsResolver } from '../relay/dns/resolver.ts';

function tableResolver(a: Record<string, string[]>, aaaa: Record<string, string[]> = {}, dead: string[] = []) {
  const asked: string[] = [];
  const answer = (t: Record<string, string[]>, name: string): Promise<DnsAnswer<string>> => {
    asked.push(name);
    if (dead.includes(name)) return new Promise(() => {});
    const records = t[name];
    return Promise.resolve(records ? { status: 'ok', records, ttl: 60 } : { status: 'nxdomain' });
  };
  return { r: { a: (n: string) => answer(a, n), aaaa: (n: string) => answer(aaaa, n) } as unknown as DnsResolver, asked };
}

describe('confirmedName', () => {
  it('the first name that points back, asked side by side: one in a zone that never answers does not hold it', async () => {
    const { r, asked } = tableResolver({ 'ok.example': ['192.0.2.7'], 'other.example': ['192.0.2.8'] }, {}, ['dead.example']);
    expect(await confirmedName(r, '192.0.2.7', ['dead.example', 'other.example', 'ok.example'], 60_000)).toBe('ok.example');
    expect(asked).toEqual(['dead.example', 'other.example', 'ok.example']);
  });

  it('none that points back, or only names that never answer: null ("unknown"), the latter once waitMs has passed', async () => {
    const { r } = tableResolver({ 'liar.example': ['198.51.100.1'] }, {}, ['dead.example']);
    expect(await confirmedName(r, '192.0.2.7', ['liar.example', 'missing.example'])).toBeNull();
    expect(await confirmedName(r, '192.0.2.7', ['dead.example'], 20)).toBeNull();
    expect(await confirmedName(r, '192.0.2.7', [])).toBeNull();
  });

  it('at most 3 names; IPv6 compared in one spelling', async () => {
    const { r, asked } = tableResolver({}, { 'v6.example': ['2001:db8:0:0::7'] });
    expect(await confirmedName(r, '2001:db8::7', ['a.example', 'b.example', 'c.example', 'v6.example'])).toBeNull();
    expect(asked).toEqual(['a.example', 'b.example', 'c.example']);
    expect(await confirmedName(r, '2001:0db8::0007', ['v6.example'])).toBe('v6.example');
  });
});

describe('the resolver with many lookups in flight', () => {
  it('warns of no "memory leak" (each lookup listens on the resolver\'s one close signal)', async () => {
    // (a tryout: Node's MaxListenersExceededWarning on stderr with more than 10 lookups at once, the normal case)
    const { DnsResolver } = await import('../relay/dns/resolver.ts');
    const { startDnsServer } = await import('./helpers/dns-server.ts');
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const dns = await startDnsServer({ timeout: Array.from({ length: 20 }, (_, i) => `t${i}.example`) });
    const r = new DnsResolver({ servers: [dns.server], timeoutMs: 200 });
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => r.a(`t${i}.example`)));
      await new Promise((res) => setImmediate(res));
    } finally {
      process.off('warning', onWarning);
      r.close();
      await dns.close();
    }
    expect(warnings).toEqual([]);
  });
});
