// The DNS servers the resolver asks: parsed from the `dns.servers` config strings, or the system's.
import { getServers } from 'node:dns';
import { parseDnsServer, type DnsServerAddress } from '../../shared/config.ts';

// one parser for the resolver and the config schema, so the two never disagree about an entry
export { parseDnsServer, type DnsServerAddress };

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
