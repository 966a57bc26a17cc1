/**
 * history.sqlite holds every config revision: the smarthost password must not be in it (a copy of the file, for a bug
 * report or a backup, would carry it), and the file is readable by the relay's user only, as config.json is.
 * Old revisions still read and revert with the password that is set now; a revert that would need a password the
 * history left out, with none set now, is refused and changes nothing. Rows an older relay stored with the password
 * are rewritten at start.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { Relay } from '../relay/relay.ts';
import { ErrorCode } from '../shared/protocol.ts';
import { startManageRelay, WssClient, type ManageRelay } from './helpers/wss-client.ts';

const SECRET = 'Secr3t-Passw0rd!';
let t: ManageRelay | null = null;
let second: Relay | null = null;

afterEach(async () => {
  await second?.stop();
  second = null;
  await t?.stop();
  t = null;
});

const fileHas = (dir: string, text: string) =>
  ['history.sqlite', 'history.sqlite-wal'].some((f) => fs.existsSync(path.join(dir, f)) && fs.readFileSync(path.join(dir, f)).includes(text));

describe('config revisions in history.sqlite', () => {
  it('never store the smarthost password; old revisions read and revert with the current one; the file is 0600', async () => {
    t = await startManageRelay({ delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: 2587, user: 'relay', password: SECRET } } });
    const admin = await t.admin();
    const g = await admin.call('config.get', {});
    expect(g.config.delivery.smarthost.password).toBe(SECRET);
    const c = structuredClone(g.config);
    c.limits.messagesPerHour.max = 20;
    const u1 = await admin.call('config.update', { baseRevision: g.revision, config: c });
    const dir = t.dir;
    expect(fs.statSync(path.join(dir, 'history.sqlite')).mode & 0o777).toBe(0o600);

    // the revision read back has the current password, so nothing looks changed but what was
    const old = await admin.call('config.get', { revision: g.revision });
    expect(old.config.delivery.smarthost.password).toBe(SECRET);
    const back = await admin.call('config.revert', { revision: g.revision, baseRevision: u1.revision });
    expect(back.changes.map((x) => x.path)).toEqual(['limits.messagesPerHour.max']);
    expect(t.relay.config.current.delivery.smarthost.password).toBe(SECRET);
    await admin.close();
    await t.relay.stop();
    // nothing of the password in the database or its WAL, whatever was checkpointed
    expect(fileHas(dir, SECRET)).toBe(false);
    const db = new Database(path.join(dir, 'history.sqlite'), { readonly: true });
    const rows = db.prepare('SELECT config FROM config_revisions').all() as { config: string }[];
    db.close();
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const r of rows) expect(JSON.parse(r.config).delivery.smarthost.password).toBe('(not kept in the history)');
  });

  it('a revert to a revision whose password the history left out, with none set now, is refused and changes nothing', async () => {
    t = await startManageRelay({ delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: 2587, user: 'relay', password: SECRET } } });
    const admin = await t.admin();
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.delivery = { ...c.delivery, mode: 'mx', smarthost: { ...c.delivery.smarthost, user: null, password: null } };
    const u1 = await admin.call('config.update', { baseRevision: g.revision, config: c });
    const e = await admin.callError('config.revert', { revision: g.revision, baseRevision: u1.revision });
    expect(e.code).toBe(ErrorCode.InvalidConfig);
    expect(e.message).toContain('smarthost password, which the history does not keep');
    expect((await admin.call('config.get', {})).revision).toBe(u1.revision);
    expect(t.relay.config.current.delivery.mode).toBe('mx');
  });

  it('an older relay\'s rows with the password in them are rewritten at start, and a 0644 file becomes 0600', async () => {
    t = await startManageRelay({ delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: 2587, user: 'relay', password: SECRET } } });
    const dir = t.dir;
    const now = t.clock.now;
    await t.relay.stop();
    // as an older relay left it: the password in a revision row, the file readable by all
    const file = path.join(dir, 'history.sqlite');
    const db = new Database(file);
    const row = db.prepare('SELECT revision, config FROM config_revisions ORDER BY revision DESC LIMIT 1').get() as { revision: number; config: string };
    const cfg = JSON.parse(row.config);
    cfg.delivery.smarthost.password = SECRET;
    db.prepare('UPDATE config_revisions SET config = ? WHERE revision = ?').run(JSON.stringify(cfg), row.revision);
    db.close();
    fs.chmodSync(file, 0o644);

    second = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', now, log: () => {} });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // the same config as the stored revision: no new revision was made for it
    expect(second.configRevision).toBe(row.revision);
    const ws = await WssClient.connect(second.manageAddress.port, second.identity.fingerprint256);
    await ws.login(t.adminToken);
    expect((await ws.call('config.get', { revision: row.revision })).config.delivery.smarthost.password).toBe(SECRET);
    await ws.close();
    await second.stop();
    second = null;
    expect(fileHas(dir, SECRET)).toBe(false);
  });
});
