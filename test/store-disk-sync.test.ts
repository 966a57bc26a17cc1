/**
 * The relay and the command line write the same files: config.json (users, via `user set/remove`) and tokens.json
 * (`token create/revoke`); the command then sends SIGHUP. A tryout ran console changes at the same time: the relay's
 * next write put back its older copy, so `user remove` said done while the user still logged in and relayed, and a
 * revoked admin token still logged in. Each store now reads a file that changed on disk before it writes, and makes
 * its change on top of it. Two stores on one directory stand for the two processes (as the CLI opens its own).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, ConfigStore, ConflictError } from '../relay/store/config-store.ts';
import { TokenStore } from '../relay/store/tokens.ts';
import { hashPassword } from '../relay/auth/passwords.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { ErrorCode } from '../shared/protocol.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-sync-'));
  dirs.push(d);
  return d;
}
const meta = { by: 'test', source: 'test' };
const startManaged = manageRelayPerTest();
const { open } = smtpClients(() => {});
const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

describe('config.json written by two processes', () => {
  it('a change in the relay is made on top of a command-line edit it has not reloaded yet', async () => {
    const dir = dataDir();
    const relay = ConfigStore.open(dir).store;
    relay.modify((d) => void (d.users['stolen'] = { passwordHash: 'scrypt$x' }), meta);
    const cli = ConfigStore.open(dir).store; // the command line, another process
    cli.modify((d) => void delete d.users['stolen'], { by: 'cli', source: 'user remove' });
    const before = relay.revision;
    // the console adds a group entry before the relay has handled the command's SIGHUP
    relay.modify((d) => void (d.groups['Trusted'] = [{ address: '192.0.2.1' }]), meta);
    expect(Object.hasOwn(relay.current.users, 'stolen')).toBe(false);
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(Object.hasOwn(onDisk.users, 'stolen')).toBe(false);
    expect(onDisk.groups.Trusted).toMatchObject([{ address: '192.0.2.1' }]);
    // the edit read from disk is a revision of its own, then the change
    expect(relay.revision).toBe(before + 2);
    // the SIGHUP that follows finds nothing more to do
    expect(relay.reload()).toBeNull();
  });

  it('a whole-config update based on the revision before the disk edit is refused as stale', () => {
    const dir = dataDir();
    const relay = ConfigStore.open(dir).store;
    const base = relay.revision;
    const draft = structuredClone(relay.current);
    ConfigStore.open(dir).store.modify((d) => void (d.limits.messagesPerHour.max = 7), { by: 'cli', source: 'edit' });
    draft.limits.messagesPerHour.max = 50;
    expect(() => relay.update(draft, { ...meta, baseRevision: base })).toThrow(ConflictError);
    expect(relay.current.limits.messagesPerHour.max).toBe(7);
  });

  it('an invalid edit on disk (in progress) is not written over: the change is refused and says why', () => {
    const dir = dataDir();
    const relay = ConfigStore.open(dir).store;
    const file = path.join(dir, 'config.json');
    const edited = fs.readFileSync(file, 'utf8').replace('"max": 100', '"max": 0');
    fs.writeFileSync(file, edited);
    expect(() => relay.modify((d) => void (d.groups['Trusted'] = [{ address: '192.0.2.1' }]), meta)).toThrow(ConfigError);
    try {
      relay.modify((d) => void (d.groups['Trusted'] = [{ address: '192.0.2.1' }]), meta);
    } catch (err) {
      expect((err as Error).message).toMatch(/was changed on disk and the relay has not loaded that edit: it is invalid, and this change would write over it/);
      expect((err as Error).message).toContain('limits.messagesPerHour.max');
    }
    expect(fs.readFileSync(file, 'utf8')).toBe(edited);
  });
});

describe('tokens.json written by two processes', () => {
  it('a token the command line revoked stays revoked when the relay writes next', () => {
    const dir = dataDir();
    const relay = TokenStore.open(dir);
    const victim = relay.create('victim', 'admin');
    const closed: string[] = [];
    relay.onRevoke((n) => closed.push(n));
    expect(TokenStore.open(dir).revoke('victim')).toBe(true); // the command line
    relay.create('other', 'viewer'); // a console, before the SIGHUP is handled
    expect(relay.verify(victim)).toBeNull();
    expect(closed).toEqual(['victim']);
    expect(TokenStore.open(dir).list().map((t) => t.name)).toEqual(['other']);
    // ... and one the command line created is kept
    const made = TokenStore.open(dir).create('laptop', 'viewer');
    relay.revoke('other');
    expect(relay.verify(made)).toMatchObject({ name: 'laptop' });
    expect(TokenStore.open(dir).list().map((t) => t.name)).toEqual(['laptop']);
  });
});

describe('the relay: a user removed on the command line while a console changes the config', () => {
  it('cannot log in any more, though the console change came before the SIGHUP', async () => {
    const t = await startManaged({ users: { stolen: { passwordHash: await hashPassword('correct horse') } } });
    const admin = await t.admin();
    // `user remove stolen`: its file write, not yet its SIGHUP
    ConfigStore.open(t.dir).store.modify((d) => void delete d.users['stolen'], { by: 'cli', source: 'user remove' });
    await admin.call('groups.addEntry', { group: 'Trusted', address: '192.0.2.44' });
    const c = await open(t.port);
    await c.hello();
    expect((await c.cmd(`AUTH PLAIN ${plain('stolen', 'correct horse')}`)).code).toBe(535);
    const g = await admin.call('config.get', {});
    expect(Object.hasOwn(g.config.users, 'stolen')).toBe(false);
    expect(g.config.groups['Trusted']).toMatchObject([{ address: '192.0.2.44' }]);
  });
});

describe('the relay says what it read from disk before a change', () => {
  it('the diff of config.json, with no console address in its history row; the tokens a command removed or added', async () => {
    const lines: string[] = [];
    const t = await startManaged({}, { relay: { log: (l) => lines.push(l) } });
    const admin = await t.admin();
    ConfigStore.open(t.dir).store.modify((d) => void (d.limits.messagesPerHour.max = 50), { by: 'cli', source: 'edit' });
    await admin.call('groups.addEntry', { group: 'Trusted', address: '192.0.2.45' });
    expect(lines).toContainEqual(expect.stringMatching(/^config\.json had been changed on disk \(a command or an editor, its SIGHUP not handled yet\): read before the next change, as revision \d+: limits\.messagesPerHour\.max 100 -> 50$/));
    const h = await admin.call('config.history', { limit: 5 });
    expect(h.revisions.find((r) => r.source === 'file changed on disk')).toMatchObject({ by: 'file', remoteIp: null });
    expect(h.revisions.find((r) => r.source === 'groups.addEntry')).toMatchObject({ remoteIp: '127.0.0.1' });

    t.relay.tokens.create('gone', 'viewer');
    TokenStore.open(t.dir).revoke('gone');
    TokenStore.open(t.dir).create('laptop', 'viewer');
    await admin.call('tokens.create', { name: 'another', role: 'viewer' });
    expect(lines).toContain('tokens.json had been changed on disk (a command, its SIGHUP not handled yet): read before the next change: tokens removed: gone (their console sessions closed); tokens added: laptop');
  });
});

describe('the relay: changes over the management channel against a disk edit, and changes that change nothing', () => {
  it('config.update based on the revision before a command-line edit is refused as stale (4009), and the edit stands', async () => {
    const t = await startManaged();
    const admin = await t.admin();
    const g = await admin.call('config.get', {});
    ConfigStore.open(t.dir).store.modify((d) => void (d.limits.messagesPerHour.max = 7), { by: 'cli', source: 'edit' });
    const draft = structuredClone(g.config);
    draft.limits.messagesPerHour.max = 50;
    const e = await admin.callError('config.update', { baseRevision: g.revision, config: draft });
    expect(e.code).toBe(ErrorCode.Conflict);
    const now = await admin.call('config.get', {});
    expect(now.config.limits.messagesPerHour.max).toBe(7);
    expect(now.revision).toBe(g.revision + 1);
  });

  it('a revert to the current revision, or an update with the same config, makes no revision and says no change', async () => {
    const t = await startManaged();
    const admin = await t.admin();
    const g = await admin.call('config.get', {});
    const before = t.events.filter((e) => e.kind === 'config-changed').length;
    const same = await admin.call('config.update', { baseRevision: g.revision, config: g.config });
    expect(same).toMatchObject({ revision: g.revision, changes: [] });
    const revert = await admin.call('config.revert', { revision: g.revision, baseRevision: g.revision });
    expect(revert).toMatchObject({ revision: g.revision, changes: [] });
    expect((await admin.call('config.get', {})).revision).toBe(g.revision);
    expect(t.events.filter((e) => e.kind === 'config-changed').length).toBe(before);
    const h = await admin.call('config.history', { limit: 10 });
    expect(h.revisions.map((r) => r.revision)).not.toContain(g.revision + 1);
  });
});
