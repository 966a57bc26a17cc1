/**
 * shared/config.ts (the zod schema: defaults, refusals naming the key) and relay/store/config-store.ts
 * (first start, atomic writes, update/modify, SIGHUP reload keeping the last good config).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig, formatIssues, parseConfig, type ConfigIssue } from '../shared/config.ts';
import { ConfigError, ConfigStore, ConflictError } from '../relay/store/config-store.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-config-'));
  dirs.push(d);
  return d;
}

function issues(input: unknown): ConfigIssue[] {
  const r = parseConfig(input);
  if (r.ok) throw new Error('expected the config to be refused');
  return r.issues;
}
const keys = (input: unknown) => issues(input).map((i) => i.key);

describe('parseConfig', () => {
  it('an empty object is every default, as SPEC section 1 lists them', () => {
    const r = parseConfig({});
    expect(r.ok).toBe(true);
    const c = defaultConfig();
    expect(r.ok && r.config).toEqual(c);
    expect(c.smtp).toEqual({ listen: '127.0.0.1:2525', hostname: null, maxConnections: 1000, greetingDelayMs: 0, bareLineEndings: 'normalize' });
    expect(c.manage.listen).toBe('127.0.0.1:8465');
    expect(c.relay.allowGroups).toEqual(['Trusted']);
    expect(c.groups).toEqual({ Trusted: [] });
    expect(c.limits).toEqual({
      exemptGroups: ['Trusted'],
      ipv6Prefix: 64,
      messagesPerHour: { mode: 'enforce', max: 100 },
      concurrentConnections: { mode: 'enforce', max: 10 },
      unknownRecipients: { mode: 'enforce', max: 10, blockMinutes: 60 },
      authFailures: { mode: 'enforce', max: 10, windowMinutes: 10, blockMinutes: 15 },
    });
    expect(c.checks).toEqual({
      senderDomain: { mode: 'enforce' },
      reverseDns: { mode: 'enforce' },
      maxRecipients: { mode: 'enforce', max: 100 },
      maxFailedCommands: { mode: 'enforce', max: 10 },
      maxMessageSize: { mode: 'enforce', maxBytes: 26_214_400 },
    });
    expect(c.delivery).toMatchObject({ mode: 'mx', tls: 'opportunistic', maxQueueHours: 120 });
    expect(c.events.retentionDays).toBe(7);
    // the defaults written out parse back to themselves
    expect(parseConfig(JSON.parse(JSON.stringify(c)))).toEqual({ ok: true, config: c });
  });

  it('accepts the SPEC example shape', () => {
    const r = parseConfig({
      smtp: { listen: '127.0.0.1:2525', hostname: 'relay.example.com', maxConnections: 1000, greetingDelayMs: 0, bareLineEndings: 'normalize' },
      dns: { servers: ['127.0.0.1:53'], timeoutMs: 3000 },
      domains: { 'example.com': { deliverTo: '10.0.0.5:25', recipients: ['alice', 'bob@example.com'] } },
      relay: { allowGroups: ['Trusted'] },
      groups: {
        Trusted: [
          { address: '192.0.2.0/24', comment: 'office', expiresAt: null },
          { address: '198.51.100.10-198.51.100.20' },
          { address: '2001:db8::/48', expiresAt: '2026-12-01T09:00:00Z' },
        ],
      },
      limits: { exemptGroups: ['Trusted'], unknownRecipients: { mode: 'monitor', max: 10, blockMinutes: 60 } },
      checks: { maxMessageSize: { mode: 'off', maxBytes: 1000 } },
    });
    expect(r.ok).toBe(true);
  });

  it.each([
    ['300.1.1.1'],
    ['192.0.2.0/33'],
    ['192.0.2.20-192.0.2.10'],
    ['office'],
    ['2001:db8::/129'],
    [''],
  ])('refuses the group entry address %j, naming the entry', (address) => {
    const is = issues({ groups: { Trusted: [{ address: '192.0.2.1' }, { address }] } });
    expect(is.map((i) => i.key)).toEqual(['groups.Trusted.1.address']);
    expect(is[0]!.message.length).toBeGreaterThan(5);
  });

  it('refuses an expiresAt without a time zone, naming it', () => {
    expect(keys({ groups: { Trusted: [{ address: '192.0.2.1', expiresAt: '2026-12-01 09:00' }] } })).toEqual(['groups.Trusted.0.expiresAt']);
  });

  it('refuses unknown keys by name, at the top and nested', () => {
    const top = issues({ smpt: {} });
    expect(top).toHaveLength(1);
    expect(top[0]!.key).toBe('smpt');
    expect(top[0]!.message).toContain('"smpt"');
    const nested = issues({ limits: { messagesPerHour: { mode: 'enforce', maxx: 5 } } });
    expect(nested.map((i) => i.key)).toEqual(['limits.messagesPerHour.maxx']);
    expect(keys({ groups: { Trusted: [{ address: '192.0.2.1', note: 'x' }] } })).toEqual(['groups.Trusted.0.note']);
    expect(keys({ checks: { reverseDNS: { mode: 'off' } } })).toEqual(['checks.reverseDNS']);
  });

  it('refuses wrong types and values, naming the key', () => {
    expect(keys({ limits: { messagesPerHour: { max: '100' } } })).toEqual(['limits.messagesPerHour.max']);
    expect(keys({ limits: { messagesPerHour: { max: 0 } } })).toEqual(['limits.messagesPerHour.max']);
    expect(keys({ limits: { messagesPerHour: { max: 1.5 } } })).toEqual(['limits.messagesPerHour.max']);
    expect(keys({ checks: { senderDomain: { mode: 'enforced' } } })).toEqual(['checks.senderDomain.mode']);
    expect(keys({ smtp: { bareLineEndings: 'strip' } })).toEqual(['smtp.bareLineEndings']);
    expect(keys({ smtp: { listen: 'localhost' } })).toEqual(['smtp.listen']);
    expect(keys({ dns: { servers: '127.0.0.1' } })).toEqual(['dns.servers']);
    expect(keys({ groups: { Trusted: { address: '192.0.2.1' } } })).toEqual(['groups.Trusted']);
    expect(keys({ smtp: null })).toEqual(['smtp']);
    expect(keys([])).toEqual(['(top level)']);
  });

  it('a key that appears twice in one object is refused, naming both lines (JSON would drop the first without a word)', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'config.json');
    // the README's quick-start lines pasted at the top of a config.json that has "domains" further down
    fs.writeFileSync(
      file,
      '{\n"domains": { "example.com": { "deliverTo": "127.0.0.1:2626", "recipients": ["alice"] } },\n"smtp": { "maxConnections": 5 },\n"domains": {},\n' +
        '"groups": { "Trusted": [ { "address": "192.0.2.1", "comment": "a", "comment": "b" } ] }\n}\n',
    );
    let err: ConfigError | null = null;
    try {
      ConfigStore.open(dir);
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.issues).toEqual([
      { key: 'domains', message: 'appears twice in the same object (lines 2 and 4); JSON keeps only the last one and would drop the other without a word: merge them into one' },
      { key: 'groups.Trusted.0.comment', message: expect.stringMatching(/^appears twice in the same object \(lines 5 and 5\)/) },
    ]);
    // the same name in different objects is no duplicate, nor is a key's text inside a string value
    fs.writeFileSync(
      file,
      JSON.stringify({ groups: { Trusted: [{ address: '192.0.2.1', comment: 'x", "comment": "y' }] }, limits: { messagesPerHour: { max: 5 }, concurrentConnections: { max: 5 } } }),
    );
    expect(ConfigStore.open(dir).store.current.limits.concurrentConnections.max).toBe(5);
  });

  it('a config.json that starts with a byte order mark (as some Windows editors write it) is read', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'config.json'), '\ufeff' + JSON.stringify({ smtp: { maxConnections: 7 } }));
    expect(ConfigStore.open(dir).store.current.smtp.maxConnections).toBe(7);
  });

  it('never repeats a secret in an error; names what a record key, a union and a record want', () => {
    const said = (input: unknown) => issues(input).map((i) => `${i.key}: ${i.message}`);
    expect(said({ delivery: { smarthost: { host: 'smtp.example', user: 'relay', password: 987654 } } })).toEqual([
      'delivery.smarthost.password: must be text in quotes or null; it is a number',
    ]);
    expect(said({ users: { sales: { passwordHash: 12345 } } })).toEqual(['users.sales.passwordHash: must be text in quotes; it is a number']);
    expect(said({ groups: [] })).toEqual(['groups: must be an object {...}; it is a list [...]']);
    expect(said({ users: { 'j doe': { passwordHash: 'scrypt$x' } } })).toEqual([
      'users.j doe: "j doe" is not allowed as a name here: user names are 1-128 letters, digits or . _ @ + -',
    ]);
    expect(said({ domains: { 'a.example': { deliverTo: '10.0.0.5', recipients: 5 } } })).toEqual([
      'domains.a.example.recipients: must be "*" or a list [...]; it is 5',
    ]);
  });

  it('a smarthost password needs a user, as a user needs a password', () => {
    expect(issues({ delivery: { smarthost: { host: 'smtp.example', password: 'Secr3t-Passw0rd!' } } }).map((i) => `${i.key}: ${i.message}`)).toEqual([
      'delivery.smarthost.user: is required when delivery.smarthost.password is set (the password is sent with it)',
    ]);
    expect(issues({ delivery: { smarthost: { host: 'smtp.example', user: 'relay' } } }).map((i) => i.key)).toEqual(['delivery.smarthost.password']);
    expect(parseConfig({ delivery: { smarthost: { host: 'smtp.example', user: 'relay', password: 'Secr3t-Passw0rd!' } } }).ok).toBe(true);
  });

  it('says what a key must be and what it is, in the words of config.json', () => {
    const said = (input: unknown) => issues(input).map((i) => `${i.key}: ${i.message}`);
    expect(said({ limits: { messagesPerHour: { max: 'many' } } })).toEqual(['limits.messagesPerHour.max: must be a number; it is "many"']);
    expect(said({ limits: { messagesPerHour: { max: 0 } } })).toEqual(['limits.messagesPerHour.max: must be at least 1; it is 0']);
    expect(said({ limits: { messagesPerHour: { max: 1.5 } } })).toEqual(['limits.messagesPerHour.max: must be a whole number; it is 1.5']);
    expect(said({ checks: { senderDomain: { mode: 'enforced' } } })).toEqual([
      'checks.senderDomain.mode: must be one of "enforce", "monitor" or "off"; it is "enforced"',
    ]);
    expect(said({ limits: { ipv6Prefix: 200 } })).toEqual(['limits.ipv6Prefix: must be at most 128; it is 200']);
    // a prefix shorter than an ISP's /32 would count unrelated networks as one client
    expect(said({ limits: { ipv6Prefix: 16 } })).toEqual(['limits.ipv6Prefix: must be at least 32; it is 16']);
    // past the safe integers too (z.int()'s own bound): one line, the key's own bound, not two
    expect(said({ limits: { messagesPerHour: { max: 1e300 } } })).toEqual(['limits.messagesPerHour.max: must be at most 1000000000; it is 1e+300']);
    expect(said({ limits: { messagesPerHour: { max: -1e300 } } })).toEqual(['limits.messagesPerHour.max: must be at least 1; it is -1e+300']);
    expect(said({ smtp: null })).toEqual(['smtp: must be an object {...}; it is null']);
    expect(said({ smtp: { hostname: 5 } })).toEqual(['smtp.hostname: must be text in quotes or null; it is 5']);
    expect(said({ relay: { allowGroups: 'Office' } })).toEqual(['relay.allowGroups: must be a list [...]; it is "Office"']);
    expect(said([])).toEqual(['(top level): must be an object {...}; it is a list [...]']);
    // what the schema words itself is left as it is
    expect(said({ relay: { allowGroups: ['Office'] } })).toEqual(['relay.allowGroups.0: names group "Office", which is not defined in "groups"']);
  });

  it('no open relay: every address (0.0.0.0/0, ::/0, the whole range) is refused in a group that may relay, and only there', () => {
    for (const address of ['0.0.0.0/0', '::/0', '0.0.0.0-255.255.255.255']) {
      const got = issues({ groups: { Trusted: [{ address: '192.0.2.0/24' }, { address }] } });
      expect(got.map((i) => i.key)).toEqual(['groups.Trusted.1.address']);
      expect(got[0]!.message).toMatch(/is every IPv[46] address, and "Trusted" is in relay\.allowGroups: anyone on the internet could relay mail through this server \(an open relay\)/);
    }
    // naming such a group in relay.allowGroups is refused the same way
    expect(keys({ groups: { Trusted: [], World: [{ address: '0.0.0.0/0' }] }, relay: { allowGroups: ['World'] } })).toEqual(['groups.World.0.address']);
    // exempt from limits only: the admin's call
    expect(parseConfig({ groups: { Trusted: [], World: [{ address: '0.0.0.0/0' }] }, limits: { exemptGroups: ['World'] } }).ok).toBe(true);
  });

  it('no open relay in pieces: the groups that may relay hold at most a /8 of public IPv4 and a /16 of global IPv6, together', () => {
    const said = (groups: Record<string, { address: string }[]>, allowGroups = ['Trusted']) => {
      const r = parseConfig({ groups: { Trusted: [], ...groups }, relay: { allowGroups } });
      return r.ok ? [] : r.issues.map((i) => `${i.key}: ${i.message}`);
    };
    const halves = said({ Trusted: [{ address: '0.0.0.0/1' }, { address: '128.0.0.0/1' }] });
    expect(halves).toEqual([
      'relay.allowGroups: the groups that may relay ("Trusted") hold 3,702,258,432 public IPv4 addresses, more than a /8 (16,777,216): a large part of the internet; anyone in it could relay mail through this server (an open relay). Let clients log in (SMTP AUTH) instead, or name their own networks',
    ]);
    expect(said({ Trusted: [{ address: '1.0.0.0-255.255.255.255' }] })).toHaveLength(1);
    expect(said({ Trusted: [{ address: '0.0.0.0/1' }], Partners: [{ address: '128.0.0.0/1' }] }, ['Trusted', 'Partners'])[0]).toMatch(/^relay\.allowGroups: the groups that may relay \("Trusted", "Partners"\)/);
    expect(said({ Trusted: [{ address: '18.0.0.0/7' }] })[0]).toMatch(/hold 33,554,432 public IPv4 addresses/);
    expect(said({ Trusted: [{ address: '2000::/3' }] })[0]).toMatch(/hold more global IPv6 addresses than a \/16/);
    // private, loopback and documentation networks are not the internet; a /8 and a /16 of IPv6 are the most allowed
    expect(said({ Trusted: [{ address: '10.0.0.0/8' }, { address: '172.16.0.0/12' }, { address: '192.168.0.0/16' }, { address: '127.0.0.0/8' }, { address: '18.0.0.0/8' }] })).toEqual([]);
    expect(said({ Trusted: [{ address: '18.0.0.0/8' }, { address: '18.0.0.0/9' }, { address: '2a00::/16' }] })).toEqual([]);
    // the same networks in a group that does not relay: not this rule's business
    expect(said({ Wide: [{ address: '0.0.0.0/1' }, { address: '128.0.0.0/1' }] })).toEqual([]);
  });

  it('refuses references to groups that do not exist, and bad domains', () => {
    expect(keys({ relay: { allowGroups: ['Office'] } })).toEqual(['relay.allowGroups.0']);
    expect(keys({ limits: { exemptGroups: ['Trusted', 'Nope'] } })).toEqual(['limits.exemptGroups.1']);
    expect(keys({ domains: { 'Example.COM': { deliverTo: '10.0.0.5:25' } } })).toEqual(['domains.Example.COM']);
    expect(keys({ domains: { 'example.com': { deliverTo: '10.0.0.5:25', recipients: ['bob@other.example'] } } })).toEqual([
      'domains.example.com.recipients.0',
    ]);
  });

  it('formatIssues puts one "key: message" per line', () => {
    const text = formatIssues(issues({ smtp: { maxConnections: -1 }, limits: { ipv6Prefix: 200 } }));
    expect(text.split('\n')).toHaveLength(2);
    expect(text).toMatch(/^ {2}smtp\.maxConnections: .+\n {2}limits\.ipv6Prefix: .+$/);
  });
});

describe('ConfigStore', () => {
  it('first start writes config.json with every default, mode 0600; a second open reads it', () => {
    const dir = tmpDir();
    const { store, created } = ConfigStore.open(dir);
    expect(created).toBe(true);
    const file = path.join(dir, 'config.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(defaultConfig());
    expect(store.current).toEqual(defaultConfig());
    expect(Object.isFrozen(store.current.limits.messagesPerHour)).toBe(true);
    const again = ConfigStore.open(dir);
    expect(again.created).toBe(false);
    expect(again.store.current).toEqual(defaultConfig());
  });

  it('an invalid config.json is refused at open with a ConfigError naming the file and key', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ limits: { messagesPerHour: { max: 'many' } } }));
    expect(() => ConfigStore.open(dir)).toThrow(ConfigError);
    try {
      ConfigStore.open(dir);
    } catch (err) {
      expect((err as ConfigError).message).toContain(path.join(dir, 'config.json'));
      expect((err as ConfigError).message).toContain('limits.messagesPerHour.max');
      expect((err as ConfigError).issues.map((i) => i.key)).toEqual(['limits.messagesPerHour.max']);
    }
    fs.writeFileSync(path.join(dir, 'config.json'), '{ "smtp": ');
    expect(() => ConfigStore.open(dir)).toThrow(/is not valid JSON/);
  });

  it('a JSON syntax error is located by line and column, with the line quoted and the column marked', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'config.json');
    const messageOf = (text: string) => {
      fs.writeFileSync(file, text);
      try {
        ConfigStore.open(dir);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('opened');
    };
    // a missing comma at the end of line 3: the error is where the next key starts
    expect(messageOf('{\n  "smtp": {\n    "port": 2525\n    "hostname": "mx"\n  }\n}\n')).toBe(
      `${file} is not valid JSON: line 4, column 5: Expected ',' or '}' after property value: a comma is missing at the end of line 3\n      "hostname": "mx"\n      ^`,
    );
    // a trailing comma (Windows line ends: the column does not count the CR)
    expect(messageOf('{\r\n  "smtp": {},\r\n}\r\n')).toBe(`${file} is not valid JSON: line 3, column 1: Expected double-quoted property name: a comma before a closing } is not allowed in JSON; remove the one at the end of line 2\n  }\n  ^`);
    expect(messageOf('')).toBe(`${file} is not valid JSON: the file is empty`);
    // errors V8 gives no position for, and one after a complete value
    expect(messageOf('{"smtp": {"port": yes}}')).toBe(`${file} is not valid JSON: line 1, column 19: Unexpected token 'y': text in JSON is written in double quotes\n  {"smtp": {"port": yes}}\n                    ^`);
    expect(messageOf('{\n  "relay": {"localDomains": ["a.example",]}\n}')).toMatch(/: line 2, column 42: Unexpected token '\]': a comma before a closing \] is not allowed in JSON; remove the one at the end of line 2\n/);
    // the other slips people make by hand: a comment, single quotes
    expect(messageOf('{\n  // the relay\n  "smtp": {}\n}')).toMatch(/: line 2, column 3: Expected property name or '}': JSON has no comments; remove it/);
    expect(messageOf("{\n  'smtp': {}\n}")).toMatch(/: line 2, column 3: Expected property name or '}': JSON takes double quotes \("..."\) around keys and text\n/);
    expect(messageOf('{"smtp": {}}}')).toMatch(/: line 1, column 13: Unexpected non-whitespace character after JSON\n/);
    expect(messageOf('{ "smtp": {\n')).toMatch(/: line 2, column 1: /);
    expect(messageOf('{ "smtp": {}')).toMatch(/: line 1, column 13: the file ends before the JSON does/);
    // tabs: the caret line keeps them, so it lines up however wide they are drawn
    expect(messageOf('{\n\t"smtp": {\n\t\t"maxConnections": 5\n\t\t"hostname": "mx"\n\t}\n}')).toBe(
      `${file} is not valid JSON: line 4, column 3: Expected ',' or '}' after property value: a comma is missing at the end of line 3\n  \t\t"hostname": "mx"\n  \t\t^`,
    );
    // a character that does not show (a no-break space pasted from a web page) is named, and drawn as a dot
    expect(messageOf('{"smtp": {"maxConnections":\u00a05}}')).toBe(
      `${file} is not valid JSON: line 1, column 28: Unexpected token 'U+00A0'\n  {"smtp": {"maxConnections":\u00b75}}\n                             ^`,
    );
    // a CR where V8 stops is named, not written raw (it would send the terminal's cursor back over the message)
    expect(messageOf('{\r\n  "smtp": tru\r\n}')).toContain(": Unexpected token 'U+000D'\n");
    // one long line: the quote is cut around the column, and the caret still points at it
    const long = `{"relay":{"localDomains":[${Array.from({ length: 40 }, (_, i) => `"d${i}.example"`).join(',')},]}}`;
    const m = messageOf(long);
    const at = long.indexOf(',]') + 2;
    expect(m).toContain(`line 1, column ${at}: `);
    const [, quoted, caret] = m.split('\n');
    expect(quoted!.length).toBeLessThan(100);
    expect(quoted![caret!.indexOf('^')]).toBe(']');
  });

  it('update/modify validate, write atomically and notify; an invalid change leaves config and file alone', () => {
    const dir = tmpDir();
    const { store } = ConfigStore.open(dir);
    const file = path.join(dir, 'config.json');
    const seen: number[] = [];
    store.onChange((c) => seen.push(c.config.limits.messagesPerHour.max));
    const rev = store.revision;
    store.modify((d) => void (d.limits.messagesPerHour.max = 5), { by: 'test', source: 'test' });
    expect(store.current.limits.messagesPerHour.max).toBe(5);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).limits.messagesPerHour.max).toBe(5);
    expect(store.revision).toBe(rev + 1);
    expect(seen).toEqual([5]);
    const before = fs.readFileSync(file, 'utf8');
    expect(() => store.modify((d) => void (d.groups['Trusted'] = [{ address: '10.0.0.0/99' }]), { by: 'test', source: 'test' })).toThrow(
      /groups\.Trusted\.0\.address/,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
    expect(store.current.groups['Trusted']).toEqual([]);
    expect(store.revision).toBe(rev + 1);
    expect(seen).toEqual([5]);
    // no temp file is left behind by the atomic writes
    expect(fs.readdirSync(dir)).toEqual(['config.json']);
    // a stale base revision is a conflict
    expect(() => store.modify(() => {}, { by: 'test', source: 'test', baseRevision: rev })).toThrow(ConflictError);
  });

  it('reload() applies a good edit, and with an invalid file keeps the last good config', () => {
    const dir = tmpDir();
    const { store } = ConfigStore.open(dir);
    const file = path.join(dir, 'config.json');
    expect(store.reload()).toBeNull(); // no change
    const good = { ...defaultConfig(), limits: { ...defaultConfig().limits, messagesPerHour: { mode: 'monitor', max: 7 } } };
    fs.writeFileSync(file, JSON.stringify(good));
    const info = store.reload();
    expect(info?.source).toBe('SIGHUP');
    expect(store.current.limits.messagesPerHour).toEqual({ mode: 'monitor', max: 7 });
    const rev = store.revision;

    fs.writeFileSync(file, JSON.stringify({ ...good, smtp: { ...good.smtp, greetingDelayMs: 'slow' } }));
    expect(() => store.reload()).toThrow(/smtp\.greetingDelayMs/);
    expect(store.current.limits.messagesPerHour).toEqual({ mode: 'monitor', max: 7 });
    expect(store.current.smtp.greetingDelayMs).toBe(0);
    expect(store.revision).toBe(rev);

    fs.writeFileSync(file, '{ not json');
    expect(() => store.reload()).toThrow(ConfigError);
    expect(store.revision).toBe(rev);
    fs.rmSync(file);
    expect(() => store.reload()).toThrow(/cannot read/);
    expect(store.current.limits.messagesPerHour.max).toBe(7);
  });
});
