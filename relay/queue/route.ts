/**
 * Where a recipient's mail goes: a local domain's deliverTo, the recipient domain's MX hosts, or the smarthost;
 * and the addresses to connect to, resolved through our own DNS layer (nodemailer's lookup ignores our DNS servers).
 */
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import type { Config } from '../../shared/config.ts';
import { parseHostPort } from '../../shared/hostport.ts';
import type { DnsAnswer, MxResolver } from './spool.ts';
import { normalizeDomain } from '../policy/routing.ts';

export type Destination =
  | { kind: 'local'; key: string; domain: string; host: string; port: number }
  | { kind: 'mx'; key: string; domain: string }
  | { kind: 'smarthost'; key: string; host: string; port: number; user: string | null; password: string | null };

/** One address to try: `host` is the name (for SNI and reports), `ip` what we connect to. */
export interface Target {
  host: string;
  ip: string;
  port: number;
}

/**
 * A next hop as reasons and reports name it: NAME[IP]:PORT (Postfix's form, "host mx.example.com[192.0.2.1] said"),
 * or IP:PORT when it has no name; an IPv6 address alone in brackets ([::1]:25), else its port would read as a part of
 * it (::1:25).
 */
export function targetName(target: Target): string {
  if (target.host !== target.ip) return `${target.host}[${target.ip}]:${target.port}`;
  return isIP(target.ip) === 6 ? `[${target.ip}]:${target.port}` : `${target.ip}:${target.port}`;
}

export type Targets =
  | { ok: true; targets: Target[] }
  | { ok: false; permanent: boolean; status: string; reason: string };

/** Postfix's smtp_mx_address_limit is 5; we try a few more before deferring. */
const MAX_TARGETS = 10;

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase().replace(/\.$/, '');
}

export function destinationFor(rcpt: string, config: Config): Destination {
  // (as the RCPT decision names it: an internationalised domain as its A-label, so mail accepted for a local domain
  // written as its U-label, bücher.test, goes to that domain's deliverTo; it was looked up by MX and bounced, a tryout
  // found)
  const domain = normalizeDomain(domainOf(rcpt));
  const local = Object.hasOwn(config.domains, domain) ? config.domains[domain] : undefined;
  if (local) {
    const hp = parseHostPort(local.deliverTo, 25);
    // the config schema validated deliverTo; a bad value here would be a bug, reported as a deferral by resolveTargets
    const { host, port } = hp.ok ? hp.value : { host: local.deliverTo, port: 25 };
    return { kind: 'local', key: `local:${host}:${port}`, domain, host, port };
  }
  if (config.delivery.mode === 'smarthost' && config.delivery.smarthost.host) {
    const s = config.delivery.smarthost;
    const hp = parseHostPort(s.host!, s.port);
    const { host, port } = hp.ok ? hp.value : { host: s.host!, port: s.port };
    return { kind: 'smarthost', key: `smarthost:${host}:${port}`, host, port, user: s.user, password: s.password };
  }
  return { kind: 'mx', key: `mx:${domain}`, domain };
}

type Addresses = { ips: string[]; temp: string | null; missing: boolean };

/** A DNS failure in one phrase: the resolver's reason names the lookup itself ("DNS A lookup for X failed: ..."). */
function lookupFailed(what: string, reason: string): string {
  return reason.startsWith('DNS ') ? reason : `${what} failed: ${reason}`;
}

async function addressesOf(name: string, resolver: MxResolver): Promise<Addresses> {
  const [a, aaaa] = await Promise.all([resolver.a(name), resolver.aaaa(name)]);
  const ips: string[] = [];
  let temp: string | null = null;
  const take = (r: DnsAnswer<string>, type: string) => {
    if (r.status === 'ok') ips.push(...r.records);
    else if (r.status === 'temperror') temp ??= lookupFailed(`${type} lookup for ${name}`, r.reason);
  };
  // IPv4 first: a relay on a machine without IPv6 routes would otherwise wait on every AAAA address
  take(a, 'A');
  take(aaaa, 'AAAA');
  return { ips, temp, missing: a.status === 'nxdomain' || (a.status === 'nodata' && aaaa.status !== 'ok' && aaaa.status !== 'temperror') };
}

/** A configured host (deliverTo, smarthost): our DNS first, then the system's lookup (/etc/hosts, "localhost"). */
async function configuredHost(host: string, port: number, resolver: MxResolver, what: string): Promise<Targets> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare)) return { ok: true, targets: [{ host: bare, ip: bare, port }] };
  const found = await addressesOf(host, resolver);
  if (found.ips.length > 0) return { ok: true, targets: found.ips.slice(0, MAX_TARGETS).map((ip) => ({ host, ip, port })) };
  try {
    const sys = await dns.lookup(host, { all: true });
    if (sys.length > 0) return { ok: true, targets: sys.slice(0, MAX_TARGETS).map((r) => ({ host, ip: r.address, port })) };
  } catch {
    /* fall through */
  }
  return { ok: false, permanent: false, status: '4.4.3', reason: found.temp ?? `${what} ${host} has no address in DNS; check the host name in the config` };
}

/**
 * MX hosts in preference order, hosts of the same preference in a random order (RFC 5321 5.1: SHOULD randomise, to
 * spread the load; Postfix does). Shuffled at each routing decision: the DNS answer may be cached, so its order alone
 * would send every message to the first host of a preference for as long as the TTL.
 */
export function orderMx(records: { exchange: string; priority: number }[], random: () => number): string[] {
  const sorted = [...records].sort((x, y) => x.priority - y.priority);
  for (let start = 0; start < sorted.length; ) {
    let end = start + 1;
    while (end < sorted.length && sorted[end]!.priority === sorted[start]!.priority) end++;
    // Fisher-Yates within [start, end)
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.min(i - start, Math.floor(random() * (i - start + 1)));
      const t = sorted[i]!;
      sorted[i] = sorted[j]!;
      sorted[j] = t;
    }
    start = end;
  }
  return sorted.map((r) => r.exchange);
}

/** `random` (in [0, 1)) orders MX hosts of equal preference (orderMx); the queue passes its own so tests can fix it. */
export async function resolveTargets(dest: Destination, resolver: MxResolver, mxPort: number, random: () => number = Math.random): Promise<Targets> {
  if (dest.kind === 'local') return configuredHost(dest.host, dest.port, resolver, `deliverTo of ${dest.domain}:`);
  if (dest.kind === 'smarthost') return configuredHost(dest.host, dest.port, resolver, 'the smarthost');

  const domain = dest.domain;
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
  if (literal) {
    const ip = literal[1]!;
    if (!isIP(ip)) return { ok: false, permanent: true, status: '5.1.2', reason: `"${domain}" is not a valid address literal` };
    return { ok: true, targets: [{ host: ip, ip, port: mxPort }] };
  }

  const mx = await resolver.mx(domain);
  let hosts: string[];
  let implicit = false;
  switch (mx.status) {
    case 'temperror':
      return { ok: false, permanent: false, status: '4.4.3', reason: lookupFailed(`MX lookup for ${domain}`, mx.reason) };
    case 'nxdomain':
      return { ok: false, permanent: true, status: '5.1.2', reason: `the domain ${domain} does not exist (DNS: NXDOMAIN)` };
    case 'nodata':
      hosts = [domain];
      implicit = true;
      break;
    case 'ok': {
      if (mx.records.some((r) => r.exchange === '' || r.exchange === '.')) {
        return { ok: false, permanent: true, status: '5.1.10', reason: `the domain ${domain} accepts no mail (null MX, RFC 7505)` };
      }
      hosts = orderMx(mx.records, random);
      break;
    }
  }

  const targets: Target[] = [];
  let temp: string | null = null;
  let missing = 0;
  for (const host of hosts) {
    if (targets.length >= MAX_TARGETS) break;
    if (isIP(host)) {
      targets.push({ host, ip: host, port: mxPort });
      continue;
    }
    const found = await addressesOf(host, resolver);
    temp ??= found.temp;
    if (found.missing && found.ips.length === 0) missing++;
    for (const ip of found.ips) if (targets.length < MAX_TARGETS) targets.push({ host, ip, port: mxPort });
  }
  if (targets.length > 0) return { ok: true, targets };
  if (temp) return { ok: false, permanent: false, status: '4.4.3', reason: temp };
  if (implicit) return { ok: false, permanent: true, status: '5.1.2', reason: `the domain ${domain} has no MX and no A/AAAA record` };
  // every MX host named is definitely not in DNS (NXDOMAIN, or no address record of either kind): as definite as the
  // NXDOMAIN of the domain itself, which bounces; Postfix and Exim bounce this too (5.4.4) rather than retry for days
  if (missing > 0 && missing === hosts.length) {
    return {
      ok: false,
      permanent: true,
      status: '5.4.4',
      reason: `no MX host of ${domain} exists in DNS (${hosts.join(', ')}: not found, or no address record); the domain's DNS names mail servers that are not there`,
    };
  }
  return {
    ok: false,
    permanent: false,
    status: '4.4.3',
    reason: `no MX host of ${domain} (${hosts.join(', ')}) has an address${missing ? ' (not found in DNS)' : ''}`,
  };
}
