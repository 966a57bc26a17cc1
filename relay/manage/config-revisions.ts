/**
 * Config revisions that survive restarts: every config the relay runs with is stored in the history database with
 * who, when, from where and a diff, so config.history lists them and config.revert can go back after a restart.
 *
 * ConfigStore numbers its revisions from 1 at each start; the number the protocol shows is the store's revision plus
 * a constant offset chosen at start so that numbering continues where the stored history ends (a config.json edited
 * while the relay was stopped becomes a revision of its own). Everything that shows a revision (the protocol, the
 * config-changed event, the CLI) reads it here. If ConfigStore ever takes a starting revision, the offset becomes 0.
 */
import type { Config } from '../../shared/config.ts';
import { ErrorCode, RpcError, type ConfigChange, type RevisionInfo } from '../../shared/protocol.ts';
import { ConfigError, ConflictError, type ChangeInfo, type ConfigStore } from '../store/config-store.ts';
import type { EventHistory } from '../store/history.ts';
import { diffConfig } from './diff.ts';

export interface ChangeMeta {
  by: string;
  source: string;
  remoteIp?: string | null;
  /** the protocol revision the change was based on (stale: 4009) */
  baseRevision?: number;
}

export interface Recorded {
  revision: number;
  at: number;
  by: string;
  source: string;
  remoteIp: string | null;
  changes: ConfigChange[];
  config: Config;
}

/**
 * What the history stores in place of a smarthost password: a copy of history.sqlite (for a bug report, a backup)
 * must not carry it. config.json is where the password lives.
 */
export const PASSWORD_NOT_KEPT = '(not kept in the history)';

/** A config as the history stores it: the smarthost password left out. */
export function forHistory(c: Config): string {
  if (c.delivery.smarthost.password === null || c.delivery.smarthost.password === PASSWORD_NOT_KEPT) return JSON.stringify(c);
  return JSON.stringify({ ...c, delivery: { ...c.delivery, smarthost: { ...c.delivery.smarthost, password: PASSWORD_NOT_KEPT } } });
}

export class ConfigRevisions {
  private offset: number;
  private remoteIp: string | null = null;
  private last: Recorded | null = null;
  private readonly listeners = new Set<(r: Recorded) => void>();

  constructor(
    private readonly store: ConfigStore,
    private readonly history: EventHistory,
    private readonly now: () => number = Date.now,
    private readonly keep = 1000,
  ) {
    // rows an older relay stored with the password in them
    history.rewriteRevisionsWithPassword(PASSWORD_NOT_KEPT, (json) => forHistory(JSON.parse(json) as Config));
    const stored = history.lastRevision();
    const current = store.current;
    if (!stored) {
      this.offset = 0;
      this.record(store.revision, { by: 'relay', source: 'start' }, current, []);
    } else if (stored.config === forHistory(current)) {
      this.offset = stored.revision - store.revision;
    } else {
      this.offset = stored.revision + 1 - store.revision;
      let before: Config | null = null;
      try {
        before = this.fromHistory(stored.config);
      } catch {
        before = null;
      }
      this.record(store.revision, { by: 'file', source: 'start (config.json changed while the relay was stopped)' }, current, diffConfig(before, current));
    }
    store.onChange((info) => this.onStoreChange(info));
  }

  /** The last revision recorded (with its changes), or null before the first. */
  get latest(): Recorded | null {
    return this.last;
  }

  /** The current revision as the protocol shows it. */
  get current(): number {
    return this.store.revision + this.offset;
  }

  /** The protocol revision of a store revision (ChangeInfo.revision). */
  publicOf(storeRevision: number): number {
    return storeRevision + this.offset;
  }

  onRecord(fn: (r: Recorded) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private onStoreChange(info: ChangeInfo): void {
    // (a file read from disk before a console's change is not that console's: no address of its own)
    const remoteIp = info.source === 'file changed on disk' ? null : this.remoteIp;
    this.record(info.revision, { by: info.by, source: info.source, remoteIp }, info.config, diffConfig(info.previous, info.config));
  }

  private record(storeRevision: number, meta: ChangeMeta, config: Config, changes: ConfigChange[]): void {
    const r: Recorded = {
      revision: storeRevision + this.offset,
      at: this.now(),
      by: meta.by,
      source: meta.source,
      remoteIp: meta.remoteIp ?? null,
      changes,
      config,
    };
    this.last = r;
    try {
      this.history.saveRevision({ ...r, config: forHistory(config), changes: JSON.stringify(changes) });
      if (r.revision % 100 === 0) this.history.trimRevisions(this.keep);
    } catch (err) {
      console.error(`config history: could not store revision ${r.revision}: ${(err as Error).message}`);
    }
    for (const l of this.listeners) {
      try {
        l(r);
      } catch (err) {
        console.error(`config revision listener failed: ${(err as Error).message}`);
      }
    }
  }

  /** Apply a whole new config. Throws RpcError 4009 (stale baseRevision) or 4022 (invalid). */
  update(input: unknown, meta: ChangeMeta): Recorded {
    return this.apply(meta, (storeMeta) => this.store.update(input, storeMeta));
  }

  /** Apply a change to a copy of the current config. */
  modify(mutate: (draft: Config) => void, meta: ChangeMeta): Recorded {
    return this.apply(meta, (storeMeta) => this.store.modify(mutate, storeMeta));
  }

  private apply(meta: ChangeMeta, run: (m: { by: string; source: string; baseRevision?: number }) => ChangeInfo): Recorded {
    if (meta.baseRevision !== undefined && meta.baseRevision !== this.current) {
      throw conflict(meta.baseRevision, this.current);
    }
    this.remoteIp = meta.remoteIp ?? null;
    try {
      // the base goes to the store too: it may first read a config.json changed on disk (a command's edit whose SIGHUP
      // is not handled yet), a revision of its own, against which this base is then stale
      const info = run({ by: meta.by, source: meta.source, ...(meta.baseRevision !== undefined ? { baseRevision: meta.baseRevision - this.offset } : {}) });
      if (info.unchanged) {
        // nothing changed: no revision recorded or broadcast; the answer is the current one, with no changes
        return { revision: this.current, at: this.now(), by: meta.by, source: meta.source, remoteIp: meta.remoteIp ?? null, changes: [], config: info.config };
      }
      const r = this.last!;
      if (r.revision !== this.publicOf(info.revision)) throw new Error('config revision bookkeeping is out of step');
      return r;
    } catch (err) {
      if (err instanceof ConflictError) throw conflict(this.publicOf(err.baseRevision), this.current);
      if (err instanceof ConfigError) {
        throw new RpcError(ErrorCode.InvalidConfig, err.message, {
          issues: err.issues.map((i) => ({ path: i.key.split('.'), message: i.message, code: 'custom' })),
        });
      }
      throw err;
    } finally {
      this.remoteIp = null;
    }
  }

  /**
   * The config at a revision, or null when it is not in the history. A smarthost password the history left out is
   * the current one (so a diff against the current config shows no password change); with none now, it stays
   * PASSWORD_NOT_KEPT, which config.revert refuses.
   */
  get(revision: number): Config | null {
    if (revision === this.current) return this.store.current;
    const row = this.history.getRevision(revision);
    return row ? this.fromHistory(row.config) : null;
  }

  private fromHistory(json: string): Config {
    const c = JSON.parse(json) as Config;
    const now = this.store.current.delivery.smarthost.password;
    if (c.delivery?.smarthost?.password === PASSWORD_NOT_KEPT && now !== null) c.delivery.smarthost.password = now;
    return c;
  }

  list(limit: number, beforeRevision?: number): RevisionInfo[] {
    return this.history.revisions(limit, beforeRevision).map((r) => ({
      revision: r.revision,
      at: r.at,
      by: r.by,
      source: r.source,
      remoteIp: r.remoteIp,
      changes: JSON.parse(r.changes) as ConfigChange[],
    }));
  }
}

function conflict(baseRevision: number, currentRevision: number): RpcError {
  return new RpcError(
    ErrorCode.Conflict,
    `the config changed since revision ${baseRevision} (now ${currentRevision}); reload it and apply your change again`,
    { baseRevision, currentRevision },
  );
}
