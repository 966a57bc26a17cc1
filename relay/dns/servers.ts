// The DNS servers the resolver asks: parsed from the `dns.servers` config strings, or the system's.
import { getServers } from 'node:dns';
import { isIPv4, isIPv6 } from 'node:net';

export interface DnsServerAddress {
  host: string; // an IP address, IPv6 in canonical form without brackets
  port: number;
  family: 4 | 6;
  label: string; // "192.0.2.53:53" or "[2001:db8::53]:53", for messages
}

const EXAMPLES = 'e.g. "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:5353"';

function canonicalIPv6(host: string): string {
  if (host.includes('%')) return host.toLowerCase(); // zone id: URL cannot parse it, keep as written
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

function parsePort(entry: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new Error(`Invalid DNS server "${entry}": port "${text}" must be a number from 1 to 65535 (${EXAMPLES}).`);
  }
  return Number(text);
}

/** Parse one `dns.servers` entry: "host", "host:port", "[v6]:port", "[v6]" or a bare IPv6. Throws a clear Error. */
export function parseDnsServer(entry: string): DnsServerAddress {
  if (typeof entry !== 'string' || entry.trim() === '') {
    throw new Error(`Invalid DNS server ${JSON.stringify(entry)}: expected an IP address with an optional port (${EXAMPLES}).`);
  }
  if (entry !== entry.trim()) {
    throw new Error(`Invalid DNS server ${JSON.stringify(entry)}: remove the surrounding spaces.`);
  }
  let host: string;
  let port = 53;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1] ?? '';
    if (bracketed[2] !== undefined) port = parsePort(entry, bracketed[2]);
    if (!isIPv6(host)) {
      throw new Error(`Invalid DNS server "${entry}": "${host}" inside brackets is not an IPv6 address (${EXAMPLES}).`);
    }
  } else if ((entry.match(/:/g) ?? []).length >= 2) {
    host = entry;
    if (!isIPv6(host)) {
      throw new Error(`Invalid DNS server "${entry}": not an IPv6 address; write an IPv6 server with a port as "[address]:port" (${EXAMPLES}).`);
    }
  } else {
    const colon = entry.indexOf(':');
    host = colon >= 0 ? entry.slice(0, colon) : entry;
    if (colon >= 0) port = parsePort(entry, entry.slice(colon + 1));
    if (!isIPv4(host)) {
      throw new Error(
        `Invalid DNS server "${entry}": "${host}" is not an IP address; a DNS server must be given by address, not by name (${EXAMPLES}).`,
      );
    }
  }
  if (isIPv6(host)) {
    const canonical = canonicalIPv6(host);
    return { host: canonical, port, family: 6, label: `[${canonical}]:${port}` };
  }
  return { host, port, family: 4, label: `${host}:${port}` };
}

/**
 * Parse the configured server list. An empty list means the system's resolvers (node:dns getServers(),
 * i.e. /etc/resolv.conf), falling back to 127.0.0.1 when the system lists none.
 */
export function parseDnsServers(entries: readonly string[]): DnsServerAddress[] {
  if (!Array.isArray(entries)) throw new Error('DNS servers must be a list of "host[:port]" strings.');
  if (entries.length > 0) return entries.map(parseDnsServer);
  const system = getServers();
  return (system.length > 0 ? system : ['127.0.0.1']).map(parseDnsServer);
}
