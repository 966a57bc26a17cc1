/**
 * SMTP AUTH credentials stay out of everything the relay records or shows. A real SMTP client on loopback logs in
 * against the real relay with AUTH PLAIN (initial response, and as a continuation line), AUTH LOGIN (two base64
 * continuation lines, and the user name as initial response), and fails several times (wrong password, unknown user,
 * up to the authFailures limit in monitor mode, so rejections are recorded too). Then no credential (a base64 line
 * the client sent, nor a password in clear) may appear in:
 *  - any event on the bus;
 *  - the history database (every column of every table, queried with its own connection), nor any byte of any file
 *    in the data directory (history WAL, audit log, spool, config);
 *  - what the console can read: events.subscribe backlog, events.query, clients.list, stats.get, queue.list,
 *    audit.list, config.get;
 *  - the sessions the relay holds (our per-session state, lastCommand included, and smtp-server's session);
 *  - the relay's log output and anything written to the console.
 * User names are not secret (the auth event names the user): they are recorded, and the test says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashPassword } from '../relay/auth/passwords.ts';
import { RawSmtp } from './helpers/smtp-client.ts';
import { openAsRemote } from './helpers/remote-client.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

const startRelay = manageRelayPerTest();
const clients: RawSmtp[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  vi.restoreAllMocks();
});

const GOOD = 'Sesame-4711-correct-horse';
const WRONG = 'Wrong-Pass-9bq2x7';
const WRONG_LOGIN = 'Login-Wrong-Zk3m8';
const UNKNOWN_USER_PASS = 'Nobodys-Secret-Q5w1';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const plain = (user: string, pass: string) => b64(`\0${user}\0${pass}`);

/** Every secret the client sends, as sent and decoded; every base64 line it sends, the user name's included (as sent). */
const SECRETS = [
  GOOD,
  WRONG,
  WRONG_LOGIN,
  UNKNOWN_USER_PASS,
  plain('sales', GOOD),
  plain('sales', WRONG),
  plain('nobody', UNKNOWN_USER_PASS),
  b64('sales'),
  b64(GOOD),
  b64(WRONG_LOGIN),
  // what a careless decoder would keep: the PLAIN blob decoded, with its NULs as something printable
  `sales\0${GOOD}`,
  `sales ${GOOD}`,
  // the password as JSON or a URL would escape it (nothing to escape here, but the check must not miss an escape)
  JSON.stringify(GOOD).slice(1, -1),
  encodeURIComponent(GOOD),
];
/** the base64 of each secret at each of the three alignments, so a secret inside a larger base64 text is found too */
function base64Forms(s: string): string[] {
  const out: string[] = [];
  for (let pad = 0; pad < 3; pad++) {
    const enc = Buffer.from('x'.repeat(pad) + s).toString('base64');
    // drop the characters that depend on the neighbours
    const start = pad === 0 ? 0 : pad === 1 ? 4 : 4;
    const end = enc.length - 4;
    if (end > start + 8) out.push(enc.slice(start, end));
  }
  return out;
}
const NEEDLES = [...new Set([...SECRETS, ...[GOOD, WRONG, WRONG_LOGIN, UNKNOWN_USER_PASS].flatMap(base64Forms)])];

function leaks(where: string, text: string): string[] {
  return NEEDLES.filter((n) => text.includes(n) || text.toLowerCase().includes(n.toLowerCase())).map((n) => `${where}: ${JSON.stringify(n)}`);
}

/** JSON that survives what the relay's objects hold (bigint in parsed IPs, cycles in smtp-server's session) */
function dump(v: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return x.toString();
    if (Buffer.isBuffer(x)) return x.toString('latin1');
    if (x && typeof x === 'object') {
      if (seen.has(x)) return '[cycle]';
      seen.add(x);
      // symbol-keyed state (the relay's per-session record) is not seen by JSON.stringify: add it
      const syms = Object.getOwnPropertySymbols(x);
      if (syms.length && !Array.isArray(x)) {
        const o: Record<string, unknown> = { ...(x as Record<string, unknown>) };
        for (const s of syms) o[String(s)] = (x as Record<symbol, unknown>)[s];
        return o;
      }
    }
    return x;
  });
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

let hash = '';
beforeAll(async () => {
  hash = await hashPassword(GOOD);
});

describe('AUTH credentials are never recorded', () => {
  it('PLAIN, LOGIN and failed AUTH leave no credential in events, history, console views, sessions or logs', async () => {
    const logged: string[] = [];
    const consoleOut: string[] = [];
    for (const m of ['log', 'error', 'warn', 'info', 'debug'] as const) {
      const real = console[m].bind(console);
      vi.spyOn(console, m).mockImplementation((...a: unknown[]) => {
        consoleOut.push(a.map((x) => (typeof x === 'string' ? x : dump(x))).join(' '));
        real(...a);
      });
    }
    const t = await startRelay(
      {
        users: { sales: { passwordHash: hash } },
        // monitor: the failures are counted and reported as rejections, but the test's logins still go through
        limits: { authFailures: { mode: 'monitor', max: 2, windowMinutes: 10, blockMinutes: 15 } },
        domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } },
      },
      { relay: { log: (line: string) => logged.push(line) } },
    );
    // a console watching live, from before the first connection (its raw frames are checked, not the parsed results)
    const viewer = (await t.clientWithRole('viewer')).client;
    const admin = await t.admin();
    const live = await viewer.call('events.subscribe', {});

    const open = async (localAddress: string) => {
      const c = await RawSmtp.connect(t.port, { localAddress });
      clients.push(c);
      expect((await c.hello()).code).toBe(250);
      return c;
    };

    // AUTH PLAIN with an initial response: a wrong password, an unknown user, then the right one
    const a = await open('127.0.0.11');
    expect((await a.cmd(`AUTH PLAIN ${plain('sales', WRONG)}`)).code).toBe(535);
    expect((await a.cmd(`AUTH PLAIN ${plain('nobody', UNKNOWN_USER_PASS)}`)).code).toBe(535);
    expect((await a.cmd(`AUTH PLAIN ${plain('sales', GOOD)}`)).code).toBe(235);
    // a message, so the session's authenticated user goes into the queue (queue.list, the spool)
    expect((await a.cmd('MAIL FROM:<sales@example.org>')).code).toBe(250);
    expect((await a.cmd('RCPT TO:<someone@remote.example>')).code).toBe(250);
    expect((await a.data('Subject: hi\r\n\r\nhello\r\n')).code).toBe(250);

    // AUTH PLAIN with the credentials on a continuation line
    const b = await open('127.0.0.12');
    expect(await b.cmd('AUTH PLAIN')).toMatchObject({ code: 334 });
    expect((await b.cmd(plain('sales', GOOD))).code).toBe(235);

    // AUTH LOGIN: user name and password as two base64 continuation lines, a wrong password, then the right one
    const c = await open('127.0.0.13');
    expect(await c.cmd('AUTH LOGIN')).toMatchObject({ code: 334, text: 'VXNlcm5hbWU6' });
    expect(await c.cmd(b64('sales'))).toMatchObject({ code: 334, text: 'UGFzc3dvcmQ6' });
    expect((await c.cmd(b64(WRONG_LOGIN))).code).toBe(535);
    expect(await c.cmd('AUTH LOGIN')).toMatchObject({ code: 334 });
    expect(await c.cmd(b64('sales'))).toMatchObject({ code: 334 });
    expect((await c.cmd(b64(GOOD))).code).toBe(235);

    // AUTH LOGIN with the user name as initial response
    const d = await open('127.0.0.14');
    expect(await d.cmd(`AUTH LOGIN ${b64('sales')}`)).toMatchObject({ code: 334, text: 'UGFzc3dvcmQ6' });
    expect((await d.cmd(b64(GOOD))).code).toBe(235);

    // a remote client over plain text: AUTH is refused (538) with the credential already on the command line
    const remote = await openAsRemote(t.relay, '198.51.100.7');
    clients.push(remote);
    expect((await remote.hello()).code).toBe(250);
    expect((await remote.cmd(`AUTH PLAIN ${plain('sales', GOOD)}`)).code).toBe(538);

    // the relay saw and recorded the exchanges (so the checks below look at something)
    const auths = t.events.filter((e) => e.kind === 'auth');
    expect(auths.map((e) => [e.ip, e.user, e.success, e.method])).toEqual([
      ['127.0.0.11', 'sales', false, 'PLAIN'],
      ['127.0.0.11', 'nobody', false, 'PLAIN'],
      ['127.0.0.11', 'sales', true, 'PLAIN'],
      ['127.0.0.12', 'sales', true, 'PLAIN'],
      ['127.0.0.13', 'sales', false, 'LOGIN'],
      ['127.0.0.13', 'sales', true, 'LOGIN'],
      ['127.0.0.14', 'sales', true, 'LOGIN'],
    ]);
    expect(t.events.some((e) => e.kind === 'rejected' && e.rule === 'limits.authFailures')).toBe(true);
    expect(t.events.some((e) => e.kind === 'accepted')).toBe(true);

    const found: string[] = [];

    // the sessions the relay holds now, while all five are open: our state (lastCommand, authUser ...) and smtp-server's
    const conns = [...(t.relay.front.server as unknown as { connections: Set<{ session: object; remoteAddress: string }> }).connections];
    expect(conns.length).toBe(5);
    for (const conn of conns) {
      const sessionText = dump(conn.session);
      expect(sessionText).toContain('lastCommand');
      found.push(...leaks(`session of ${conn.remoteAddress}`, sessionText));
    }

    // every event on the bus
    for (const e of t.events) found.push(...leaks(`bus event ${e.id} (${e.kind})`, JSON.stringify(e)));

    // the sessions end: their disconnects are recorded too
    for (const x of [a, b, c, d, remote]) await x.quit();
    await waitFor(() => t.events.filter((ev) => ev.kind === 'disconnect').length >= 5, 'five disconnects');

    // what the console reads: the live batches, a backlog from the start, the stored history, per-IP state, stats,
    // the queue, the audit log, the config; checked as they came over the wire (every frame, before any schema parse)
    await viewer.waitFor(() => viewer.events(live.subscriptionId).filter((ev) => ev.kind === 'disconnect').length >= 5, 5000, 'the live disconnects');
    expect(viewer.events(live.subscriptionId).filter((e) => e.kind === 'auth').length).toBe(auths.length);
    await viewer.call('events.subscribe', { sinceId: 0 });
    const q = await viewer.call('events.query', { limit: 10_000, order: 'asc' });
    expect(q.events.filter((e) => e.kind === 'auth').length).toBe(auths.length);
    await viewer.call('clients.list', { limit: 10_000 });
    await viewer.call('stats.get', {});
    expect((await viewer.call('queue.list', { limit: 10_000, offset: 0 })).items.some((i) => JSON.stringify(i).includes('sales'))).toBe(true);
    await admin.call('audit.list', { limit: 1000 });
    await admin.call('config.get', {});
    for (const [who, client] of [['viewer', viewer], ['admin', admin]] as const) {
      client.frames.forEach((f, i) => found.push(...leaks(`console (${who}) frame ${i}`, JSON.stringify(f))));
    }

    // the history database: every column of every table, after the relay wrote what it had
    t.relay.history.flush();
    const db = new Database(path.join(t.dir, 'history.sqlite'), { readonly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
      expect(tables).toContain('events');
      for (const table of tables) {
        for (const row of db.prepare(`SELECT * FROM "${table}"`).all()) found.push(...leaks(`history table ${table}`, dump(row)));
      }
      const stored = db.prepare("SELECT count(*) FROM events WHERE kind = 'auth'").pluck().get() as number;
      expect(stored).toBe(auths.length);
    } finally {
      db.close();
    }

    // every byte of every file the relay keeps (history and its WAL, audit log, spool, config, tokens)
    const files = filesUnder(t.dir);
    expect(files.some((f) => f.endsWith('history.sqlite'))).toBe(true);
    for (const f of files) found.push(...leaks(`file ${path.relative(t.dir, f)}`, fs.readFileSync(f).toString('latin1')));

    // the relay's log and the console
    // (the log hook is the relay's: a change it notes shows up here)
    t.relay.config.modify((x) => void (x.smtp.listen = '127.0.0.1:2526'), { by: 'test', source: 'test' });
    expect(logged.some((l) => l.startsWith('note: a changed listen address'))).toBe(true);
    found.push(...leaks('relay log', logged.join('\n')));
    found.push(...leaks('console', consoleOut.join('\n')));

    expect(found).toEqual([]);
  });
});
