/**
 * dns.servers entries are checked by the config schema with the resolver's own parser, so an entry the resolver would
 * refuse (a host name, a bad port, an IPv6 address with a port but no brackets) is refused wherever a config is
 * checked: at start, on SIGHUP and by config.update, naming dns.servers.N, and the last good config stays.
 * Regression (failed before the fix): the schema took any host:port, so "dns.google" was accepted by a reload
 * ("config reloaded", the file written), only a change listener logged the resolver's error, lookups kept the old
 * servers, and the next start failed with the bare resolver message.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../shared/config.ts';
import { parseDnsServer } from '../relay/dns/servers.ts';
import { Relay } from '../relay/relay.ts';
import { ConfigError, ConfigStore } from '../relay/store/config-store.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';

const relays: TestRelay[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const ACCEPTED = ['192.0.2.53', '192.0.2.53:5353', '2001:db8::53', '[2001:db8::53]:5353', '[::1]', '::ffff:192.0.2.1', 'fe80::53%eth0', '[fe80::53%eth0]:5353'];
const REFUSED = ['dns.google', 'dns.google:53', '192.0.2.1:0', '192.0.2.1:65536', '192.0.2.1:dns', '[192.0.2.1]:53', '2001:db8::1:53:', ' 192.0.2.1', '999.1.1.1', '',
  // addresses that are no one server: a query there would go nowhere or to many (the resolver could not use them)
  '0.0.0.0', '255.255.255.255', '224.0.0.251', '239.255.255.250:53', '::', '[::]:53', 'ff02::1', '::ffff:224.0.0.1', 'fe80::1', '[fe80::1]:53'];

describe('dns.servers in the config schema', () => {
  it('takes what the resolver takes', () => {
    const r = parseConfig({ dns: { servers: ACCEPTED } });
    expect(r.ok).toBe(true);
    for (const s of ACCEPTED) expect(() => parseDnsServer(s)).not.toThrow();
  });

  it.each(REFUSED)('refuses %j naming dns.servers.N with the resolver\'s reason', (entry) => {
    let reason = '';
    try {
      parseDnsServer(entry);
    } catch (err) {
      reason = (err as Error).message;
    }
    expect(reason).not.toBe('');
    const r = parseConfig({ dns: { servers: ['127.0.0.1', entry] } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues).toEqual([{ key: 'dns.servers.1', message: reason }]);
  });
});

describe('a relay given a DNS server by name', () => {
  it('SIGHUP refuses it naming dns.servers.0, keeps the last good config, and does not touch the resolver', async () => {
    const t = await startTestRelay();
    relays.push(t);
    const before = t.relay.config.current;
    const revision = t.relay.configRevision;
    const file = path.join(t.dir, 'config.json');
    const edited = JSON.parse(fs.readFileSync(file, 'utf8'));
    edited.dns.servers = ['dns.google'];
    fs.writeFileSync(file, JSON.stringify(edited));

    const r = t.relay.reload();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/dns\.servers\.0: Invalid DNS server "dns\.google": .*not an IP address/);
    expect(t.relay.config.current).toBe(before);
    expect(t.relay.configRevision).toBe(revision);
    expect(t.events.filter((e) => e.kind === 'config-changed')).toEqual([]);
  });

  it('config.update refuses it with an issue at dns.servers.0, and the file stays as it was', async () => {
    const t = await startTestRelay();
    relays.push(t);
    const file = path.join(t.dir, 'config.json');
    const text = fs.readFileSync(file, 'utf8');
    const next = structuredClone(t.relay.config.current) as { dns: { servers: string[] } };
    next.dns.servers = ['127.0.0.1', 'dns.google'];
    let err: unknown = null;
    try {
      t.relay.revisions.update(next, { by: 'admin', source: 'config.update' });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ data: { issues: [{ path: ['dns', 'servers', '1'], message: expect.stringMatching(/not an IP address/) }] } });
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
    expect(t.relay.config.current.dns.servers).not.toContain('dns.google');
  });

  it('start refuses it naming dns.servers.0 (a ConfigError, which the CLI reports as a config key to fix)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-dns-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ dns: { servers: ['dns.google'] } }));
    expect(() => ConfigStore.open(dir)).toThrow(ConfigError);
    await expect(Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', log: () => {} })).rejects.toThrow(/dns\.servers\.0: Invalid DNS server "dns\.google"/);
  });
});
