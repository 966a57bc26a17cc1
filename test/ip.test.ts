import { describe, expect, it } from 'vitest';
import {
  GroupEntryError,
  GroupMatcher,
  clientKey,
  compareIp,
  formatIp,
  normalizeIp,
  parseAddressSpec,
  parseIp,
  parseIsoInstant,
  specContains,
  type AddressSpec,
  type ParsedIp,
} from '../shared/ip.ts';

const ip = (text: string): ParsedIp => {
  const r = parseIp(text);
  if (r === null) throw new Error(`test setup: ${text} is not an address`);
  return r;
};
const spec = (text: string): AddressSpec => {
  const r = parseAddressSpec(text);
  if (!r.ok) throw new Error(`test setup: ${r.error}`);
  return r.spec;
};
const specError = (text: string): string => {
  const r = parseAddressSpec(text);
  if (r.ok) throw new Error(`expected "${text}" to be refused, got ${r.spec.text}`);
  return r.error;
};

describe('parseIp / normalizeIp', () => {
  it.each([
    // IPv4
    ['0.0.0.0', '0.0.0.0', 4],
    ['192.0.2.7', '192.0.2.7', 4],
    ['255.255.255.255', '255.255.255.255', 4],
    ['10.0.0.1', '10.0.0.1', 4],
    // IPv6, all RFC 4291 forms
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['1::', '1::', 6],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8', 6],
    ['2001:DB8::ABCD', '2001:db8::abcd', 6],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1', 6],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0', 6],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8', 6],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304', 6],
    ['::1.2.3.4', '::102:304', 6], // IPv4-compatible (deprecated) is not mapped
    ['::ffff:0:1.2.3.4', '::ffff:0:102:304', 6], // SIIT "translated", not mapped
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221', 6],
    ['fe80::1', 'fe80::1', 6],
    // IPv4-mapped IPv6 is IPv4
    ['::ffff:1.2.3.4', '1.2.3.4', 4],
    ['::FFFF:1.2.3.4', '1.2.3.4', 4],
    ['::ffff:0102:0304', '1.2.3.4', 4],
    ['0:0:0:0:0:ffff:c000:207', '192.0.2.7', 4],
  ] as const)('%s -> %s (IPv%d)', (text, canonical, family) => {
    const parsed = parseIp(text);
    expect(parsed?.family).toBe(family);
    expect(normalizeIp(text)).toBe(canonical);
    expect(formatIp(parsed!)).toBe(canonical);
    // canonical text is a fixed point
    expect(normalizeIp(canonical)).toBe(canonical);
  });

  it.each([
    '',
    ' ',
    '1.2.3',
    '1.2.3.4.5',
    '1.2.3.256',
    '192.0.2.300',
    '010.0.0.1', // leading zero (octal?)
    '1.02.3.4',
    '00.1.2.3',
    '1.2.3.-4',
    '1.2.3.4.',
    '.1.2.3.4',
    '1..2.3',
    '1.2.3.4 ', // trailing space
    ' 1.2.3.4',
    '::1 ',
    '0x1.2.3.4',
    '1.2.3.a',
    '1234.1.1.1',
    ':',
    ':::',
    '1:2:3:4:5:6:7:8:9', // too many groups
    '1:2:3:4:5:6:7', // too few without "::"
    '1:2:3:4:5:6:7:8::', // "::" must stand for at least one group
    '::1:2:3:4:5:6:7:8',
    '1::2::3', // two "::"
    '1:::2',
    ':1::2',
    '1::2:',
    '12345::1', // five hex digits
    'g::1',
    'fe80::1%eth0', // zone id
    'fe80::1%1',
    '[::1]',
    '1:2:3:4:5:6:7:1.2.3.4', // IPv4 tail after 7 groups
    '::1.2.3',
    '::1.2.3.4:5',
    '::ffff:1.2.3.04',
    '::ffff:1.2.3.256',
    'localhost',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeNull();
    expect(normalizeIp(text)).toBeNull();
  });

  it.each([
    ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8::1:0:0:0', '2001:db8:0:0:1::'], // the longer run wins
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'],
    ['0:0:1:0:0:0:0:1', '0:0:1::1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:DB8:AAAA:BBBB:CCCC:DDDD:EEEE:0001', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
  ])('RFC 5952: %s -> %s', (text, canonical) => {
    expect(normalizeIp(text)).toBe(canonical);
  });

  it('keeps IPv4 as an unsigned 32-bit number and IPv6 as four words', () => {
    expect(ip('255.255.255.255')).toEqual({ family: 4, v4: 0xffffffff });
    expect(ip('2001:db8::ffff:ffff')).toEqual({ family: 6, v6: [0x20010db8, 0, 0, 0xffffffff] });
  });

  it('orders IPv4 before IPv6, then numerically', () => {
    const sorted = ['2001:db8::1', '10.0.0.2', '::', '9.255.255.255', 'ffff::', '2001:db8::'].map(ip).sort(compareIp);
    expect(sorted.map(formatIp)).toEqual(['9.255.255.255', '10.0.0.2', '::', '2001:db8::', '2001:db8::1', 'ffff::']);
  });
});

describe('parseAddressSpec', () => {
  it.each([
    ['192.0.2.7', 'single', 4, '192.0.2.7'],
    ['2001:DB8:0::1', 'single', 6, '2001:db8::1'],
    ['::ffff:192.0.2.7', 'single', 4, '192.0.2.7'],
    ['  192.0.2.7  ', 'single', 4, '192.0.2.7'],
    ['192.0.2.0/24', 'cidr', 4, '192.0.2.0/24'],
    ['192.0.2.0 / 24', 'cidr', 4, '192.0.2.0/24'],
    // a network or range of one address is that address (one text per address: a group holds it once)
    ['192.0.2.7/32', 'single', 4, '192.0.2.7'],
    ['::ffff:192.0.2.7/128', 'single', 4, '192.0.2.7'],
    ['0.0.0.0/0', 'cidr', 4, '0.0.0.0/0'],
    ['2001:db8::/48', 'cidr', 6, '2001:db8::/48'],
    ['2001:0DB8:0000::/32', 'cidr', 6, '2001:db8::/32'],
    ['2001:db8::1/128', 'single', 6, '2001:db8::1'],
    ['::/0', 'cidr', 6, '::/0'],
    ['::ffff:192.0.2.0/120', 'cidr', 4, '192.0.2.0/24'],
    ['192.0.2.10-192.0.2.20', 'range', 4, '192.0.2.10-192.0.2.20'],
    ['192.0.2.10 - 192.0.2.20', 'range', 4, '192.0.2.10-192.0.2.20'],
    ['192.0.2.10-192.0.2.10', 'single', 4, '192.0.2.10'],
    ['2001:DB8::1 - 2001:db8:0::1', 'single', 6, '2001:db8::1'],
    ['192.0.2.10-192.0.2.11', 'range', 4, '192.0.2.10-192.0.2.11'],
    ['192.0.2.6/31', 'cidr', 4, '192.0.2.6/31'],
    ['2001:db8::10-2001:db8::1:0', 'range', 6, '2001:db8::10-2001:db8::1:0'],
    ['::ffff:192.0.2.1-192.0.2.9', 'range', 4, '192.0.2.1-192.0.2.9'],
  ] as const)('%j is a %s IPv%d spec, %s', (text, kind, family, canonical) => {
    const s = spec(text);
    expect(s.kind).toBe(kind);
    expect(s.family).toBe(family);
    expect(s.text).toBe(canonical);
    expect(spec(canonical).text).toBe(canonical);
  });

  it('keeps first, last and prefix', () => {
    expect(spec('192.0.2.0/24')).toMatchObject({ first: 0xc0000200, last: 0xc00002ff, prefix: 24 });
    expect(spec('2001:db8::/32')).toMatchObject({
      first: [0x20010db8, 0, 0, 0],
      last: [0x20010db8, 0xffffffff, 0xffffffff, 0xffffffff],
      prefix: 32,
    });
    expect(spec('192.0.2.7')).toMatchObject({ first: 0xc0000207, last: 0xc0000207, prefix: null });
    expect(spec('192.0.2.7/32')).toEqual(spec('192.0.2.7'));
    expect(spec('192.0.2.7-192.0.2.7')).toEqual(spec('192.0.2.7'));
    expect(spec('2001:db8::1/128')).toEqual(spec('2001:db8::1'));
  });

  it.each([
    ['', 'address is empty; expected an IPv4 or IPv6 address, a CIDR like 192.0.2.0/24, or a range like 192.0.2.10-192.0.2.20'],
    ['   ', 'address is empty; expected an IPv4 or IPv6 address, a CIDR like 192.0.2.0/24, or a range like 192.0.2.10-192.0.2.20'],
    ['192.0.2.300', '"192.0.2.300" is not an IPv4 or IPv6 address'],
    ['mail.example.com', '"mail.example.com" is not an IPv4 or IPv6 address'],
    ['010.0.0.1', '"010.0.0.1" is not an IPv4 or IPv6 address; IPv4 parts must not have leading zeros (is 010 octal or decimal?)'],
    ['fe80::1%eth0', '"fe80::1%eth0" is not an IPv4 or IPv6 address; zone ids (the "%..." suffix) are not allowed, write the address without it'],
    ['[2001:db8::1]', '"[2001:db8::1]" is not an IPv4 or IPv6 address; write it without the brackets'],
    ['192.0.2. 7', '"192.0.2. 7" is not an IPv4 or IPv6 address; it contains a space'],
    ['192.0.2.5/24', '"192.0.2.5/24" has host bits set; did you mean 192.0.2.0/24?'],
    ['2001:db8::1/48', '"2001:db8::1/48" has host bits set; did you mean 2001:db8::/48?'],
    ['::ffff:192.0.2.0/64', '"::ffff:192.0.2.0/64" has host bits set; did you mean ::/64?'],
    ['192.0.2.0/33', '"192.0.2.0/33": prefix /33 is too long for IPv4 (0-32)'],
    ['2001:db8::/129', '"2001:db8::/129": prefix /129 is too long for IPv6 (0-128)'],
    ['192.0.2.0/', '"192.0.2.0/" has no prefix length after "/" (0-32 for IPv4)'],
    ['192.0.2.0/abc', '"192.0.2.0/abc": prefix "abc" is not a number (0-32 for IPv4)'],
    ['2001:db8::/4.8', '"2001:db8::/4.8": prefix "4.8" is not a number (0-128 for IPv6)'],
    ['/24', '"/24" has no address before "/"'],
    ['192.0.2.0/24/8', '"192.0.2.0/24/8" has more than one "/"; a CIDR is ADDRESS/PREFIX'],
    ['192.0.2.300/24', '"192.0.2.300" is not an IPv4 or IPv6 address (in "192.0.2.300/24")'],
    ['192.0.2.20-192.0.2.10', 'range 192.0.2.20-192.0.2.10 ends before it starts'],
    ['2001:db8::2-2001:db8::1', 'range 2001:db8::2-2001:db8::1 ends before it starts'],
    ['192.0.2.1-2001:db8::1', '"192.0.2.1-2001:db8::1": range mixes IPv4 and IPv6; write one range per family'],
    ['192.0.2.1-', '"192.0.2.1-": a range needs an address on each side of "-"'],
    ['-192.0.2.1', '"-192.0.2.1": a range needs an address on each side of "-"'],
    ['192.0.2.1-192.0.2.5-192.0.2.9', '"192.0.2.1-192.0.2.5-192.0.2.9" has more than one "-"; a range is FIRST-LAST'],
    ['192.0.2.1-192.0.2.999', '"192.0.2.999" is not an IPv4 or IPv6 address (in "192.0.2.1-192.0.2.999")'],
    ['192.0.2.0/24-192.0.2.255', '"192.0.2.0/24-192.0.2.255" mixes a CIDR ("/") and a range ("-"); write either 192.0.2.0/24 or 192.0.2.10-192.0.2.20'],
  ])('refuses %j: %s', (text, message) => {
    expect(specError(text)).toBe(message);
  });
});

describe('specContains', () => {
  const inside = (s: string, a: string) => specContains(spec(s), ip(a));

  it('matches a single address only', () => {
    expect(inside('192.0.2.7', '192.0.2.7')).toBe(true);
    expect(inside('192.0.2.7', '192.0.2.8')).toBe(false);
    expect(inside('2001:db8::1', '2001:DB8:0:0:0:0:0:1')).toBe(true);
    expect(inside('2001:db8::1', '2001:db8::2')).toBe(false);
  });

  it('CIDR edges: first and last address in, neighbours out', () => {
    expect(inside('192.0.2.0/24', '192.0.2.0')).toBe(true);
    expect(inside('192.0.2.0/24', '192.0.2.255')).toBe(true);
    expect(inside('192.0.2.0/24', '192.0.1.255')).toBe(false);
    expect(inside('192.0.2.0/24', '192.0.3.0')).toBe(false);
    expect(inside('192.0.2.7/32', '192.0.2.7')).toBe(true);
    expect(inside('192.0.2.7/32', '192.0.2.6')).toBe(false);
    expect(inside('128.0.0.0/1', '255.255.255.255')).toBe(true);
    expect(inside('128.0.0.0/1', '127.255.255.255')).toBe(false);
    expect(inside('2001:db8::/48', '2001:db8::')).toBe(true);
    expect(inside('2001:db8::/48', '2001:db8:0:ffff:ffff:ffff:ffff:ffff')).toBe(true);
    expect(inside('2001:db8::/48', '2001:db8:1::')).toBe(false);
    expect(inside('2001:db8::/48', '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(false);
    expect(inside('2001:db8::/127', '2001:db8::1')).toBe(true);
    expect(inside('2001:db8::/127', '2001:db8::2')).toBe(false);
    expect(inside('2001:db8::1/128', '2001:db8::1')).toBe(true);
    expect(inside('2001:db8::1/128', '2001:db8::')).toBe(false);
    // a prefix that splits a 32-bit word
    expect(inside('2001:db8:8000::/33', '2001:db8:ffff::1')).toBe(true);
    expect(inside('2001:db8:8000::/33', '2001:db8:7fff::1')).toBe(false);
  });

  it('/0 covers its whole family and nothing of the other', () => {
    for (const a of ['0.0.0.0', '255.255.255.255', '192.0.2.7']) expect(inside('0.0.0.0/0', a)).toBe(true);
    for (const a of ['::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db8::1']) expect(inside('::/0', a)).toBe(true);
    expect(inside('0.0.0.0/0', '::1')).toBe(false);
    expect(inside('::/0', '192.0.2.7')).toBe(false);
    expect(inside('::/0', '::ffff:192.0.2.7')).toBe(false); // a mapped client is an IPv4 client
  });

  it('ranges are inclusive at both ends', () => {
    expect(inside('192.0.2.10-192.0.2.20', '192.0.2.10')).toBe(true);
    expect(inside('192.0.2.10-192.0.2.20', '192.0.2.20')).toBe(true);
    expect(inside('192.0.2.10-192.0.2.20', '192.0.2.15')).toBe(true);
    expect(inside('192.0.2.10-192.0.2.20', '192.0.2.9')).toBe(false);
    expect(inside('192.0.2.10-192.0.2.20', '192.0.2.21')).toBe(false);
    expect(inside('10.255.255.250-11.0.0.5', '11.0.0.0')).toBe(true);
    expect(inside('2001:db8::ffff-2001:db8::1:5', '2001:db8::1:0')).toBe(true);
    expect(inside('2001:db8::ffff-2001:db8::1:5', '2001:db8::1:5')).toBe(true);
    expect(inside('2001:db8::ffff-2001:db8::1:5', '2001:db8::1:6')).toBe(false);
    expect(inside('2001:db8::ffff-2001:db8::1:5', '2001:db8::fffe')).toBe(false);
    expect(inside('2001:db8::ffff-2001:db8::1:5', '2001:db9::1')).toBe(false);
  });

  it('an IPv4 spec never matches IPv6 and vice versa', () => {
    expect(inside('0.0.0.1', '::1')).toBe(false);
    expect(inside('::1', '0.0.0.1')).toBe(false);
    expect(inside('::1.2.3.4', '1.2.3.4')).toBe(false);
    expect(inside('1.2.3.4', '::1.2.3.4')).toBe(false);
    expect(inside('1.2.3.0/24', '::ffff:0:1.2.3.4')).toBe(false);
  });

  it('an IPv4-mapped client matches IPv4 entries, and mapped entries match IPv4 clients', () => {
    expect(inside('192.0.2.0/24', '::ffff:192.0.2.7')).toBe(true);
    expect(inside('192.0.2.7', '::ffff:c000:207')).toBe(true);
    expect(inside('192.0.2.5-192.0.2.9', '::ffff:192.0.2.9')).toBe(true);
    expect(inside('::ffff:192.0.2.7', '192.0.2.7')).toBe(true);
    expect(inside('::ffff:192.0.2.0/120', '192.0.2.255')).toBe(true);
  });
});

describe('clientKey', () => {
  const v6 = ip('2001:db8:1:2:3:4:5:6');

  it('is the address for IPv4, also when it arrived IPv4-mapped', () => {
    expect(clientKey(ip('203.0.113.5'), 64)).toBe('203.0.113.5');
    expect(clientKey(ip('::ffff:203.0.113.5'), 64)).toBe('203.0.113.5');
    expect(clientKey(ip('203.0.113.5'), 128)).toBe('203.0.113.5');
  });

  it('is the /prefix network for IPv6', () => {
    expect(clientKey(v6, 64)).toBe('2001:db8:1:2::/64');
    expect(clientKey(v6, 48)).toBe('2001:db8:1::/48');
    expect(clientKey(v6, 128)).toBe('2001:db8:1:2:3:4:5:6');
    expect(clientKey(v6, 0)).toBe('::/0');
    expect(clientKey(v6, 127)).toBe('2001:db8:1:2:3:4:5:6/127');
    expect(clientKey(ip('2001:db8:1:2:3:4:5:7'), 127)).toBe('2001:db8:1:2:3:4:5:6/127');
    expect(clientKey(ip('2001:db8:1:2:ffff::9'), 64)).toBe(clientKey(v6, 64)); // same /64, same client
    expect(clientKey(ip('2001:db8:1:3::1'), 64)).not.toBe(clientKey(v6, 64));
    expect(clientKey(ip('2001:db8:1:2:3:4:5:6'.toUpperCase()), 128)).toBe('2001:db8:1:2:3:4:5:6');
  });

  it('refuses a prefix outside 0-128', () => {
    expect(() => clientKey(v6, 129)).toThrow(RangeError);
    expect(() => clientKey(v6, -1)).toThrow(/0-128/);
    expect(() => clientKey(v6, 64.5)).toThrow(/0-128/);
  });
});

describe('parseIsoInstant', () => {
  it.each([
    '2025-01-01T00:00:00Z',
    '2024-02-29T23:59:59.999+05:30',
    '2026-12-01T09:00-08:00',
    '1999-12-31t23:59:59.5z',
    '2026-06-30T12:00:00.123456Z',
  ])('agrees with Date.parse on %s', (text) => {
    expect(parseIsoInstant(text)).toBe(Date.parse(text.toUpperCase()));
  });

  it.each([
    'tomorrow',
    '',
    '2026-12-01', // no time
    '2026-12-01T09:00:00', // no zone: local time where, the relay or the console?
    '2025-02-29T00:00:00Z',
    '2026-02-30T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-12-01T24:00:00Z',
    '2026-12-01T09:60:00Z',
    '2026-12-01T09:00:00+0100',
    '2026-12-01 09:00:00Z',
    ' 2026-12-01T09:00:00Z',
  ])('refuses %j', (text) => {
    expect(parseIsoInstant(text)).toBeNull();
  });
});

describe('GroupMatcher', () => {
  const EXPIRY = '2026-03-07T18:00:00Z';
  const expiryMs = Date.parse(EXPIRY);
  const NOW = expiryMs - 3_600_000;
  const matcher = new GroupMatcher({
    Trusted: [
      { address: '192.0.2.0/24', comment: 'office', expiresAt: null },
      { address: '2001:db8:1::/48', comment: 'office v6' },
      { address: '198.51.100.7', comment: 'a day', expiresAt: EXPIRY, addedBy: 'admin', addedAt: '2026-03-06T18:00:00Z' },
    ],
    Partners: [
      { address: '198.51.100.0-198.51.100.9' },
      { address: '192.0.2.128/25' },
    ],
    Empty: [],
  });

  it('lists the groups that contain an address, in config order', () => {
    expect(matcher.groupsOf(ip('192.0.2.200'), NOW)).toEqual(['Trusted', 'Partners']);
    expect(matcher.groupsOf(ip('192.0.2.1'), NOW)).toEqual(['Trusted']);
    expect(matcher.groupsOf(ip('2001:db8:1:ff::1'), NOW)).toEqual(['Trusted']);
    expect(matcher.groupsOf(ip('2001:db8:2::1'), NOW)).toEqual([]);
    expect(matcher.groupsOf(ip('203.0.113.1'), NOW)).toEqual([]);
    expect(matcher.groupsOf(ip('::ffff:192.0.2.1'), NOW)).toEqual(['Trusted']);
  });

  it('answers inAny for the named groups only; unknown names match nothing', () => {
    expect(matcher.inAny(ip('192.0.2.1'), ['Trusted'], NOW)).toBe(true);
    expect(matcher.inAny(ip('192.0.2.1'), ['Partners'], NOW)).toBe(false);
    expect(matcher.inAny(ip('192.0.2.1'), ['Nope', 'Partners', 'Trusted'], NOW)).toBe(true);
    expect(matcher.inAny(ip('192.0.2.1'), ['Nope'], NOW)).toBe(false);
    expect(matcher.inAny(ip('192.0.2.1'), [], NOW)).toBe(false);
    expect(matcher.inAny(ip('192.0.2.1'), ['Empty'], NOW)).toBe(false);
    expect(matcher.findEntry(ip('192.0.2.1'), ['Nope'], NOW)).toBeNull();
  });

  it('finds the entry in the order of the names given, then config order', () => {
    expect(matcher.findEntry(ip('192.0.2.200'), ['Partners', 'Trusted'], NOW)).toEqual({
      group: 'Partners',
      index: 1,
      entry: { address: '192.0.2.128/25' },
    });
    expect(matcher.findEntry(ip('192.0.2.200'), ['Trusted', 'Partners'], NOW)).toMatchObject({
      group: 'Trusted',
      index: 0,
      entry: { comment: 'office' },
    });
    expect(matcher.findEntry(ip('2001:db8:1::5'), ['Trusted'], NOW)).toMatchObject({ group: 'Trusted', index: 1 });
    expect(matcher.findEntry(ip('198.51.100.7'), ['Trusted'], NOW)).toMatchObject({ index: 2, entry: { addedBy: 'admin' } });
  });

  it('an entry stops matching exactly at expiresAt', () => {
    const a = ip('198.51.100.7');
    expect(matcher.inAny(a, ['Trusted'], expiryMs - 1)).toBe(true);
    expect(matcher.inAny(a, ['Trusted'], expiryMs)).toBe(false);
    expect(matcher.inAny(a, ['Trusted'], expiryMs + 1)).toBe(false);
    expect(matcher.groupsOf(a, expiryMs - 1)).toEqual(['Trusted', 'Partners']);
    expect(matcher.groupsOf(a, expiryMs)).toEqual(['Partners']);
    expect(matcher.findEntry(a, ['Trusted'], expiryMs)).toBeNull();
    // entries without expiresAt never expire
    expect(matcher.inAny(ip('192.0.2.1'), ['Trusted'], 8.64e15)).toBe(true);
  });

  it('honours the zone offset of expiresAt', () => {
    const m = new GroupMatcher({ T: [{ address: '192.0.2.1', expiresAt: '2026-03-07T19:00:00+01:00' }] });
    expect(m.inAny(ip('192.0.2.1'), ['T'], expiryMs - 1)).toBe(true);
    expect(m.inAny(ip('192.0.2.1'), ['T'], expiryMs)).toBe(false);
  });

  it('an empty config matches nothing', () => {
    const m = new GroupMatcher({});
    expect(m.groupsOf(ip('192.0.2.1'), NOW)).toEqual([]);
    expect(m.inAny(ip('192.0.2.1'), ['Trusted'], NOW)).toBe(false);
  });

  it('refuses a bad address, naming group and entry', () => {
    const build = () =>
      new GroupMatcher({ Trusted: [{ address: '192.0.2.1' }, { address: '192.0.2.5/24', comment: 'typo' }] });
    expect(build).toThrow(GroupEntryError);
    expect(build).toThrow('group "Trusted" entry [1]: "192.0.2.5/24" has host bits set; did you mean 192.0.2.0/24?');
    try {
      build();
    } catch (e) {
      expect(e).toMatchObject({ group: 'Trusted', index: 1, field: 'address' });
    }
    expect(() => new GroupMatcher({ G: [{ address: '' }] })).toThrow(/^group "G" entry \[0\]: address is empty/);
    expect(() => new GroupMatcher({ G: [{} as never] })).toThrow(/^group "G" entry \[0\]: address is missing/);
  });

  it('refuses a bad expiresAt, naming group, entry and value', () => {
    for (const bad of ['tomorrow', '2026-02-30T00:00:00Z', '2026-03-07T18:00:00', '']) {
      let error: unknown;
      try {
        new GroupMatcher({ Ok: [], Temp: [{ address: '192.0.2.1' }, { address: '192.0.2.9', expiresAt: bad }] });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(GroupEntryError);
      expect(error).toMatchObject({ group: 'Temp', index: 1, field: 'expiresAt' });
      expect((error as Error).message).toBe(
        `group "Temp" entry [1] (192.0.2.9): expiresAt ${JSON.stringify(bad)} is not an ISO 8601 date and time ` +
          'with a time zone, e.g. 2026-12-01T09:00:00Z; use null for "never expires"',
      );
    }
  });

  it('handles group names that are Object.prototype keys', () => {
    const m = new GroupMatcher(JSON.parse('{"__proto__":[{"address":"192.0.2.1"}],"constructor":[]}'));
    expect(m.groupsOf(ip('192.0.2.1'), NOW)).toEqual(['__proto__']);
    expect(m.inAny(ip('192.0.2.1'), ['toString', 'constructor'], NOW)).toBe(false);
  });
});

describe('isLoopback', () => {
  it('127.0.0.0/8, ::1 and the IPv4-mapped form; nothing else', async () => {
    const { isLoopback } = await import('../shared/ip.ts');
    for (const a of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.2']) expect(isLoopback(parseIp(a)!), a).toBe(true);
    for (const a of ['128.0.0.1', '126.255.255.255', '::2', '::', '0.0.0.0', '192.0.2.2', '::127.0.0.1']) expect(isLoopback(parseIp(a)!), a).toBe(false);
  });
});
