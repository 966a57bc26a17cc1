// DNS names as the resolver uses them: one normal form for queries and cache keys,
// and the reverse-lookup (PTR) name of an IP address.
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';

const LABEL = /^[a-z0-9_-]{1,63}$/;

/**
 * Lower case, no trailing dot, internationalised names converted to A-labels (punycode).
 * Returns null for anything that cannot be a mail-relevant DNS name (empty, empty labels,
 * labels over 63 octets, names over 253 octets, characters outside letters, digits, "-" and "_"):
 * such a name cannot exist, so the resolver answers nxdomain without asking anyone.
 */
export function normalizeName(input: string): string | null {
  if (typeof input !== 'string') return null;
  let name = input.endsWith('.') ? input.slice(0, -1) : input;
  if (/[^\x00-\x7f]/.test(name)) name = domainToASCII(name);
  name = name.toLowerCase();
  if (name.length === 0 || name.length > 253) return null;
  for (const label of name.split('.')) {
    if (!LABEL.test(label)) return null;
  }
  return name;
}

/** A name taken from a DNS reply (MX exchange, PTR target): lower case, no trailing dot, "" for the root. */
export function replyName(name: string): string {
  const lower = name.toLowerCase();
  if (lower === '.' || lower === '') return '';
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** The 8 16-bit groups of a valid IPv6 address ("::" and an embedded IPv4 tail expanded). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = last.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [headText = '', restText] = text.split('::');
  const head = headText === '' ? [] : headText.split(':').map((g) => parseInt(g, 16));
  const rest = restText === undefined || restText === '' ? [] : restText.split(':').map((g) => parseInt(g, 16));
  return [...head, ...new Array<number>(Math.max(0, 8 - head.length - rest.length)).fill(0), ...rest];
}

/**
 * The PTR name for an IP address, without trailing dot: "2.0.0.127.in-addr.arpa" or the
 * 32-nibble ".ip6.arpa" name. An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is treated as IPv4.
 * Returns null if the input is not an IP address.
 */
export function reverseName(ip: string): string | null {
  if (typeof ip !== 'string') return null;
  let address = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  const zone = address.indexOf('%');
  if (zone >= 0) address = address.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1] !== undefined) address = mapped[1];
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(address)) return null;
  const nibbles = ipv6Groups(address)
    .map((g) => g.toString(16).padStart(4, '0'))
    .join('')
    .split('')
    .reverse();
  return `${nibbles.join('.')}.ip6.arpa`;
}
