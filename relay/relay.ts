/**
 * The relay as one object: config store, TLS identity, tokens, event bus, anvil, DNS, spool/queue and
 * the SMTP front, wired together. The CLI starts one; tests start one in-process on port 0.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseHostPort, formatHostPort } from '../shared/hostport.ts';
import { Anvil } from './clients/anvil.ts';
import { DnsResolver } from './dns/resolver.ts';
import { EventBus } from './events/bus.ts';
import { FaultLog } from './events/fault-log.ts';
import { configNotes } from './store/config-notes.ts';
import { describeChanges, describeTokens } from './store/change-words.ts';
import { Queue } from './queue/spool.ts';
import { SmtpFront } from './smtp/front.ts';
import { ConfigStore, relayHostname, writeFileAtomic } from './store/config-store.ts';
import { TokenStore } from './store/tokens.ts';
import { checkConfiguredIdentity, loadOrCreateIdentity, TlsFileError, type TlsIdentity } from './tls/cert.ts';
import { AuditLog } from './store/audit.ts';
import { EventHistory, type HistoryOptions } from './store/history.ts';
import { ConfigRevisions } from './manage/config-revisions.ts';
import type { ConfigChange } from '../shared/protocol.ts';
import { ManageServer, type ManageLimits } from './manage/server.ts';

export interface RelayOptions {
  dataDir: string;
  /** override smtp.listen (tests use "127.0.0.1:0") */
  smtpListen?: string;
  now?: () => number;
  log?: (line: string) => void;
  /** queue options for tests (retry schedule, timers) */
  queue?: Partial<ConstructorParameters<typeof Queue>[0]>;
  /**
   * override manage.listen. When smtpListen asks for any free port ("host:0", tests) and this is not given, the
   * management channel takes any free port on 127.0.0.1 too, so test relays never collide on 8465.
   */
  manageListen?: string;
  /** management channel limits for tests (login timeout, stall timeout, rates) */
  manageLimits?: Partial<ManageLimits>;
  /** event history options for tests (flush interval, size bound) */
  history?: Partial<Omit<HistoryOptions, 'file'>>;
  /** events the bus keeps in memory for late subscribers (default 10,000; tests make it small) */
  eventRing?: number;
  /** how long a stop lets SMTP sessions in the middle of a message go on (default 30 s; tests make it short) */
  stopGraceMs?: number;
  /** the most clients the anvil tracks (default MAX_CLIENTS, 100,000; tests make it small) */
  maxClients?: number;
}

export class Relay {
  readonly dataDir: string;
  readonly config: ConfigStore;
  readonly bus: EventBus;
  readonly anvil: Anvil;
  readonly resolver: DnsResolver;
  readonly queue: Queue;
  readonly front: SmtpFront;
  readonly tokens: TokenStore;
  readonly identity: TlsIdentity;
  readonly firstStart: { config: boolean; certificate: boolean; adminToken: boolean };
  readonly history: EventHistory;
  readonly revisions: ConfigRevisions;
  readonly audit: AuditLog;
  manage: ManageServer | null = null;
  smtpAddress = { host: '', port: 0 };
  manageAddress = { host: '', port: 0 };
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly log: (line: string) => void;
  private readonly now: () => number;

  private constructor(init: {
    dataDir: string;
    config: ConfigStore;
    bus: EventBus;
    anvil: Anvil;
    resolver: DnsResolver;
    queue: Queue;
    front: SmtpFront;
    tokens: TokenStore;
    identity: TlsIdentity;
    firstStart: Relay['firstStart'];
    log: (line: string) => void;
    now: () => number;
    history: EventHistory;
    revisions: ConfigRevisions;
    audit: AuditLog;
  }) {
    this.dataDir = init.dataDir;
    this.config = init.config;
    this.bus = init.bus;
    this.anvil = init.anvil;
    this.resolver = init.resolver;
    this.queue = init.queue;
    this.front = init.front;
    this.tokens = init.tokens;
    this.identity = init.identity;
    this.firstStart = init.firstStart;
    this.log = init.log;
    this.now = init.now;
    this.history = init.history;
    this.revisions = init.revisions;
    this.audit = init.audit;
  }

  /** The config revision as the management protocol shows it (continues across restarts). */
  get configRevision(): number {
    return this.revisions.current;
  }

  /**
   * What a first start makes in the data directory, without listening on anything: config.json with every default,
   * the self-signed certificate, the admin token. `init` runs only this, so ports and domains can be set in
   * config.json before the relay ever listens; start() runs it first (each part is kept when it exists).
   */
  static async prepare(dataDirIn: string) {
    const dataDir = path.resolve(dataDirIn);
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const { store: config, created } = ConfigStore.open(dataDir);
    const c = config.current;
    const identity = await loadOrCreateIdentity(dataDir, relayHostname(c), c.tls).catch((err: unknown) => {
      throw err instanceof TlsFileError ? new Error(`${err.key}: ${err.message}`, { cause: err }) : err;
    });
    const tokens = TokenStore.open(dataDir);
    let adminToken = false;
    const tokenFile = path.join(dataDir, 'admin-token');
    if (tokens.list().length === 0) {
      const secret = tokens.create('admin', 'admin');
      writeFileAtomic(tokenFile, secret + '\n', 0o600);
      adminToken = true;
    }
    return { dataDir, config, identity, tokens, firstStart: { config: created, certificate: identity.created, adminToken } };
  }

  static async start(opts: RelayOptions): Promise<Relay> {
    const now = opts.now ?? Date.now;
    const log = opts.log ?? ((line: string) => console.log(line));
    const { dataDir, config, identity, tokens, firstStart } = await Relay.prepare(opts.dataDir);
    const c = config.current;
    const history = EventHistory.open({
      file: path.join(dataDir, 'history.sqlite'),
      now,
      retentionDays: () => config.current.events.retentionDays,
      log,
      ...opts.history,
    });
    const revisions = new ConfigRevisions(config, history, now);
    const audit = new AuditLog(path.join(dataDir, 'audit.jsonl'));
    // event ids continue after the stored history, so a console's "since id" survives a relay restart
    const bus = new EventBus({ now, firstId: history.lastEventId() + 1, backlog: opts.eventRing });
    history.attach(bus);
    const anvil = new Anvil({ now, authWindowMs: () => config.current.limits.authFailures.windowMinutes * 60_000, maxClients: opts.maxClients });
    const resolver = new DnsResolver({ servers: c.dns.servers, timeoutMs: c.dns.timeoutMs, now });
    const queue = new Queue({ dir: path.join(dataDir, 'spool'), config: () => config.current, resolver, bus, now, log, ...opts.queue });
    const front = new SmtpFront({ config, bus, anvil, resolver, spool: queue, tls: { key: identity.key, cert: identity.cert }, now, stopGraceMs: opts.stopGraceMs });
    const relay = new Relay({
      dataDir, config, bus, anvil, resolver, queue, front, tokens, identity, log, now, history, revisions, audit,
      firstStart,
    });
    // the certificate is loaded at start only: a change to tls.* is checked now, as that start would load it, so a
    // file that cannot be read (or a key that does not match) is refused here, not found at the next start
    config.addCheck((next, previous) => {
      if (JSON.stringify(next.tls) === JSON.stringify(previous.tls)) return [];
      try {
        checkConfiguredIdentity(dataDir, next.tls);
        return [];
      } catch (err) {
        if (err instanceof TlsFileError) return [{ key: err.key, message: err.message }];
        throw err;
      }
    });
    config.onChange((info) => {
      const prev = info.previous;
      for (const rule of ['unknownRecipients', 'authFailures'] as const) {
        const to = info.config.limits[rule].blockMinutes;
        if (to >= prev.limits[rule].blockMinutes) continue;
        const { shortened: n, ended } = anvil.shortenBlocks(`limits.${rule}`, to * 60_000);
        // (said after the line of the change that did it: a SIGHUP's reload line is printed once the change is in)
        if (n > 0) {
          const line = `limits.${rule}.blockMinutes lowered to ${to}: ${n} client block${n === 1 ? '' : 's'} under way shortened to match${ended ? ` (${ended === n ? (n === 1 ? 'it is' : 'all are') : `${ended} of them are`} over at once)` : ''}`;
          setImmediate(() => log(line));
        }
      }
      if (JSON.stringify(prev.dns) !== JSON.stringify(info.config.dns)) {
        resolver.reconfigure({ servers: info.config.dns.servers, timeoutMs: info.config.dns.timeoutMs });
      }
      if (prev.smtp.listen !== info.config.smtp.listen || prev.manage.listen !== info.config.manage.listen) {
        log('note: a changed listen address takes effect when the relay restarts');
      }
      if (JSON.stringify(prev.tls) !== JSON.stringify(info.config.tls)) {
        log('note: a changed TLS certificate (tls.certFile, tls.keyFile) takes effect when the relay restarts');
      }
      for (const note of configNotes(prev, info.config, now())) log(note);
      if (info.source === 'file changed on disk') {
        // (the revision ConfigRevisions recorded for it, with its diff: that listener runs first)
        const changes = revisions.latest?.revision === revisions.publicOf(info.revision) ? revisions.latest.changes : [];
        log(`config.json had been changed on disk (a command or an editor, its SIGHUP not handled yet): read before the next change, as revision ${revisions.publicOf(info.revision)}: ${describeChanges(changes) || 'the same settings, written differently'}`);
      }
      bus.emit({ kind: 'config-changed', sessionId: null, ip: null, revision: revisions.publicOf(info.revision), by: info.by, source: info.source });
    });
    tokens.onDiskChange((c) => {
      log(`tokens.json had been changed on disk (a command, its SIGHUP not handled yet): read before the next change: ${describeTokens(c) || 'the same tokens, written differently'}`);
    });
    // both listen addresses are checked before anything starts: a bad one (only options can give one; config.json's
    // are validated) must not leave the queue, the history or the resolver open. Port 0 (any free port) is for tests:
    // parseHostPort takes it only as the default port.
    const listenText = opts.smtpListen ?? c.smtp.listen;
    const listen = parseHostPort(listenText.endsWith(':0') ? listenText.slice(0, -2) : listenText, 0);
    const manageText = opts.manageListen ?? (opts.smtpListen?.endsWith(':0') ? '127.0.0.1:0' : c.manage.listen);
    const mlisten = parseHostPort(manageText.endsWith(':0') ? manageText.slice(0, -2) : manageText, 0);
    if (!listen.ok || !mlisten.ok) {
      resolver.close();
      history.close();
      throw new Error(!listen.ok ? `smtp.listen ${listen.error}` : `manage.listen ${(mlisten as { error: string }).error}`);
    }
    try {
      await queue.start();
    } catch (err) {
      // the queue stopped again what its start() had started; what was opened before it is closed here
      resolver.close();
      history.close();
      throw new Error(`cannot start the queue (spool ${queue.dir}): ${(err as Error).message}`, { cause: err });
    }
    const port = listen.value.port;
    try {
      const addr = await front.listen(listen.value.host, port);
      relay.smtpAddress = { host: addr.address, port: addr.port };
    } catch (err) {
      await queue.stop();
      resolver.close();
      const e = err as NodeJS.ErrnoException;
      const hint = e.code === 'EADDRINUSE' ? ' (another program is listening there; change smtp.listen or stop it)'
        : e.code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : '';
      history.close();
      throw new Error(`cannot listen for SMTP on ${formatHostPort({ host: listen.value.host, port })}: ${e.message}${hint}`);
    }
    const manage = new ManageServer({
      config, revisions, bus, anvil, queue, tokens, history, audit, identity, now, log,
      hostname: () => relayHostname(config.current),
      smtpAddress: () => formatHostPort(relay.smtpAddress),
      limits: opts.manageLimits,
    });
    try {
      const addr = await manage.listen(mlisten.value.host, mlisten.value.port);
      relay.manage = manage;
      relay.manageAddress = { host: addr.address, port: addr.port };
    } catch (err) {
      await manage.close().catch(() => {});
      await front.close();
      await queue.stop();
      resolver.close();
      history.close();
      const e = err as NodeJS.ErrnoException;
      const hint = e.code === 'EADDRINUSE' ? ' (another program, or another relay, is listening there; change manage.listen or stop it)' : '';
      throw new Error(`cannot listen for the management channel on ${formatHostPort(mlisten.value)}: ${e.message}${hint}`);
    }
    relay.faults = new FaultLog(bus, log, now);
    relay.sweepTimer = setInterval(() => relay.sweepClients(), 60_000);
    relay.sweepTimer.unref();
    return relay;
  }

  private clientsNoted = { at: -Infinity, evictions: 0 };
  /** blocks and DNS failures on the log (FaultLog) */
  private faults: FaultLog | null = null;

  /**
   * Every minute: the anvil forgets what has aged out. When its table was full and it had to forget clients that had
   * not aged out yet, the log says so, at most once an hour: counters and blocks of those clients started afresh, which
   * an admin should know about (many distinct addresses in an hour: rotating IPv6 networks, or a large botnet).
   */
  sweepClients(): void {
    this.anvil.sweep();
    // what the fault log counted and did not say one by one, once its minute is over
    this.faults?.flush();
    const forgotten = this.anvil.evictions - this.clientsNoted.evictions;
    const at = this.now();
    if (forgotten > 0 && at - this.clientsNoted.at >= 3_600_000) {
      this.log(
        `warning: the client table is full (${this.anvil.size.toLocaleString('en-US')} addresses seen in the last hour); ` +
          `${forgotten.toLocaleString('en-US')} idle clients were forgotten to make room, their limits' counters and blocks starting afresh ` +
          `(the most recently seen are kept; this many distinct senders in an hour is usually an attack from rotating addresses)`,
      );
      this.clientsNoted = { at, evictions: this.anvil.evictions };
    }
  }

  /** SIGHUP: re-read config.json and tokens.json; an invalid file is refused and the last good config stays. */
  reload():
    | { ok: true; changed: boolean; changes: ConfigChange[]; tokensAdded: string[]; tokensRemoved: string[] }
    | { ok: false; error: string } {
    try {
      const info = this.config.reload();
      const tokens = this.tokens.reload();
      return {
        ok: true,
        changed: info !== null,
        // the diff ConfigRevisions recorded for this change (secrets hidden), not a second one
        changes: info ? (this.revisions.latest?.changes ?? []) : [],
        tokensAdded: tokens.added,
        tokensRemoved: tokens.removed,
      };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  /** Graceful stop: no new connections, open sessions get a bounded time, the queue stays on disk. */
  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.faults?.close();
    await this.manage?.close();
    await this.front.close();
    await this.queue.stop();
    this.resolver.close();
    this.history.close();
  }
}
