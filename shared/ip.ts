/**
 * IP addresses, address specs (single, CIDR, range) and trusted-group matching.
 *
 * Shared by the relay (every SMTP connection is matched against the trusted groups) and the console (form
 * validation, display), so: pure functions, no Node-only or DOM APIs, no clock reads (time is passed in).
 *
 * Representation: IPv4 is an unsigned 32-bit number; IPv6 is four unsigned 32-bit words, most significant first.
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 everywhere: a client connecting over a dual-stack socket is the same
 * client as over IPv4. Other IPv6 addresses (including ::a.b.c.d and ::ffff:0:a.b.c.d) stay IPv6.
 */

export type IpFamily = 4 | 6;

/** Four unsigned 32-bit words, most significant first. */
export type V6Words = readonly [number, number, number, number];

export interface ParsedIpv4 {
  readonly family: 4;
  /** the address as an unsigned 32-bit number, 0..2^32-1 */
  readonly v4: number;
}
export interface ParsedIpv6 {
  readonly family: 6;
  readonly v6: V6Words;
}
export type ParsedIp = ParsedIpv4 | ParsedIpv6;

// ---------------------------------------------------------------------------------------------------------------
// Parsing

const CH_0 = 48;
const CH_9 = 57;
const CH_DOT = 46;
const CH_COLON = 58;

function hexValue(c: number): number {
  if (c >= CH_0 && c <= CH_9) return c - CH_0;
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Strict dotted quad in text[start, end): four decimal parts 0-255, no leading zeros. Returns -1 when invalid. */
function parseV4(text: string, start: number, end: number): number {
  let value = 0;
  let i = start;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= end || text.charCodeAt(i) !== CH_DOT) return -1;
      i++;
    }
    const partStart = i;
    let n = 0;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c < CH_0 || c > CH_9) break;
      n = n * 10 + (c - CH_0);
      i++;
      if (i - partStart > 3) return -1;
    }
    const digits = i - partStart;
    if (digits === 0 || n > 255) return -1;
    if (digits > 1 && text.charCodeAt(partStart) === CH_0) return -1; // 010: octal or decimal? refuse
    value = value * 256 + n;
  }
  return i === end ? value : -1;
}

// Scratch space for the IPv6 parser (single-threaded, no re-entrancy), so a parse allocates only its result.
const groups = new Array<number>(8).fill(0);

/** IPv6 text (RFC 4291 section 2.2, all three forms); zone ids refused. Returns null when invalid. */
function parseV6(text: string): [number, number, number, number] | null {
  const n = text.length;
  if (n < 2 || n > 45) return null; // longest: ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255
  let count = 0;
  let gap = -1; // index in groups where "::" stands
  let i = 0;
  if (text.charCodeAt(0) === CH_COLON) {
    if (text.charCodeAt(1) !== CH_COLON) return null; // a lone leading ":"
    gap = 0;
    i = 2;
  }
  while (i < n) {
    const groupStart = i;
    let value = 0;
    while (i < n) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      i++;
      if (i - groupStart > 4) return null;
    }
    if (i < n && text.charCodeAt(i) === CH_DOT) {
      // embedded IPv4: only as the last 32 bits
      if (count > 6) return null;
      const v4 = parseV4(text, groupStart, n);
      if (v4 < 0) return null;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = n;
      break;
    }
    if (i === groupStart || count === 8) return null;
    groups[count++] = value;
    if (i === n) break;
    if (text.charCodeAt(i) !== CH_COLON) return null;
    i++;
    if (i < n && text.charCodeAt(i) === CH_COLON) {
      if (gap >= 0) return null; // a second "::"
      gap = count;
      i++;
    } else if (i === n) {
      return null; // a lone trailing ":"
    }
  }
  if (gap < 0) {
    if (count !== 8) return null;
  } else {
    if (count > 7) return null; // "::" stands for at least one group
    const move = count - gap;
    for (let k = 1; k <= move; k++) groups[8 - k] = groups[count - k]!;
    for (let k = gap; k < 8 - move; k++) groups[k] = 0;
  }
  return [
    (groups[0]! * 0x10000 + groups[1]!) >>> 0,
    (groups[2]! * 0x10000 + groups[3]!) >>> 0,
    (groups[4]! * 0x10000 + groups[5]!) >>> 0,
    (groups[6]! * 0x10000 + groups[7]!) >>> 0,
  ];
}

function isMapped(w: V6Words): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

/**
 * Parses an IPv4 dotted quad (strict: four parts, 0-255, no leading zeros) or IPv6 text in any RFC 4291 form.
 * No surrounding whitespace, no zone id ("fe80::1%eth0"), no brackets. IPv4-mapped IPv6 becomes family 4.
 */
export function parseIp(text: string): ParsedIp | null {
  if (text.indexOf(':') < 0) {
    const v4 = parseV4(text, 0, text.length);
    return v4 < 0 ? null : { family: 4, v4 };
  }
  const w = parseV6(text);
  if (w === null) return null;
  if (isMapped(w)) return { family: 4, v4: w[3] };
  return { family: 6, v6: w };
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

function formatV4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** RFC 5952: lower-case hex, no leading zeros, the longest run (2+ groups, first on a tie) of zeros as "::". */
function formatV6(w: V6Words): string {
  const g = [
    w[0] >>> 16, w[0] & 0xffff, w[1] >>> 16, w[1] & 0xffff,
    w[2] >>> 16, w[2] & 0xffff, w[3] >>> 16, w[3] & 0xffff,
  ];
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let end = k;
    while (end < 8 && g[end] === 0) end++;
    if (end - k > bestLen) {
      bestStart = k;
      bestLen = end - k;
    }
    k = end;
  }
  if (bestStart < 0) return g.map((x) => x.toString(16)).join(':');
  const head = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const tail = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${head}::${tail}`;
}

/** Canonical text: IPv4 dotted, IPv6 per RFC 5952. */
export function formatIp(ip: ParsedIp): string {
  return ip.family === 4 ? formatV4(ip.v4) : formatV6(ip.v6);
}

/** 127.0.0.0/8 or ::1 (an IPv4-mapped address is parsed as IPv4): this machine, where no network carries the bytes. */
export function isLoopback(ip: ParsedIp): boolean {
  if (ip.family === 4) return ip.v4 >>> 24 === 127;
  const [a, b, c, d] = ip.v6;
  return a === 0 && b === 0 && c === 0 && d === 1;
}

/** Canonical text of an address (IPv4-mapped IPv6 becomes IPv4), or null when it is not an address. */
export function normalizeIp(text: string): string | null {
  const ip = parseIp(text);
  return ip === null ? null : formatIp(ip);
}

/** Total order: every IPv4 address before every IPv6 address, then numerically. */
export function compareIp(a: ParsedIp, b: ParsedIp): number {
  if (a.family === 4) {
    if (b.family === 6) return -1;
    return a.v4 < b.v4 ? -1 : a.v4 > b.v4 ? 1 : 0;
  }
  if (b.family === 4) return 1;
  return compareWords(a.v6, b.v6);
}

function compareWords(a: V6Words, b: V6Words): number {
  for (let k = 0; k < 4; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Masks

/** Network mask of an IPv4 prefix 0..32 as an unsigned number (note: x << 32 is x << 0 in JavaScript). */
function maskV4(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Mask of word k (0..3) for an IPv6 prefix 0..128. */
function maskWord(prefix: number, k: number): number {
  const bits = prefix - 32 * k;
  return bits <= 0 ? 0 : bits >= 32 ? 0xffffffff : maskV4(bits);
}

function networkV6(w: V6Words, prefix: number): [number, number, number, number] {
  return [
    (w[0] & maskWord(prefix, 0)) >>> 0,
    (w[1] & maskWord(prefix, 1)) >>> 0,
    (w[2] & maskWord(prefix, 2)) >>> 0,
    (w[3] & maskWord(prefix, 3)) >>> 0,
  ];
}

function broadcastV6(w: V6Words, prefix: number): [number, number, number, number] {
  return [
    (w[0] | ~maskWord(prefix, 0)) >>> 0,
    (w[1] | ~maskWord(prefix, 1)) >>> 0,
    (w[2] | ~maskWord(prefix, 2)) >>> 0,
    (w[3] | ~maskWord(prefix, 3)) >>> 0,
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Address specs

export type AddressKind = 'single' | 'cidr' | 'range';

interface SpecCommon {
  readonly kind: AddressKind;
  /** the CIDR prefix length for kind "cidr", else null */
  readonly prefix: number | null;
  /**
   * canonical text: "192.0.2.7", "2001:db8::/48", "192.0.2.10-192.0.2.20". A network or range of one address
   * (192.0.2.7/32, 2001:db8::1/128, 192.0.2.7-192.0.2.7) is that address, kind "single": one address has one text,
   * so a group holds it once and removing it by any of its spellings removes it
   */
  readonly text: string;
}
export interface AddressSpecV4 extends SpecCommon {
  readonly family: 4;
  /** first and last address, inclusive */
  readonly first: number;
  readonly last: number;
}
export interface AddressSpecV6 extends SpecCommon {
  readonly family: 6;
  readonly first: V6Words;
  readonly last: V6Words;
}
export type AddressSpec = AddressSpecV4 | AddressSpecV6;

export type SpecResult = { ok: true; spec: AddressSpec } | { ok: false; error: string };

const EXPECTED = 'expected an IPv4 or IPv6 address, a CIDR like 192.0.2.0/24, or a range like 192.0.2.10-192.0.2.20';

function notAnAddress(part: string, whole: string): string {
  let msg = `"${part}" is not an IPv4 or IPv6 address`;
  if (part !== whole) msg += ` (in "${whole}")`;
  if (part.includes('%')) msg += '; zone ids (the "%..." suffix) are not allowed, write the address without it';
  else if (/^\[.*\]$/.test(part)) msg += '; write it without the brackets';
  else if (/\s/.test(part)) msg += '; it contains a space';
  else if (/(^|[.:])0\d{1,2}(?=\.|$)/.test(part) && !part.includes(':'))
    msg += '; IPv4 parts must not have leading zeros (is 010 octal or decimal?)';
  return msg;
}

const fail = (error: string): SpecResult => ({ ok: false, error });

/** The spec of one address (also what a /32, a /128 or a range from an address to itself is). */
function singleSpec(ip: ParsedIp): SpecResult {
  const text = formatIp(ip);
  return {
    ok: true,
    spec:
      ip.family === 4
        ? { kind: 'single', family: 4, first: ip.v4, last: ip.v4, prefix: null, text }
        : { kind: 'single', family: 6, first: ip.v6, last: ip.v6, prefix: null, text },
  };
}

/**
 * Parses one address spec as people type it: "192.0.2.7", "2001:db8::1", "192.0.2.0/24", "2001:db8::/48",
 * "192.0.2.10-192.0.2.20" (spaces around "/", "-" and the whole tolerated). The spec's text is canonical.
 * CIDRs must not have host bits set. IPv4-mapped IPv6 (also as a CIDR of /96 or longer) becomes IPv4. A CIDR or
 * range that holds one address (/32, /128, x-x) is that address: kind "single", its text the plain address.
 */
export function parseAddressSpec(text: string): SpecResult {
  const s = text.trim();
  if (s === '') return fail(`address is empty; ${EXPECTED}`);
  const slash = s.indexOf('/');
  const dash = s.indexOf('-');
  if (slash >= 0 && dash >= 0)
    return fail(`"${s}" mixes a CIDR ("/") and a range ("-"); write either 192.0.2.0/24 or 192.0.2.10-192.0.2.20`);

  if (dash >= 0) {
    if (s.indexOf('-', dash + 1) >= 0) return fail(`"${s}" has more than one "-"; a range is FIRST-LAST`);
    const a = s.slice(0, dash).trim();
    const b = s.slice(dash + 1).trim();
    if (a === '' || b === '') return fail(`"${s}": a range needs an address on each side of "-"`);
    const first = parseIp(a);
    if (first === null) return fail(notAnAddress(a, s));
    const last = parseIp(b);
    if (last === null) return fail(notAnAddress(b, s));
    if (first.family !== last.family)
      return fail(`"${s}": range mixes IPv4 and IPv6; write one range per family`);
    const rangeText = `${formatIp(first)}-${formatIp(last)}`;
    const order = compareIp(first, last);
    if (order > 0) return fail(`range ${rangeText} ends before it starts`);
    if (order === 0) return singleSpec(first);
    return {
      ok: true,
      spec:
        first.family === 4
          ? { kind: 'range', family: 4, first: first.v4, last: (last as ParsedIpv4).v4, prefix: null, text: rangeText }
          : { kind: 'range', family: 6, first: first.v6, last: (last as ParsedIpv6).v6, prefix: null, text: rangeText },
    };
  }

  if (slash >= 0) {
    if (s.indexOf('/', slash + 1) >= 0) return fail(`"${s}" has more than one "/"; a CIDR is ADDRESS/PREFIX`);
    const a = s.slice(0, slash).trim();
    const p = s.slice(slash + 1).trim();
    if (a === '') return fail(`"${s}" has no address before "/"`);
    const ip = parseIp(a);
    if (ip === null) return fail(notAnAddress(a, s));
    // Written as IPv6 (mapped or not), the prefix counts 128 bits.
    const writtenV6 = a.includes(':');
    const max = writtenV6 ? 128 : 32;
    const fam = writtenV6 ? 'IPv6' : 'IPv4';
    if (p === '') return fail(`"${s}" has no prefix length after "/" (0-${max} for ${fam})`);
    if (!/^\d{1,4}$/.test(p)) return fail(`"${s}": prefix "${p}" is not a number (0-${max} for ${fam})`);
    const prefix = Number(p);
    if (prefix > max) return fail(`"${s}": prefix /${prefix} is too long for ${fam} (0-${max})`);

    if (ip.family === 4 && (!writtenV6 || prefix >= 96)) {
      const p4 = writtenV6 ? prefix - 96 : prefix;
      const mask = maskV4(p4);
      const net = (ip.v4 & mask) >>> 0;
      const cidrText = `${formatV4(net)}/${p4}`;
      if (net !== ip.v4) return fail(`"${s}" has host bits set; did you mean ${cidrText}?`);
      if (p4 === 32) return singleSpec(ip);
      return {
        ok: true,
        spec: { kind: 'cidr', family: 4, first: net, last: (net | ~mask) >>> 0, prefix: p4, text: cidrText },
      };
    }
    // IPv6, or an IPv4-mapped base with a prefix shorter than /96 (which always has host bits set)
    const w: V6Words = ip.family === 6 ? ip.v6 : [0, 0, 0xffff, ip.v4];
    const net = networkV6(w, prefix);
    const cidrText = `${formatV6(net)}/${prefix}`;
    if (compareWords(net, w) !== 0) return fail(`"${s}" has host bits set; did you mean ${cidrText}?`);
    if (prefix === 128) return singleSpec(ip);
    return { ok: true, spec: { kind: 'cidr', family: 6, first: net, last: broadcastV6(net, prefix), prefix, text: cidrText } };
  }

  const ip = parseIp(s);
  if (ip === null) return fail(notAnAddress(s, s));
  return singleSpec(ip);
}

/** True when spec holds every address of its family (0.0.0.0/0, ::/0, or a range from the first to the last). */
export function coversEverything(spec: AddressSpec): boolean {
  if (spec.family === 4) return spec.first === 0 && spec.last === 0xffffffff;
  return spec.first.every((w) => w === 0) && spec.last.every((w) => w === 0xffffffff);
}

/** Not public unicast IPv4: this network, private, shared (CGN), loopback, link-local, documentation, benchmarking, multicast, reserved. */
const NOT_PUBLIC_V4: readonly [number, number][] = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24',
  '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
].map((t) => {
  const r = parseAddressSpec(t);
  if (!r.ok || r.spec.family !== 4) throw new Error(t);
  return [r.spec.first, r.spec.last] as [number, number];
});

/** [first, last] ranges sorted and merged where they overlap or touch. */
function mergeRanges<T extends number | bigint>(ranges: [T, T][]): [T, T][] {
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [T, T][] = [];
  for (const [f, l] of sorted) {
    const top = out[out.length - 1];
    // touching: top's last + 1 === f (compared without mixing number and bigint)
    if (top && (f <= top[1] || (typeof f === 'bigint' ? f - (top[1] as bigint) === 1n : (f as number) - (top[1] as number) === 1))) {
      if (l > top[1]) top[1] = l;
    } else out.push([f, l]);
  }
  return out;
}

/** An IPv6 address (four 32-bit words) as one 128-bit number. */
export const toBig = (w: V6Words): bigint => w.reduce((acc, x) => (acc << 32n) | BigInt(x >>> 0), 0n);
const GLOBAL_V6_FIRST = 0x2n << 124n; // 2000::/3, the global unicast space
const GLOBAL_V6_LAST = (0x4n << 124n) - 1n;

/**
 * How much of the internet the specs hold together, overlaps counted once: public unicast IPv4 addresses (private,
 * loopback, documentation, multicast and reserved ranges left out) and global unicast IPv6 addresses (2000::/3).
 */
export function publicCoverage(specs: readonly AddressSpec[]): { v4: number; v6: bigint } {
  const v4 = mergeRanges(specs.filter((s): s is AddressSpecV4 => s.family === 4).map((s) => [s.first, s.last] as [number, number]));
  let count4 = 0;
  for (const [f, l] of v4) {
    count4 += l - f + 1;
    for (const [rf, rl] of NOT_PUBLIC_V4) {
      const lo = Math.max(f, rf);
      const hi = Math.min(l, rl);
      if (lo <= hi) count4 -= hi - lo + 1;
    }
  }
  const v6 = mergeRanges(specs.filter((s): s is AddressSpecV6 => s.family === 6).map((s) => [toBig(s.first), toBig(s.last)] as [bigint, bigint]));
  let count6 = 0n;
  for (const [f, l] of v6) {
    const lo = f > GLOBAL_V6_FIRST ? f : GLOBAL_V6_FIRST;
    const hi = l < GLOBAL_V6_LAST ? l : GLOBAL_V6_LAST;
    if (lo <= hi) count6 += hi - lo + 1n;
  }
  return { v4: count4, v6: count6 };
}

/** True when ip lies in spec (inclusive). An IPv4 spec never contains an IPv6 address and vice versa. */
export function specContains(spec: AddressSpec, ip: ParsedIp): boolean {
  if (spec.family === 4) return ip.family === 4 && ip.v4 >= spec.first && ip.v4 <= spec.last;
  return ip.family === 6 && compareWords(spec.first, ip.v6) <= 0 && compareWords(ip.v6, spec.last) <= 0;
}

/**
 * The per-client counting key: IPv4 -> "203.0.113.5"; IPv6 -> its /ipv6Prefix network, "2001:db8:1:2::/64"
 * (ipv6Prefix 128 -> the address itself, no "/128"). Throws a RangeError for a prefix outside 0..128.
 */
export function clientKey(ip: ParsedIp, ipv6Prefix: number): string {
  if (ip.family === 4) return formatV4(ip.v4);
  if (!Number.isInteger(ipv6Prefix) || ipv6Prefix < 0 || ipv6Prefix > 128)
    throw new RangeError(`ipv6Prefix must be an integer 0-128, got ${ipv6Prefix}`);
  if (ipv6Prefix === 128) return formatV6(ip.v6);
  return `${formatV6(networkV6(ip.v6, ipv6Prefix))}/${ipv6Prefix}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Timestamps

const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil); valid for any year. */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/**
 * Epoch milliseconds of an ISO 8601 / RFC 3339 date-time WITH a time zone ("2026-12-01T09:00:00Z",
 * "2026-12-01T10:00+01:00"), or null. A date-time without a zone is refused: the relay and the console may run in
 * different zones, so "local time" would mean two different moments. Impossible dates (02-30, 24:00) are refused.
 */
export function parseIsoInstant(text: string): number | null {
  const m = ISO_INSTANT.exec(text);
  if (m === null) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const days = daysFromCivil(year, month, day);
  return ((days * 24 + hour) * 60 + minute - offsetMinutes) * 60_000 + second * 1000 + ms;
}

// ---------------------------------------------------------------------------------------------------------------
// Groups

export interface GroupEntryInput {
  address: string;
  comment?: string | null;
  /** ISO 8601 date-time with a zone; the entry stops matching at that instant */
  expiresAt?: string | null;
  addedBy?: string | null;
  addedAt?: string | null;
}

export interface GroupEntryMatch {
  group: string;
  index: number;
  entry: GroupEntryInput;
}

/** A bad entry in the groups config; `field` and `index` locate it (e.g. for a form or a zod issue path). */
export class GroupEntryError extends Error {
  constructor(
    message: string,
    readonly group: string,
    readonly index: number,
    readonly field: 'address' | 'expiresAt' | null,
  ) {
    super(message);
    this.name = 'GroupEntryError';
  }
}

/**
 * One group, compiled to flat typed arrays per family so matching is a tight loop with no allocation.
 * Entries keep their config order, so the first match is the lowest index.
 */
class CompiledGroup {
  readonly v4First: Uint32Array;
  readonly v4Last: Uint32Array;
  readonly v4Expires: Float64Array;
  readonly v4Index: Uint32Array;
  readonly v6First: Uint32Array; // 4 words per entry
  readonly v6Last: Uint32Array;
  readonly v6Expires: Float64Array;
  readonly v6Index: Uint32Array;

  constructor(
    readonly name: string,
    readonly entries: readonly GroupEntryInput[],
    specs: readonly AddressSpec[],
    expires: readonly number[],
  ) {
    let n4 = 0;
    for (const s of specs) if (s.family === 4) n4++;
    const n6 = specs.length - n4;
    this.v4First = new Uint32Array(n4);
    this.v4Last = new Uint32Array(n4);
    this.v4Expires = new Float64Array(n4);
    this.v4Index = new Uint32Array(n4);
    this.v6First = new Uint32Array(n6 * 4);
    this.v6Last = new Uint32Array(n6 * 4);
    this.v6Expires = new Float64Array(n6);
    this.v6Index = new Uint32Array(n6);
    let i4 = 0;
    let i6 = 0;
    specs.forEach((s, index) => {
      if (s.family === 4) {
        this.v4First[i4] = s.first;
        this.v4Last[i4] = s.last;
        this.v4Expires[i4] = expires[index]!;
        this.v4Index[i4++] = index;
      } else {
        this.v6First.set(s.first, i6 * 4);
        this.v6Last.set(s.last, i6 * 4);
        this.v6Expires[i6] = expires[index]!;
        this.v6Index[i6++] = index;
      }
    });
  }

  /** index of the first live entry containing ip, or -1 */
  find(ip: ParsedIp, nowMs: number): number {
    if (ip.family === 4) {
      const v = ip.v4;
      const first = this.v4First;
      const last = this.v4Last;
      for (let k = 0; k < first.length; k++) {
        if (v >= first[k]! && v <= last[k]! && this.v4Expires[k]! > nowMs) return this.v4Index[k]!;
      }
      return -1;
    }
    const w = ip.v6;
    const first = this.v6First;
    const last = this.v6Last;
    for (let k = 0, o = 0; k < this.v6Expires.length; k++, o += 4) {
      if (this.v6Expires[k]! > nowMs && wordsBetween(w, first, last, o)) return this.v6Index[k]!;
    }
    return -1;
  }
}

/** first[o..o+3] <= w <= last[o..o+3] */
function wordsBetween(w: V6Words, first: Uint32Array, last: Uint32Array, o: number): boolean {
  for (let k = 0; k < 4; k++) {
    const x = w[k]!;
    const f = first[o + k]!;
    if (x !== f) {
      if (x < f) return false;
      break;
    }
  }
  for (let k = 0; k < 4; k++) {
    const x = w[k]!;
    const l = last[o + k]!;
    if (x !== l) return x < l;
  }
  return true;
}

/**
 * The trusted groups of one config snapshot, compiled once. Build a new matcher when the config changes.
 * Matching is linear in the entries of the groups asked about, over flat typed arrays.
 */
export class GroupMatcher {
  private readonly groups = new Map<string, CompiledGroup>();

  /** Throws a GroupEntryError naming the group and entry index for a bad address or expiresAt. */
  constructor(groups: Record<string, readonly GroupEntryInput[]>) {
    for (const [name, entries] of Object.entries(groups)) {
      if (!Array.isArray(entries))
        throw new GroupEntryError(`group "${name}" must be a list of entries`, name, -1, null);
      const specs: AddressSpec[] = [];
      const expires: number[] = [];
      entries.forEach((entry: GroupEntryInput, index: number) => {
        const where = `group "${name}" entry [${index}]`;
        const address: unknown = entry?.address;
        if (typeof address !== 'string')
          throw new GroupEntryError(`${where}: address is missing; ${EXPECTED}`, name, index, 'address');
        const r = parseAddressSpec(address);
        if (!r.ok) throw new GroupEntryError(`${where}: ${r.error}`, name, index, 'address');
        specs.push(r.spec);
        const exp: unknown = entry.expiresAt;
        if (exp === null || exp === undefined) {
          expires.push(Number.POSITIVE_INFINITY);
        } else {
          const ms = typeof exp === 'string' ? parseIsoInstant(exp) : null;
          if (ms === null)
            throw new GroupEntryError(
              `${where} (${r.spec.text}): expiresAt ${JSON.stringify(exp)} is not an ISO 8601 date and time with a ` +
                'time zone, e.g. 2026-12-01T09:00:00Z; use null for "never expires"',
              name,
              index,
              'expiresAt',
            );
          expires.push(ms);
        }
      });
      this.groups.set(name, new CompiledGroup(name, entries, specs, expires));
    }
  }

  /** Names of the groups (in config order) that contain ip at nowMs; entries with expiresAt <= nowMs do not match. */
  groupsOf(ip: ParsedIp, nowMs: number): string[] {
    const out: string[] = [];
    for (const g of this.groups.values()) if (g.find(ip, nowMs) >= 0) out.push(g.name);
    return out;
  }

  /** True when ip is in any of the named groups at nowMs; unknown group names match nothing. */
  inAny(ip: ParsedIp, groupNames: readonly string[], nowMs: number): boolean {
    for (let k = 0; k < groupNames.length; k++) {
      const g = this.groups.get(groupNames[k]!);
      if (g !== undefined && g.find(ip, nowMs) >= 0) return true;
    }
    return false;
  }

  /** The first matching entry, trying the groups in the order given and entries in config order; or null. */
  findEntry(ip: ParsedIp, groupNames: readonly string[], nowMs: number): GroupEntryMatch | null {
    for (let k = 0; k < groupNames.length; k++) {
      const g = this.groups.get(groupNames[k]!);
      if (g === undefined) continue;
      const index = g.find(ip, nowMs);
      if (index >= 0) return { group: g.name, index, entry: g.entries[index]! };
    }
    return null;
  }
}
