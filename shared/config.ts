/**
 * The relay's configuration: one zod schema that is the type, the defaults, the validator and the documentation.
 * Used by the relay (config.json, SIGHUP, config.update) and by the console's forms.
 * Every object is strict: an unknown key is refused by name (a typo must never silently do nothing).
 */
import { z } from 'zod';
import { parseHostPort } from './hostport.ts';
import { type AddressSpec, coversEverything, parseAddressSpec, parseIp, parseIsoInstant, publicCoverage } from './ip.ts';

export const MODES = ['enforce', 'monitor', 'off'] as const;
export const Mode = z.enum(MODES).describe('enforce: reject; monitor: accept but report "would have rejected"; off: not checked');
export type Mode = z.infer<typeof Mode>;

const hostPort = (what: string, defaultPort?: number) =>
  z.string().superRefine((v, ctx) => {
    const r = parseHostPort(v, defaultPort);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: `${what} ${r.error}` });
  });

// ---------------------------------------------------------------------------------------------------------------
// DNS servers: the one parser of a `dns.servers` entry. The relay's resolver (relay/dns/servers.ts re-exports it)
// and this schema both use it, so an entry the schema takes is one the resolver takes. No Node-only APIs: the
// console's renderer validates with this schema too.

export interface DnsServerAddress {
  host: string; // an IP address, IPv6 in canonical form without brackets
  port: number;
  family: 4 | 6;
  label: string; // "192.0.2.53:53" or "[2001:db8::53]:53", for messages
}

const DNS_EXAMPLES = 'e.g. "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:5353"';

function isIPv4Text(host: string): boolean {
  return !host.includes(':') && parseIp(host) !== null;
}

/** IPv6 text as node:net isIPv6 takes it: any RFC 4291 form, IPv4-mapped included, with an optional zone id. */
function isIPv6Text(host: string): boolean {
  const pct = host.indexOf('%');
  const addr = pct >= 0 ? host.slice(0, pct) : host;
  if (pct >= 0 && !/^[0-9A-Za-z.:-]+$/.test(host.slice(pct + 1))) return false;
  return addr.includes(':') && parseIp(addr) !== null;
}

function canonicalIPv6(host: string): string {
  if (host.includes('%')) return host.toLowerCase(); // zone id: URL cannot parse it, keep as written
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

function parseDnsPort(entry: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new Error(`Invalid DNS server "${entry}": port "${text}" must be a number from 1 to 65535 (${DNS_EXAMPLES}).`);
  }
  return Number(text);
}

/** Parse one `dns.servers` entry: "host", "host:port", "[v6]:port", "[v6]" or a bare IPv6. Throws a clear Error. */
export function parseDnsServer(entry: string): DnsServerAddress {
  if (typeof entry !== 'string' || entry.trim() === '') {
    throw new Error(`Invalid DNS server ${JSON.stringify(entry)}: expected an IP address with an optional port (${DNS_EXAMPLES}).`);
  }
  if (entry !== entry.trim()) {
    throw new Error(`Invalid DNS server ${JSON.stringify(entry)}: remove the surrounding spaces.`);
  }
  let host: string;
  let port = 53;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1] ?? '';
    if (bracketed[2] !== undefined) port = parseDnsPort(entry, bracketed[2]);
    if (!isIPv6Text(host)) {
      throw new Error(`Invalid DNS server "${entry}": "${host}" inside brackets is not an IPv6 address (${DNS_EXAMPLES}).`);
    }
  } else if ((entry.match(/:/g) ?? []).length >= 2) {
    host = entry;
    if (!isIPv6Text(host)) {
      throw new Error(`Invalid DNS server "${entry}": not an IPv6 address; write an IPv6 server with a port as "[address]:port" (${DNS_EXAMPLES}).`);
    }
  } else {
    const colon = entry.indexOf(':');
    host = colon >= 0 ? entry.slice(0, colon) : entry;
    if (colon >= 0) port = parseDnsPort(entry, entry.slice(colon + 1));
    if (!isIPv4Text(host)) {
      throw new Error(
        `Invalid DNS server "${entry}": "${host}" is not an IP address; a DNS server must be given by address, not by name (${DNS_EXAMPLES}).`,
      );
    }
  }
  const unusable = unusableDnsAddress(host);
  if (unusable) throw new Error(`Invalid DNS server "${entry}": ${unusable} (${DNS_EXAMPLES}).`);
  if (isIPv6Text(host)) {
    const canonical = canonicalIPv6(host);
    return { host: canonical, port, family: 6, label: `[${canonical}]:${port}` };
  }
  return { host, port, family: 4, label: `${host}:${port}` };
}

/**
 * Why an address cannot be one DNS server to ask (null when it can): the unspecified address, a broadcast or
 * multicast address (a query there goes to no one, or to many), or an IPv6 link-local address without its interface
 * (%eth0: the system cannot tell which link).
 */
function unusableDnsAddress(host: string): string | null {
  const pct = host.indexOf('%');
  const ip = parseIp(pct >= 0 ? host.slice(0, pct) : host);
  if (!ip) return null;
  if (ip.family === 4) {
    if (ip.v4 === 0) return '0.0.0.0 is "any address", not a server; give the address of a DNS server';
    if (ip.v4 === 0xffffffff) return 'the broadcast address is not a server; give the address of a DNS server';
    if (ip.v4 >>> 28 === 0xe) return 'a multicast address (224.0.0.0/4) is not one server; give the address of a DNS server';
    return null;
  }
  const [w0, w1, w2, w3] = ip.v6;
  if (w0 === 0 && w1 === 0 && w2 === 0 && w3 === 0) return ':: is "any address", not a server; give the address of a DNS server';
  if (w0 >>> 24 === 0xff) return 'a multicast address (ff00::/8) is not one server; give the address of a DNS server';
  if (w0 >>> 22 === 0x3fa && pct < 0) return 'a link-local address needs its interface, e.g. "fe80::53%eth0"';
  // an IPv4-mapped address is the IPv4 address
  if (w0 === 0 && w1 === 0 && w2 === 0xffff) return unusableDnsAddress(`${w3 >>> 24}.${(w3 >>> 16) & 255}.${(w3 >>> 8) & 255}.${w3 & 255}`);
  return null;
}

const dnsServer = z.string().superRefine((v, ctx) => {
  try {
    parseDnsServer(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const positiveInt = (max = 1_000_000_000) => z.int().min(1).max(max);

const isoDate = z
  .string()
  .refine((s) => parseIsoInstant(s) !== null, {
    message: 'must be an ISO 8601 date and time with a time zone, e.g. 2026-12-01T09:00:00Z',
  });

/** The most public IPv4 addresses the groups in relay.allowGroups may hold together: a /8. */
export const MAX_RELAY_PUBLIC_V4 = 2 ** 24;
/** The most global unicast IPv6 addresses they may hold: a /16 of 2000::/3. */
export const MAX_RELAY_GLOBAL_V6 = 1n << 112n;

/**
 * The open-relay limit on the entries of the groups that may relay, all together: what they hold past it, in words
 * ("2,092,957,696 public IPv4 addresses, more than a /8 (16,777,216)"), or null within it. The config's check and the
 * console's Groups form (before an add) both ask this.
 */
export function relayCoverageExcess(specs: readonly AddressSpec[]): string | null {
  if (specs.length === 0) return null;
  const { v4, v6 } = publicCoverage(specs);
  if (v4 > MAX_RELAY_PUBLIC_V4) return `${v4.toLocaleString('en-US')} public IPv4 addresses, more than a /8 (${MAX_RELAY_PUBLIC_V4.toLocaleString('en-US')})`;
  if (v6 > MAX_RELAY_GLOBAL_V6) return 'more global IPv6 addresses than a /16';
  return null;
}

export const GroupEntry = z.strictObject({
  address: z.string().superRefine((v, ctx) => {
    const r = parseAddressSpec(v);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
  }),
  comment: z.string().max(500).nullable().optional(),
  expiresAt: isoDate.nullable().optional(),
  addedBy: z.string().max(200).nullable().optional(),
  addedAt: isoDate.nullable().optional(),
});
export type GroupEntry = z.infer<typeof GroupEntry>;

export const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/;
export const GROUP_NAME_RULE = 'group names are 1-64 letters, digits, space, "_", "." or "-", starting with a letter or digit';
const groupName = z.string().regex(GROUP_NAME, GROUP_NAME_RULE);

const LOCAL_DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;

export const DomainConfig = z.strictObject({
  deliverTo: hostPort('deliverTo', 25).describe('host:port of the internal mail server for this domain'),
  recipients: z
    .union([z.literal('*'), z.array(z.string().min(1).max(320))])
    .default([])
    .describe('known recipients: full addresses or local parts; "*" (or ["*"]) accepts any'),
});
export type DomainConfig = z.infer<typeof DomainConfig>;

const limit = <T extends z.ZodRawShape>(max: number, extra: T) =>
  z.strictObject({ mode: Mode.default('enforce'), max: positiveInt().default(max), ...extra });

/** An SMTP AUTH user name (a key of `users`), as `relay user set NAME` takes it. */
export const UserName = z.string().regex(/^[A-Za-z0-9._@+-]{1,128}$/, 'user names are 1-128 letters, digits or . _ @ + -');

export const ConfigSchema = z
  .strictObject({
    smtp: z
      .strictObject({
        listen: hostPort('smtp.listen').default('127.0.0.1:2525'),
        hostname: z
          .string()
          .regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a host name such as relay.example.com')
          .nullable()
          .default(null)
          .describe('name used in the greeting and Received headers; null = this machine\'s host name'),
        maxConnections: positiveInt(1_000_000).default(1000),
        greetingDelayMs: z.int().min(0).max(60_000).default(0),
        bareLineEndings: z.enum(['normalize', 'reject']).default('normalize'),
      })
      .prefault({}),
    manage: z.strictObject({ listen: hostPort('manage.listen').default('127.0.0.1:8465') }).prefault({}),
    tls: z
      .strictObject({ certFile: z.string().min(1).nullable().default(null), keyFile: z.string().min(1).nullable().default(null) })
      .prefault({}),
    dns: z
      .strictObject({
        servers: z.array(dnsServer).max(8).default([]).describe('empty = the system\'s resolvers'),
        timeoutMs: z.int().min(50).max(60_000).default(3000),
      })
      .prefault({}),
    domains: z.record(z.string(), DomainConfig).default({}),
    relay: z.strictObject({ allowGroups: z.array(groupName).default(['Trusted']) }).prefault({}),
    users: z
      .record(
        UserName,
        z.strictObject({ passwordHash: z.string().regex(/^scrypt\$/, 'must be a scrypt hash written by "relay user set"') }),
      )
      .default({}),
    groups: z.record(groupName, z.array(GroupEntry).max(100_000)).default({ Trusted: [] }),
    limits: z
      .strictObject({
        exemptGroups: z.array(groupName).default(['Trusted']),
        // 32 at least: a /32 is a whole ISP's allocation; a shorter prefix would put unrelated networks under one counter
        ipv6Prefix: z.int().min(32).max(128).default(64),
        messagesPerHour: limit(100, {}).prefault({}),
        concurrentConnections: limit(10, {}).prefault({}),
        unknownRecipients: limit(10, { blockMinutes: positiveInt(525_600).default(60) }).prefault({}),
        authFailures: limit(10, {
          windowMinutes: positiveInt(10_080).default(10),
          blockMinutes: positiveInt(525_600).default(15),
        }).prefault({}),
      })
      .prefault({}),
    checks: z
      .strictObject({
        senderDomain: z.strictObject({ mode: Mode.default('enforce') }).prefault({}),
        reverseDns: z.strictObject({ mode: Mode.default('enforce') }).prefault({}),
        maxRecipients: limit(100, {}).prefault({}),
        maxFailedCommands: limit(10, {}).prefault({}),
        maxMessageSize: z
          .strictObject({ mode: Mode.default('enforce'), maxBytes: positiveInt(2_147_483_647).default(26_214_400) })
          .prefault({}),
      })
      .prefault({}),
    delivery: z
      .strictObject({
        mode: z.enum(['mx', 'smarthost']).default('mx'),
        smarthost: z
          .strictObject({
            host: z.string().min(1).nullable().default(null),
            port: z.int().min(1).max(65535).default(587),
            user: z.string().min(1).nullable().default(null),
            password: z.string().min(1).nullable().default(null),
          })
          .prefault({}),
        tls: z.enum(['opportunistic', 'required', 'off']).default('opportunistic'),
        maxQueueHours: positiveInt(24 * 365).default(120),
      })
      .prefault({}),
    events: z.strictObject({ retentionDays: positiveInt(3650).default(7) }).prefault({}),
  })
  .superRefine((c, ctx) => {
    for (const [i, g] of c.relay.allowGroups.entries()) {
      if (!Object.hasOwn(c.groups, g)) ctx.addIssue({ code: 'custom', path: ['relay', 'allowGroups', i], message: `names group "${g}", which is not defined in "groups"` });
    }
    // no open relay: a group that may relay holds no entry that is every address of the internet (0.0.0.0/0, ::/0).
    // Narrower networks are an admin's call (the console asks before it adds a wide one); this one is never right:
    // a host that must relay for everyone should make its clients log in (SMTP AUTH) instead
    const relaying = [...new Set(c.relay.allowGroups)];
    const specs: AddressSpec[] = [];
    let everything = false;
    for (const g of relaying) {
      for (const [i, e] of (Object.hasOwn(c.groups, g) ? c.groups[g]! : []).entries()) {
        const r = parseAddressSpec(e.address);
        if (!r.ok) continue;
        specs.push(r.spec);
        if (coversEverything(r.spec)) {
          everything = true;
          ctx.addIssue({
            code: 'custom',
            path: ['groups', g, i, 'address'],
            message: `${r.spec.text} is every ${r.spec.family === 4 ? 'IPv4' : 'IPv6'} address, and "${g}" is in relay.allowGroups: anyone on the internet could relay mail through this server (an open relay). Let clients log in (SMTP AUTH) instead, or name their networks`,
          });
        }
      }
    }
    // ...nor, all together, a large part of it (0.0.0.0/1 + 128.0.0.0/1, 2000::/3, one half in each of two groups):
    // more public IPv4 than a /8, or more global IPv6 than a /16. No organisation's own networks are that large
    const tooMuch = everything ? null : relayCoverageExcess(specs);
    if (tooMuch) {
      const groups = relaying.map((g) => `"${g}"`).join(', ');
      ctx.addIssue({
        code: 'custom',
        path: ['relay', 'allowGroups'],
        message: `the groups that may relay (${groups}) hold ${tooMuch}: a large part of the internet; anyone in it could relay mail through this server (an open relay). Let clients log in (SMTP AUTH) instead, or name their own networks`,
      });
    }
    // one entry per address in a group: two (a permanent one and one that expires, say) made which one applies a matter
    // of order, and the change record (by address) could not tell them apart: removing the permanent one read as no change
    for (const [g, entries] of Object.entries(c.groups)) {
      const seen = new Map<string, { index: number; written: string }>();
      for (const [j, e] of entries.entries()) {
        const r = parseAddressSpec(e.address);
        if (!r.ok) continue;
        const first = seen.get(r.spec.text);
        if (first === undefined) seen.set(r.spec.text, { index: j, written: e.address.trim() });
        else {
          // each as written in the file too, when that is not the canonical address ("192.0.2.1/32")
          const as = (w: string) => (w === r.spec.text ? '' : ` ("${w}")`);
          ctx.addIssue({
            code: 'custom',
            path: ['groups', g, j, 'address'],
            message: `${r.spec.text}${as(e.address.trim())} is entry ${first.index}${as(first.written)} of group "${g}" already: one entry per address (keep one, with the comment and expiry you want)`,
          });
        }
      }
    }
    for (const [i, g] of c.limits.exemptGroups.entries()) {
      if (!Object.hasOwn(c.groups, g)) ctx.addIssue({ code: 'custom', path: ['limits', 'exemptGroups', i], message: `names group "${g}", which is not defined in "groups"` });
    }
    for (const d of Object.keys(c.domains)) {
      if (!LOCAL_DOMAIN.test(d)) ctx.addIssue({ code: 'custom', path: ['domains', d], message: `"${d}" is not a domain name (lower-case, no trailing dot, e.g. example.com)` });
    }
    for (const [d, dc] of Object.entries(c.domains)) {
      if (Array.isArray(dc.recipients)) {
        for (const [i, r] of dc.recipients.entries()) {
          if (r !== '*' && (/\s/.test(r) || r.split('@').length > 2 || r.endsWith('@') || r.startsWith('@'))) {
            ctx.addIssue({ code: 'custom', path: ['domains', d, 'recipients', i], message: `"${r}" is not a local part or an address` });
          } else if (r.includes('@') && r.split('@')[1]!.toLowerCase() !== d) {
            ctx.addIssue({ code: 'custom', path: ['domains', d, 'recipients', i], message: `"${r}" is not in domain ${d}` });
          }
        }
      }
    }
    if (c.delivery.mode === 'smarthost' && !c.delivery.smarthost.host) {
      ctx.addIssue({ code: 'custom', path: ['delivery', 'smarthost', 'host'], message: 'is required when delivery.mode is "smarthost"' });
    }
    if (c.delivery.smarthost.user && !c.delivery.smarthost.password) {
      ctx.addIssue({ code: 'custom', path: ['delivery', 'smarthost', 'password'], message: 'is required when delivery.smarthost.user is set' });
    }
    if (c.delivery.smarthost.password && !c.delivery.smarthost.user) {
      // a password is sent only with a user name: without one it would sit in the config doing nothing
      ctx.addIssue({ code: 'custom', path: ['delivery', 'smarthost', 'user'], message: 'is required when delivery.smarthost.password is set (the password is sent with it)' });
    }
    if ((c.tls.certFile === null) !== (c.tls.keyFile === null)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'set both certFile and keyFile, or neither (then the relay uses its own self-signed certificate)' });
    }
  });

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** Every default, written out. */
export function defaultConfig(): Config {
  return ConfigSchema.parse({});
}

export interface ConfigIssue {
  key: string;
  message: string;
}

/** The part of `root` at `path` (through defaults, optionals, records and lists), or undefined. */
function schemaAt(root: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; shape?: Record<string, z.ZodType>; valueType?: z.ZodType; element?: z.ZodType };
  const def = (x: z.ZodType) => (x as unknown as { _zod: { def: Def } })._zod.def;
  const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'catch', 'readonly', 'nonoptional']);
  let s: z.ZodType | undefined = root;
  for (const k of path) {
    for (let d = def(s); ; d = def(s)) {
      if (d.innerType && WRAPPERS.has(d.type)) s = d.innerType;
      else if (d.type === 'pipe' && d.in) s = d.in;
      else break;
    }
    const d = def(s);
    s = d.type === 'object' ? d.shape?.[String(k)] : d.type === 'record' ? d.valueType : d.type === 'array' ? d.element : undefined;
    if (!s) return undefined;
  }
  return s;
}

/**
 * A wrong type at a key that may also be null (smtp.hostname, tls.certFile, a trusted entry's comment): "must be text
 * in quotes or null; it is 5". The error map sees the inner schema only, not the nullable wrapper around it.
 */
export function withNullWording(root: z.ZodType, iss: { code: string; path: readonly PropertyKey[]; message: string }): string {
  if (iss.code !== 'invalid_type' || !/^must be .*; it is /.test(iss.message) || iss.path.length === 0) return iss.message;
  return schemaAt(root, iss.path)?.safeParse(null).success === true ? iss.message.replace(/; it is /, ' or null; it is ') : iss.message;
}

/** Turn zod issues into "key: what is wrong" lines that name the config key as it appears in config.json. */
export function describeIssues(error: z.ZodError): ConfigIssue[] {
  // zod 4 still runs a length check (.max) on a value of the wrong type and reports it as if the value were a
  // string ("servers": "127.0.0.1:53" -> "expected string to have <=8 characters"); the type error says it all
  const wrongType = new Set(error.issues.filter((i) => i.code === 'invalid_type').map((i) => i.path.map(String).join('.')));
  // z.int() has a bound of its own (the safe integers) beside the schema's: a value past both would get two "must be
  // at most" lines; only the tighter bound is the key's
  const bound = (i: z.core.$ZodIssue) => (i.code === 'too_big' ? Number(i.maximum) : i.code === 'too_small' ? -Number(i.minimum) : NaN);
  const tightest = new Map<string, number>();
  for (const i of error.issues) {
    const b = bound(i);
    const k = `${i.code} ${i.path.map(String).join('.')}`;
    if (!Number.isNaN(b) && !(b >= (tightest.get(k) ?? Infinity))) tightest.set(k, b);
  }
  const relevant = error.issues.filter(
    (i) =>
      (i.code === 'invalid_type' || !wrongType.has(i.path.map(String).join('.'))) &&
      (Number.isNaN(bound(i)) || bound(i) === tightest.get(`${i.code} ${i.path.map(String).join('.')}`)),
  );
  return relevant.map((iss) => {
    const key = iss.path.map(String).join('.') || '(top level)';
    const message = withNullWording(ConfigSchema, iss);
    if (iss.code === 'unrecognized_keys') {
      const keys = (iss as { keys: string[] }).keys;
      return {
        key: [key === '(top level)' ? '' : key + '.', keys.join(', ')].join('') || key,
        message: `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}${key === '(top level)' ? '' : ` in "${key}"`}; check the spelling against the README`,
      };
    }
    return { key, message };
  });
}

/**
 * A value as an admin would read it in a message: `"many"`, `-1`, `null`, `a list [...]`, `an object {...}`; a secret
 * only by its kind (`text`, `a number`), never its value.
 */
function shown(v: unknown, secret = false): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list [...]';
  if (typeof v === 'object') return 'an object {...}';
  if (secret) return typeof v === 'string' ? 'text' : typeof v === 'number' ? 'a number' : typeof v;
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v);
  return String(v);
}

const TYPE_NAMES: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'text in quotes',
  boolean: 'true or false',
  array: 'a list [...]',
  object: 'an object {...}',
  record: 'an object {...}',
  null: 'null',
};

/**
 * Keys whose values are never repeated: not in an error message (messages go to logs and to the audit log viewers
 * read), not in the audit log's params (relay/store/audit.ts).
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['password', 'passwordHash', 'token', 'secret']);

/**
 * The config's wording of zod's built-in errors: what the key must be, and what it is now, in the words of
 * config.json ("must be a whole number; it is 1.5") rather than zod's ("Invalid input: expected int, received
 * number"). Messages the schema gives itself (refinements, custom checks) are kept as they are.
 */
export function configErrorMap(iss: z.core.$ZodRawIssue): string | undefined {
  const last = iss.path?.[iss.path.length - 1];
  const secret = typeof last === 'string' && SECRET_KEYS.has(last);
  const is = `; it is ${shown(iss.input, secret)}`;
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'is required';
      const want = TYPE_NAMES[iss.expected] ?? iss.expected;
      return `must be ${want}${is}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters long${is}`;
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at least ${min} ${min === 1 ? 'entry' : 'entries'}`;
      return iss.inclusive === false ? `must be more than ${min}${is}` : `must be at least ${min}${is}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'string') return `must be at most ${max} characters long (it has ${String(iss.input ?? '').length})`;
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at most ${max} ${max === 1 ? 'entry' : 'entries'} (it has ${Array.isArray(iss.input) ? iss.input.length : '?'})`;
      return iss.inclusive === false ? `must be less than ${max}${is}` : `must be at most ${max}${is}`;
    }
    case 'invalid_value': {
      const vals = iss.values.map((v) => JSON.stringify(v));
      const list = vals.length > 1 ? `${vals.slice(0, -1).join(', ')} or ${vals.at(-1)}` : vals[0];
      return vals.length > 1 ? `must be one of ${list}${is}` : `must be ${list}${is}`;
    }
    case 'not_multiple_of':
      return `must be a multiple of ${String(iss.divisor)}${is}`;
    case 'invalid_key': {
      // a record's key (a user, group or domain name): what the key's own schema says of it
      const inner = iss.issues[0]?.message;
      return inner ? `${shown(iss.input)} is not allowed as a name here: ${inner}` : undefined;
    }
    case 'invalid_union': {
      // "*" or a list: name what each option wants, when each wants the whole value (not something inside it)
      const wants: string[] = [];
      for (const option of iss.errors) {
        const first = option[0];
        if (!first || first.path.length > 0) return undefined;
        if (first.code === 'invalid_type') wants.push(TYPE_NAMES[first.expected] ?? first.expected);
        else if (first.code === 'invalid_value') wants.push(...first.values.map((v) => JSON.stringify(v)));
        else return undefined;
      }
      if (wants.length < 2) return undefined;
      return `must be ${wants.slice(0, -1).join(', ')} or ${wants.at(-1)}${is}`;
    }
    default:
      return undefined;
  }
}

export type ParseConfigResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

export function parseConfig(input: unknown): ParseConfigResult {
  const r = ConfigSchema.safeParse(input, { error: configErrorMap });
  return r.success ? { ok: true, config: r.data } : { ok: false, issues: describeIssues(r.error) };
}

export function formatIssues(issues: ConfigIssue[]): string {
  return issues.map((i) => `  ${i.key}: ${i.message}`).join('\n');
}
