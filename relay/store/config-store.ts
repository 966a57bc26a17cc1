/**
 * config.json: the source of truth. Validated with the shared schema, written atomically
 * (temp file, fsync, rename, fsync of the directory), versioned by a revision number.
 * Readers take `current`, an immutable snapshot; a change swaps the snapshot, so every decision
 * after it (in open sessions too) sees the new config, and none sees half of one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Config, type ConfigIssue, formatIssues, parseConfig, defaultConfig } from '../../shared/config.ts';
import { duplicateKeys, jsonErrorText } from './json-diagnostics.ts';
import { LockBusyError, withFileLock } from './file-lock.ts';

/** The name the relay uses for itself (greeting, Received headers, HELO when delivering, its certificate). */
export function relayHostname(c: Config): string {
  return c.smtp.hostname ?? os.hostname();
}

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly issues: ConfigIssue[],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export class ConflictError extends Error {
  constructor(
    readonly baseRevision: number,
    readonly currentRevision: number,
  ) {
    super(`the config changed since revision ${baseRevision} (now ${currentRevision}); reload it and apply your change again`);
    this.name = 'ConflictError';
  }
}

export interface ChangeInfo {
  revision: number;
  previous: Config;
  config: Config;
  by: string;
  source: string;
  /** the change changed nothing: no revision was made, nothing written (revision is the current one) */
  unchanged?: true;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/** Read and validate a config file; throws ConfigError naming the file, line or key. */
export function readConfigFile(file: string): Config {
  return readConfigText(file).config;
}

/** The file's text as read, and the config it holds (validated as readConfigFile does). */
function readConfigText(file: string): { text: string; config: Config } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, []);
  }
  return { text, config: parseConfigText(file, text) };
}

function parseConfigText(file: string, text: string): Config {
  // a byte order mark (some Windows editors write one) is not JSON, but says nothing either: read past it
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${jsonErrorText(text, (err as Error).message)}`, []);
  }
  const twice = duplicateKeys(text);
  if (twice.length > 0) {
    const issues = twice.map((d) => ({
      key: d.key,
      message: `appears twice in the same object (lines ${d.lines[0]} and ${d.lines[1]}); JSON keeps only the last one and would drop the other without a word: merge them into one`,
    }));
    throw new ConfigError(`${file} is invalid:\n${formatIssues(issues)}`, issues);
  }
  const r = parseConfig(json);
  if (!r.ok) {
    throw new ConfigError(`${file} is invalid:\n${formatIssues(r.issues)}`, r.issues);
  }
  return r.config;
}

/** A check of a new config against the current one; returns the issues that refuse it (none: accepted). */
export type ConfigCheck = (next: Config, previous: Config) => ConfigIssue[];

export class ConfigStore {
  private snapshot: Config;
  /** the file's text as this store last read or wrote it (null: not known; in memory) */
  private diskText: string | null = null;
  private rev = 1;
  private readonly listeners = new Set<(c: ChangeInfo) => void>();
  private readonly checks = new Set<ConfigCheck>();
  readonly file: string;

  private constructor(file: string, config: Config, diskText: string | null = null) {
    this.file = file;
    this.snapshot = deepFreeze(config);
    this.diskText = diskText;
  }

  /** Open DIR/config.json, writing every default on first start. Throws ConfigError when the file is invalid. */
  static open(dataDir: string): { store: ConfigStore; created: boolean } {
    const file = path.join(dataDir, 'config.json');
    if (!fs.existsSync(file)) {
      const config = defaultConfig();
      const text = JSON.stringify(config, null, 2) + '\n';
      writeFileAtomic(file, text, 0o600);
      return { store: new ConfigStore(file, config, text), created: true };
    }
    const { text, config } = readConfigText(file);
    return { store: new ConfigStore(file, config, text), created: false };
  }

  /** An in-memory store (tests, tools); `file` is not written. */
  static memory(config: Config): ConfigStore {
    return new ConfigStore('', config);
  }

  get current(): Config {
    return this.snapshot;
  }

  get revision(): number {
    return this.rev;
  }

  /**
   * Add a check the schema cannot make (e.g. that configured files load). It runs on every change before anything
   * is written or swapped; an issue it returns refuses the change (ConfigError) and the last good config stays.
   */
  addCheck(fn: ConfigCheck): () => void {
    this.checks.add(fn);
    return () => this.checks.delete(fn);
  }

  private runChecks(next: Config, what: string): void {
    const issues = [...this.checks].flatMap((check) => check(next, this.snapshot));
    if (issues.length > 0) throw new ConfigError(`${what} is invalid:\n${formatIssues(issues)}`, issues);
  }

  onChange(fn: (c: ChangeInfo) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Validate and apply a whole new config. Nothing is half-applied: either the file is written and the
   * snapshot swapped, or neither. A stale baseRevision is a ConflictError.
   */
  update(input: unknown, meta: { by: string; source: string; baseRevision?: number }): ChangeInfo {
    return this.locked(() => {
      this.catchUp();
      return this.updateLocked(input, meta);
    });
  }

  /** Holding config.json's lock (withFileLock: the command line writes it too), from the catch-up read to the rename. */
  private locked<T>(fn: () => T): T {
    if (!this.file) return fn();
    try {
      return withFileLock(this.file, fn);
    } catch (err) {
      if (err instanceof LockBusyError) throw new ConfigError(err.message, []);
      throw err;
    }
  }

  /** Holding the lock, the file caught up with (by the caller: modify reads it before it builds its draft). */
  private updateLocked(input: unknown, meta: { by: string; source: string; baseRevision?: number }): ChangeInfo {
    if (meta.baseRevision !== undefined && meta.baseRevision !== this.rev) throw new ConflictError(meta.baseRevision, this.rev);
    const r = parseConfig(input);
    if (!r.ok) throw new ConfigError(`the new config is invalid:\n${formatIssues(r.issues)}`, r.issues);
    // a change to what is already there (a revert to the current revision, a script re-applying its config) makes
    // no revision: each was recorded, broadcast and audited as one, and pushed real changes out of the kept history
    if (JSON.stringify(r.config) === JSON.stringify(this.snapshot)) {
      return { revision: this.rev, previous: this.snapshot, config: this.snapshot, by: meta.by, source: meta.source, unchanged: true };
    }
    this.runChecks(r.config, 'the new config');
    if (this.file) {
      const text = JSON.stringify(r.config, null, 2) + '\n';
      writeFileAtomic(this.file, text, 0o600);
      this.diskText = text;
    }
    return this.swap(r.config, meta);
  }

  /** Apply a change to a copy of the current config (e.g. add a group entry). */
  modify(mutate: (draft: Config) => void, meta: { by: string; source: string; baseRevision?: number }): ChangeInfo {
    return this.locked(() => {
      // (on top of what the file holds now: see catchUp)
      this.catchUp();
      const draft = structuredClone(this.snapshot) as Config;
      mutate(draft);
      return this.updateLocked(draft, meta);
    });
  }

  /** SIGHUP: re-read the file. An invalid file is refused (ConfigError) and the last good config stays. */
  reload(): ChangeInfo | null {
    if (!this.file) return null;
    const { text, config } = readConfigText(this.file);
    if (JSON.stringify(config) === JSON.stringify(this.snapshot)) {
      this.diskText = text;
      return null;
    }
    this.runChecks(config, this.file);
    this.diskText = text;
    return this.swap(config, { by: 'file', source: 'SIGHUP' });
  }

  /**
   * Before a change is written: when the file no longer holds what this store last read or wrote (a command-line
   * `user` command, or an editor, whose SIGHUP has not been handled yet), it is read first, as SIGHUP would read it,
   * and the change is made on top of it. Writing the store's older copy over it had undone the other edit without a
   * word (a tryout: `user remove` said done, a console change a moment later wrote the user back, and it relayed).
   * Such a catch-up is a change of its own (source "file changed on disk"), so a console change based on the revision
   * before it is refused as stale, as against another admin's. A file that is invalid now (an edit in progress)
   * refuses the change: the store does not write over it.
   */
  private catchUp(): void {
    if (!this.file || this.diskText === null) return;
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch {
      return; // gone: the change writes it again
    }
    if (text === this.diskText) return;
    let config: Config;
    try {
      config = parseConfigText(this.file, text);
    } catch (err) {
      const e = err as ConfigError;
      throw new ConfigError(
        `${this.file} was changed on disk and the relay has not loaded that edit: it is invalid, and this change would write over it. ` +
          `Fix the file (or undo the edit), then make the change again.\n${e.message}`,
        e.issues ?? [],
      );
    }
    if (JSON.stringify(config) !== JSON.stringify(this.snapshot)) {
      this.runChecks(config, this.file);
      this.swap(config, { by: 'file', source: 'file changed on disk' });
    }
    this.diskText = text;
  }

  private swap(config: Config, meta: { by: string; source: string }): ChangeInfo {
    const previous = this.snapshot;
    this.snapshot = deepFreeze(config);
    this.rev++;
    const info: ChangeInfo = { revision: this.rev, previous, config: this.snapshot, by: meta.by, source: meta.source };
    for (const l of this.listeners) {
      try {
        l(info);
      } catch (err) {
        console.error(`config change listener failed: ${(err as Error).message}`);
      }
    }
    return info;
  }
}
