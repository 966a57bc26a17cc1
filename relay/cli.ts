/**
 * npm run relay -- [--data-dir DIR]                       start the relay (default ./relay-data)
 * npm run relay -- [--data-dir DIR] user set NAME          set an SMTP AUTH password (read from standard input)
 * npm run relay -- [--data-dir DIR] user remove NAME
 * npm run relay -- [--data-dir DIR] token create --name NAME [--role admin|viewer]   (default role: viewer)
 * npm run relay -- [--data-dir DIR] token revoke NAME
 * npm run relay -- [--data-dir DIR] token list
 * Commands that change a file while the relay runs send it SIGHUP (DIR/relay.pid), so they apply at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserName } from '../shared/config.ts';
import type { ConfigChange } from '../shared/protocol.ts';
import { formatHostPort } from '../shared/hostport.ts';
import { hashPassword } from './auth/passwords.ts';
import { Relay } from './relay.ts';
import { describeChanges, describeTokens } from './store/change-words.ts';
import { ConfigError, ConfigStore, readConfigFile } from './store/config-store.ts';
import { TlsFileError, checkConfiguredIdentity } from './tls/cert.ts';
import { TokenStore, type Role } from './store/tokens.ts';

const USAGE = `usage:
  npm run relay -- [--data-dir DIR]                 start the relay (default DIR: ./relay-data)
  npm run relay -- [--data-dir DIR] init            make DIR (config.json, certificate, admin token) and listen on nothing
  npm run relay -- [--data-dir DIR] check           read config.json, tokens.json and the certificate as a start would; change nothing
  npm run relay -- [--data-dir DIR] user set NAME   set NAME's SMTP password (read from standard input)
  npm run relay -- [--data-dir DIR] user remove NAME
  npm run relay -- [--data-dir DIR] token create --name NAME [--role admin|viewer]   (default role: viewer)
  npm run relay -- [--data-dir DIR] token revoke NAME
  npm run relay -- [--data-dir DIR] token list
  npm run relay -- --help`;

class UsageError extends Error {}
/** --help: the usage on standard output, exit 0 */
class HelpWanted extends Error {}

const OPTIONS = new Set(['data-dir', 'name', 'role']);

function parseArgs(argv: string[]): { dataDir: string; rest: string[]; flags: Record<string, string> } {
  let dataDir = './relay-data';
  const rest: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') throw new HelpWanted();
    if (a.startsWith('-') && a !== '-') {
      const [k, inline] = a.replace(/^--?/, '').split('=', 2) as [string, string | undefined];
      if (!a.startsWith('--') || !OPTIONS.has(k)) throw new UsageError(`unknown option ${a.split('=')[0]}`);
      const value = inline ?? argv[++i];
      if (value === undefined || value === '') throw new UsageError(`--${k} needs a value`);
      if (k === 'data-dir') dataDir = value;
      else flags[k] = value;
    } else rest.push(a);
  }
  return { dataDir: path.resolve(dataDir), rest, flags };
}

/**
 * The new password. At a terminal: asked twice, not echoed, each ended by Enter (Ctrl+C gives up). Otherwise: all of
 * standard input (`user set NAME < password.txt`), less one line end; a second line is refused rather than taken
 * into the password.
 */
async function readPassword(): Promise<string> {
  if (process.stdin.isTTY) {
    const first = await askHidden('password: ');
    const again = await askHidden('the same password again: ');
    if (first !== again) throw new Error('the two passwords differ; nothing was changed');
    return first;
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (text === '') throw new Error('no password on standard input; give it there, e.g. `user set NAME < password.txt`');
  if (/[\r\n]/.test(text)) throw new Error('the password on standard input is more than one line; give one line');
  return text;
}

/** One line from the terminal, not echoed: Enter ends it, Backspace takes a character back, Ctrl+C or Ctrl+D gives up. */
function askHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  // no echo before the prompt shows: what is typed the moment it appears must not be echoed
  stdin.setRawMode(true);
  stdin.resume();
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let text = '';
    const done = (err: Error | null) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003' || ch === '\u0004') return done(new Error('no password given; nothing was changed'));
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else if (ch >= ' ') text += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * Tell a running relay to re-read its files. Only a live relay is signalled (runningRelay): a relay.pid left by one
 * that was killed may name a pid another program has since, and SIGHUP ends most programs.
 */
function signalRelay(dataDir: string): void {
  const pid = runningRelay(path.join(dataDir, 'relay.pid'));
  if (pid === null) return; // no relay running: it reads the files when it starts
  try {
    process.kill(pid, 'SIGHUP');
    console.log(`the running relay (pid ${pid}) was told to reload`);
  } catch (err) {
    console.error(`could not tell the relay (pid ${pid}) to reload: ${(err as Error).message}; it reads the files when it restarts`);
  }
}

/**
 * `user` and `token` change a relay's data directory; they do not make one. A mistyped --data-dir would otherwise
 * get a new directory holding one user (or token) that no relay reads, and the admin a "done" that is not true.
 */
function existingDataDir(dataDir: string, changesConfig: boolean): void {
  const config = path.join(dataDir, 'config.json');
  try {
    // `user` rewrites config.json; `token` only reads it (to know the directory is a relay's) and writes tokens.json
    fs.accessSync(config, changesConfig ? fs.constants.R_OK | fs.constants.W_OK : fs.constants.R_OK);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new Error(`${config} cannot be ${changesConfig ? 'changed' : 'read'} by this user: permission denied. Run the command as the user the relay runs as.`);
    if (code === 'ENOTDIR' || (fs.existsSync(dataDir) && !fs.statSync(dataDir).isDirectory())) throw new Error(`${dataDir} is not a directory. Check --data-dir.`);
  }
  const what = fs.existsSync(dataDir) ? `${dataDir} has no config.json` : `${dataDir} does not exist`;
  throw new Error(`${what}: it is not a relay's data directory. Check --data-dir, or start the relay once with --data-dir ${dataDir} to create it.`);
}

/**
 * The data directory, made if missing (mode 0700), one level at a time: Node's recursive mkdir loops for ever under
 * /proc, and its errors name no cause an admin can act on.
 */
function makeDataDir(dataDir: string): void {
  const missing: string[] = [];
  let d = dataDir;
  for (;;) {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(d);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES') throw new Error(`cannot use ${dataDir}: this user may not look inside ${path.dirname(d)} (permission denied)`);
      if (code === 'ENOTDIR') throw new Error(`cannot use ${dataDir}: a part of that path is a file, not a directory. Check --data-dir.`);
    }
    if (st) {
      if (!st.isDirectory()) throw new Error(`cannot use ${dataDir}: ${d} is a file, not a directory. Check --data-dir.`);
      break;
    }
    missing.unshift(d);
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const m of missing) {
    try {
      fs.mkdirSync(m, { mode: 0o700 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EEXIST') continue;
      const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code === 'EROFS' ? 'a read-only file system' : e.message;
      throw new Error(`cannot create the data directory ${m}: ${why}. Check --data-dir, or create it for the user the relay runs as.`);
    }
  }
  try {
    fs.accessSync(dataDir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new Error(`cannot use ${dataDir}: this user may not write there (permission denied). Run the relay as the directory's owner, or pick another --data-dir.`);
  }
}

async function userCommand(dataDir: string, [verb, name, ...extra]: string[]): Promise<void> {
  if (!name || (verb !== 'set' && verb !== 'remove')) throw new UsageError('expected "user set NAME" or "user remove NAME"');
  // "user set John Smith" unquoted would have made user "John": a name is one word
  if (extra.length) throw new UsageError(`user ${verb} takes one NAME (it was given "${[name, ...extra].join('" "')}"; a user name is one word)`);
  // the name is the command's argument: say so, rather than let config.json's check name a key the admin never wrote
  const okName = UserName.safeParse(name);
  if (verb === 'set' && !okName.success) throw new UsageError(`"${name}" cannot be a user name: ${okName.error.issues[0]!.message}`);
  existingDataDir(dataDir, true);
  const { store } = ConfigStore.open(dataDir);
  if (verb === 'set') {
    const password = await readPassword();
    if (password.length < 8) throw new Error('the password must be at least 8 characters');
    const passwordHash = await hashPassword(password);
    store.modify((c) => void (c.users[name] = { passwordHash }), { by: 'cli', source: 'user set' });
    console.log(`user "${name}" can now authenticate (AUTH PLAIN or LOGIN, over STARTTLS unless on loopback)`);
  } else {
    // (own keys only: "toString" is no user, though `in` finds it on every object)
    if (!Object.hasOwn(store.current.users, name)) throw new Error(`there is no user "${name}"`);
    store.modify((c) => void delete c.users[name], { by: 'cli', source: 'user remove' });
    console.log(`user "${name}" removed`);
  }
  signalRelay(dataDir);
}

function tokenCommand(dataDir: string, [verb, arg, ...extra]: string[], flags: Record<string, string>): void {
  // the words of the command first: a typo is told as one, whatever the directory
  if (verb !== 'create' && verb !== 'revoke' && verb !== 'list') throw new UsageError('expected "token create", "token revoke" or "token list"');
  if (verb === 'create' && !flags.name) throw new UsageError('token create needs --name NAME');
  if (verb !== 'create' && (flags.name !== undefined || flags.role !== undefined)) throw new UsageError(`--name and --role belong to "token create", not "token ${verb}"`);
  const role = (flags.role ?? 'viewer') as Role;
  if (role !== 'admin' && role !== 'viewer') throw new UsageError(`--role must be admin or viewer (it is "${flags.role}")`);
  if (verb === 'revoke' && !arg) throw new UsageError('token revoke needs a NAME');
  if (verb === 'list' && arg !== undefined) throw new UsageError(`token list takes no argument (it was given "${arg}")`);
  if (verb === 'create' && arg !== undefined) throw new UsageError(`token create takes --name and --role, no other words (it was given "${[arg, ...extra].join('" "')}")`);
  if (verb === 'revoke' && extra.length) throw new UsageError(`token revoke takes one NAME (it was given "${[arg, ...extra].join('" "')}")`);
  existingDataDir(dataDir, false);
  const tokens = TokenStore.open(dataDir);
  if (verb === 'create') {
    const secret = tokens.create(flags.name!, role);
    console.log(secret);
    console.error(`token "${flags.name}" (${role}) created; it is shown only this once`);
  } else if (verb === 'revoke') {
    const wasAdmin = tokens.list().some((t) => t.name === arg && t.role === 'admin');
    if (!tokens.revoke(arg!)) throw new Error(`there is no token "${arg}"`);
    console.log(`token "${arg}" revoked`);
    if (wasAdmin && !tokens.list().some((t) => t.role === 'admin')) {
      console.error(`warning: no admin token is left: nobody can change the relay from the console. Make one with: token create --name NAME --role admin`);
    }
  } else {
    for (const t of tokens.list()) console.log(`${t.name}\t${t.role}\t${t.createdAt}`);
    return;
  }
  signalRelay(dataDir);
}

/** The pid a relay.pid names, if that process is alive and (where /proc tells) is a relay; else null. */
function runningRelay(pidFile: string): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  try {
    // a pid file left by a relay that died, whose number another program got since
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cli.ts')) return null;
  } catch {
    // no /proc: take the live process for a relay
  }
  // ... or another relay got it (one on another data directory): a relay writes its pid file just after it starts,
  // so a process that started well after the file was written is not the one that wrote it
  const started = processStartedAt(pid);
  if (started !== null) {
    try {
      if (started > fs.statSync(pidFile).mtimeMs + 2000) return null;
    } catch {
      return null;
    }
  }
  return pid;
}

/**
 * When a process started, in ms since the epoch, where /proc tells (else null): its starttime (field 22 of
 * /proc/PID/stat, in clock ticks since boot; USER_HZ is 100 on Linux) after the boot time of /proc/stat (whole
 * seconds: the answer is good to about a second).
 */
function processStartedAt(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const boot = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(boot)) return null;
    return boot * 1000 + ticks * 10;
  } catch {
    return null;
  }
}

/**
 * One relay per data directory: two would run two queues on one spool (each delivering the other's messages) and two
 * writers on one history. relay.pid is created exclusively; one naming a relay that is still running refuses the start.
 */
function lockDataDir(dataDir: string): string {
  const pidFile = path.join(dataDir, 'relay.pid');
  makeDataDir(dataDir);
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(pidFile, `${process.pid}\n`, { flag: 'wx' });
      return pidFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const other = runningRelay(pidFile);
    if (other !== null) {
      throw new Error(`a relay (pid ${other}) is already running on ${dataDir}; stop it first (kill ${other}), or start this one with another --data-dir`);
    }
    fs.rmSync(pidFile, { force: true }); // left by a relay that did not stop cleanly
  }
}

/** What a first start makes, in the words of a refusal that keeps them. */
const FIRST_START_FILES: [string, string][] = [
  ['config.json', 'config.json (every default)'],
  [path.join('tls', 'cert.pem'), 'a self-signed certificate (tls/)'],
  ['admin-token', 'the admin token (admin-token, mode 0600: the console logs in with it)'],
];

/**
 * `init`: what a first start makes, and nothing more: no port is opened, so smtp.listen, manage.listen and the domains
 * can be set in config.json before the relay first listens (a first start listens at once on the embedded defaults,
 * which another service on the host may use). Files that exist are kept as they are.
 */
async function initCommand(dataDir: string, args: string[]): Promise<void> {
  if (args.length > 0) throw new UsageError(`"init" takes no arguments (got "${args[0]}")`);
  makeDataDir(dataDir);
  const { config, identity, firstStart } = await Relay.prepare(dataDir);
  const c = config.current;
  const what = (made: boolean, yes: string) => (made ? yes : 'kept as it was');
  console.log(`Relay Warden data directory: ${dataDir}`);
  console.log(`  config.json    : ${path.join(dataDir, 'config.json')} (${what(firstStart.config, 'new, with every default')})`);
  console.log(`  certificate    : ${identity.certFile} (${what(firstStart.certificate, 'new, self-signed')})`);
  console.log(`  SHA-256        : ${identity.fingerprint256}`);
  console.log(`  admin token    : ${path.join(dataDir, 'admin-token')} (${what(firstStart.adminToken, 'new; mode 0600')})`);
  // (a relay already running on this directory: "nothing listens yet" would be false, a tryout found)
  const running = runningRelay(path.join(dataDir, 'relay.pid'));
  if (running !== null) {
    console.log(`  listening on   : SMTP ${c.smtp.listen}, management wss://${c.manage.listen}/ (as config.json says now)`);
    console.log(`A relay (pid ${running}) is running on this directory. After editing config.json, reload it: kill -HUP ${running}`);
    return;
  }
  console.log(`  will listen on : SMTP ${c.smtp.listen}, management wss://${c.manage.listen}/ (smtp.listen and manage.listen)`);
  console.log(`Nothing listens yet. Edit config.json (listen addresses, domains, groups), then start the relay:`);
  console.log(`  npm run relay -- --data-dir ${dataDir}`);
}

/**
 * `check`: config.json, tokens.json and the configured certificate read as a start reads them, nothing written (as
 * `postfix check` or `nginx -t`): run it after a hand edit, before SIGHUP or a restart. A refused SIGHUP keeps the
 * running relay on its last good config, but the next start reads the file.
 */
function checkCommand(dataDir: string, args: string[]): void {
  if (args.length > 0) throw new UsageError(`"check" takes no arguments (got "${args[0]}")`);
  existingDataDir(dataDir, false);
  const file = path.join(dataDir, 'config.json');
  if (!fs.existsSync(file)) throw new Error(`there is no ${file}; a first start (or init) writes one with every default`);
  const c = readConfigFile(file);
  try {
    checkConfiguredIdentity(dataDir, c.tls);
  } catch (err) {
    if (err instanceof TlsFileError) throw new ConfigError(`${file} is invalid:\n${err.key}: ${err.message}`, [{ key: err.key, message: err.message }]);
    throw err;
  }
  const tokens = TokenStore.open(dataDir).list();
  const admins = tokens.filter((t) => t.role === 'admin').length;
  console.log(`${file}: valid (SMTP ${c.smtp.listen}, management ${c.manage.listen}, ${Object.keys(c.domains).length} local domain(s), ${Object.keys(c.groups).length} group(s))`);
  console.log(`${path.join(dataDir, 'tokens.json')}: ${tokens.length} token(s), ${admins} admin${admins === 0 ? ' (none: nobody can change the relay from the console; make one with `token create --name NAME --role admin`)' : ''}`);
  const running = runningRelay(path.join(dataDir, 'relay.pid'));
  if (running !== null) console.log(`a relay (pid ${running}) runs on this directory; kill -HUP ${running} applies the file`);
}

async function serve(dataDir: string): Promise<void> {
  // Signals that arrive while the relay starts (relay.pid already names it: `user set`, `token ...` and systemd's
  // ExecReload send SIGHUP) are kept and acted on once it has started. Node's default for SIGHUP is to end the process
  // silently, which systemd takes for a clean exit (Restart=on-failure would not restart it).
  const early: { hup: boolean; stop: string | null } = { hup: false, stop: null };
  const earlyHup = () => void (early.hup = true);
  const earlyTerm = () => void (early.stop ??= 'SIGTERM');
  const earlyInt = () => void (early.stop ??= 'SIGINT');
  process.on('SIGHUP', earlyHup);
  process.on('SIGTERM', earlyTerm);
  process.on('SIGINT', earlyInt);
  const pidFile = lockDataDir(dataDir);
  const before = FIRST_START_FILES.filter(([f]) => fs.existsSync(path.join(dataDir, f))).map(([f]) => f);
  let relay: Relay;
  try {
    relay = await Relay.start({ dataDir });
  } catch (err) {
    fs.rmSync(pidFile, { force: true });
    // a first start that fails late (a port in use) has made the data directory: say so, since the next start will
    // not mark those files new
    const made = FIRST_START_FILES.filter(([f]) => !before.includes(f) && fs.existsSync(path.join(dataDir, f))).map(([, what]) => what);
    if (made.length > 0) (err as Error).message += `\n(this start made, in ${dataDir}, and keeps for the next one: ${made.join('; ')})`;
    throw err;
  }
  const c = relay.config.current;
  const fs1 = relay.firstStart;
  console.log(`Relay Warden is running (pid ${process.pid})`);
  console.log(`  data directory : ${dataDir}${fs1.config ? ' (created, with config.json holding every default)' : ''}`);
  console.log(`  SMTP           : ${formatHostPort(relay.smtpAddress)}`);
  console.log(`  management     : wss://${formatHostPort(relay.manageAddress)}/ (JSON-RPC 2.0; see docs/protocol.md)`);
  console.log(`  certificate    : ${relay.identity.certFile}${fs1.certificate ? ' (new, self-signed)' : ''}`);
  console.log(`  SHA-256        : ${relay.identity.fingerprint256}`);
  console.log(`  admin token    : ${path.join(dataDir, 'admin-token')}${fs1.adminToken ? ' (new; mode 0600)' : ''}`);
  console.log(`  local domains  : ${Object.keys(c.domains).join(', ') || '(none yet: add them under "domains" in config.json)'}`);
  const queued = relay.queue.size;
  console.log(`  queue          : ${queued === 0 ? 'empty' : `${queued} message${queued === 1 ? '' : 's'} found on disk, delivery resumed`}`);
  console.log(`Reload config.json with: kill -HUP ${process.pid}`);

  const reload = () => {
    const r = relay.reload();
    if (r.ok) console.log(reloadLine(r, relay.configRevision));
    else {
      console.error(
        `config NOT reloaded, the relay keeps the last good config:\n${r.error}\n` +
          `The file on disk still holds this error: fix it (\`check\` reads it as a start would), or the relay's next start fails on it.`,
      );
    }
  };
  process.off('SIGHUP', earlyHup);
  process.on('SIGHUP', reload);
  let stopping = 0;
  let told = false;
  const grace = Math.round(relay.front.stopGraceMs / 1000);
  const stop = (sig: string) => {
    if (stopping) {
      // a second signal: say what the stop waits for; a third: stop at once (what was acknowledged is on disk already;
      // a message not acknowledged yet is not lost either: its sender was not told 250 and tries again)
      const open = relay.front.connectionCount;
      if (!told) {
        told = true;
        const left = Math.max(0, Math.ceil((stopping + relay.front.stopGraceMs - Date.now()) / 1000));
        console.log(
          `${sig}: still stopping: ${open} SMTP session${open === 1 ? '' : 's'} finishing a message (at most ${left} s more). ` +
            `${sig} again stops at once; messages not yet acknowledged are not lost (their senders try again)`,
        );
        return;
      }
      console.log(`${sig}: stopping at once; ${open} SMTP session${open === 1 ? '' : 's'} cut, their messages not acknowledged (their senders try again)`);
      fs.rmSync(pidFile, { force: true });
      process.exit(1);
    }
    stopping = Date.now();
    console.log(`${sig}: no new connections; letting open sessions finish (at most ${grace} s); the queue stays on disk`);
    relay.stop().then(
      () => {
        fs.rmSync(pidFile, { force: true });
        const left = relay.queue.size;
        const cut = relay.front.cutAtStop;
        const cutText = cut === 0 ? '' : `; ${cut} SMTP session${cut === 1 ? ' was' : 's were'} cut in the middle of a message at the ${grace} s limit (not acknowledged: their senders try again)`;
        console.log(`stopped${cutText}; ${left === 0 ? 'the queue is empty' : `${left} message${left === 1 ? '' : 's'} left in the queue, delivered after the next start`}`);
        process.exit(0);
      },
      (err: Error) => {
        console.error(`shutdown: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.off('SIGTERM', earlyTerm);
  process.off('SIGINT', earlyInt);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (early.stop) {
    console.log(`${early.stop} came while the relay was starting: stopping now`);
    stop(early.stop);
  } else if (early.hup) {
    console.log('SIGHUP came while the relay was starting: reloading now');
    reload();
  }
}

/** What a SIGHUP changed, in one line: the config keys (at most five named) and the tokens. */
function reloadLine(r: { changed: boolean; changes: ConfigChange[]; tokensAdded: string[]; tokensRemoved: string[] }, revision: number): string {
  const parts: string[] = [];
  if (r.changed) {
    parts.push(`config reloaded (revision ${revision}): ${describeChanges(r.changes) || 'the same settings, written differently'}`);
  } else {
    parts.push('config.json unchanged');
  }
  const tokens = describeTokens({ added: r.tokensAdded, removed: r.tokensRemoved });
  parts.push(tokens || (r.changed ? '' : 'tokens.json unchanged'));
  return parts.filter(Boolean).join('; ');
}

/** true once the command is `serve` (the relay itself), for the words of a refusal */
let serving = false;
/** true for `check`, which changes nothing: its refusal says to run it again */
let checking = false;

async function main(): Promise<void> {
  // output that cannot be written must not end anything: a terminal closed under the relay (EIO) or a `| head` that
  // exited (EPIPE) makes every later write fail, and an unhandled stream error would stop the relay (or end a command
  // with a stack trace), not just its output
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  const { dataDir, rest, flags } = parseArgs(process.argv.slice(2));
  const [cmd, ...args] = rest;
  if (cmd !== 'token' && Object.keys(flags).length > 0) throw new UsageError(`--${Object.keys(flags)[0]} belongs to "token create"`);
  if (cmd === undefined || cmd === 'serve') {
    serving = true;
    return serve(dataDir);
  }
  if (cmd === 'init') return initCommand(dataDir, args);
  if (cmd === 'check') {
    checking = true;
    return checkCommand(dataDir, args);
  }
  if (cmd === 'user') return userCommand(dataDir, args);
  if (cmd === 'token') return tokenCommand(dataDir, args, flags);
  throw new UsageError(`unknown command "${cmd}"`);
}

main().catch((err: Error) => {
  if (err instanceof HelpWanted) {
    console.log(USAGE);
    process.exit(0);
  }
  if (err instanceof UsageError) {
    if (err.message) console.error(`error: ${err.message}`);
    console.error(USAGE);
    process.exit(2);
  }
  const fix = `Fix the ${err instanceof ConfigError && err.issues.length > 0 ? 'key' : 'file'} named above`;
  if (err instanceof ConfigError) {
    const next = serving
      ? `The relay did not start. ${fix} and start it again.`
      : checking
        ? `${fix}, then run check again (a running relay takes the file with kill -HUP).`
        : `Nothing was changed. ${fix} and run the command again.`;
    console.error(`error: ${err.message}\n${next}`);
  }
  else console.error(`error: ${err.message}`);
  process.exit(1);
});
