/**
 * Management tokens: named, with a role, stored hashed (SHA-256 of a 256-bit random secret: a token is a
 * key, not a password, so a slow hash buys nothing) in DIR/tokens.json. The secret is shown once.
 * A token is "rwt_" + 43 base64url characters; a lookup compares every stored hash in constant time.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, writeFileAtomic } from './config-store.ts';
import { jsonErrorText } from './json-diagnostics.ts';
import { withFileLock } from './file-lock.ts';

export type Role = 'admin' | 'viewer';
export interface TokenRecord {
  name: string;
  role: Role;
  hash: string;
  createdAt: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function sha256(text: string): Buffer {
  return crypto.createHash('sha256').update(text).digest();
}

/** revoke({keepLastAdmin}) of the last admin token */
export class LastAdminError extends Error {
  constructor(readonly token: string) {
    super(`"${token}" is the last admin token`);
    this.name = 'LastAdminError';
  }
}

export class TokenStore {
  private records: TokenRecord[];
  private readonly listeners = new Set<(name: string) => void>();
  /** the file's text as this store last read or wrote it (null: no file) */
  private diskText: string | null = null;

  constructor(readonly file: string) {
    this.records = [];
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, 'utf8');
      this.records = TokenStore.parse(text, file);
      this.diskText = text;
    }
  }

  /**
   * tokens.json's records. A file that is not JSON, or whose records are not tokens, is refused naming the file (a
   * ConfigError, as a bad config.json is): taken for "no tokens", it made a start mint a new admin token and write an
   * empty list over the file.
   */
  private static parse(text: string, file: string): TokenRecord[] {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`${file} is not valid JSON: ${jsonErrorText(text, (err as Error).message)}`, []);
    }
    const list = (parsed as { tokens?: unknown } | null)?.tokens;
    const bad = !Array.isArray(list)
      ? 'it must be {"tokens": [...]}'
      : list.findIndex((r) => typeof r !== 'object' || r === null || typeof r.name !== 'string' || (r.role !== 'admin' && r.role !== 'viewer') || typeof r.hash !== 'string');
    if (typeof bad === 'string' || bad >= 0) {
      const why = typeof bad === 'string' ? bad : `tokens[${bad}] is not a token ({"name", "role": "admin" or "viewer", "hash", "createdAt"})`;
      throw new ConfigError(`${file} is invalid: ${why}. Restore it, or remove it and make tokens again with \`token create\``, []);
    }
    return list as TokenRecord[];
  }

  /**
   * Before a change is written: a file changed since this store last read or wrote it (a command-line `token`
   * command whose SIGHUP has not been handled yet) is read first, and the change made on top of it, so the store's
   * older copy never puts back a token the command revoked (a tryout: a revoked admin token still logged in after a
   * console created another one at the same moment).
   */
  private catchUp(): void {
    let text: string | null;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch {
      text = null;
    }
    if (text === null || text === this.diskText) return;
    const changed = this.apply(TokenStore.parse(text, this.file));
    this.diskText = text;
    for (const l of this.diskListeners) l(changed);
  }

  private readonly diskListeners = new Set<(c: { removed: string[]; added: string[] }) => void>();

  /** Told when a change first reads a tokens.json changed on disk (a command's, its SIGHUP not handled yet). */
  onDiskChange(fn: (c: { removed: string[]; added: string[] }) => void): () => void {
    this.diskListeners.add(fn);
    return () => this.diskListeners.delete(fn);
  }

  /** Take `fresh` as the tokens; the sessions of tokens no longer there are told (their listeners). */
  private apply(fresh: TokenRecord[]): { removed: string[]; added: string[] } {
    const before = new Set(this.records.map((r) => r.name));
    this.records = fresh;
    const removed = [...before].filter((n) => !fresh.some((r) => r.name === n));
    for (const n of removed) for (const l of this.listeners) l(n);
    return { removed, added: fresh.map((r) => r.name).filter((n) => !before.has(n)) };
  }

  static open(dataDir: string): TokenStore {
    return new TokenStore(path.join(dataDir, 'tokens.json'));
  }

  private save(): void {
    const text = JSON.stringify({ tokens: this.records }, null, 2) + '\n';
    writeFileAtomic(this.file, text, 0o600);
    this.diskText = text;
  }

  list(): Array<Omit<TokenRecord, 'hash'>> {
    return this.records.map(({ name, role, createdAt }) => ({ name, role, createdAt }));
  }

  /** Create a token; returns the secret, which is stored only as a hash. */
  create(name: string, role: Role): string {
    // (holding tokens.json's lock from the catch-up read to the rename: the command line writes it too)
    return withFileLock(this.file, () => this.createLocked(name, role));
  }

  private createLocked(name: string, role: Role): string {
    this.catchUp();
    if (!NAME.test(name)) throw new Error(`token name "${name}" must be 1-64 letters, digits, ".", "_" or "-"`);
    if (role !== 'admin' && role !== 'viewer') throw new Error(`role "${String(role)}" must be "admin" or "viewer"`);
    if (this.records.some((r) => r.name === name)) throw new Error(`a token named "${name}" exists already; revoke it first or pick another name`);
    const secret = 'rwt_' + crypto.randomBytes(32).toString('base64url');
    this.records.push({ name, role, hash: sha256(secret).toString('hex'), createdAt: new Date().toISOString() });
    this.save();
    return secret;
  }

  /**
   * `keepLastAdmin`: refuse (LastAdminError) to revoke the last admin token, judged on the file as it is now (caught
   * up, under the lock: a command's revoke of the other admin token may not be loaded yet).
   */
  revoke(name: string, opts: { keepLastAdmin?: boolean } = {}): boolean {
    return withFileLock(this.file, () => this.revokeLocked(name, opts.keepLastAdmin === true));
  }

  private revokeLocked(name: string, keepLastAdmin: boolean): boolean {
    this.catchUp();
    if (keepLastAdmin && this.records.some((r) => r.name === name && r.role === 'admin') && !this.records.some((r) => r.role === 'admin' && r.name !== name)) {
      throw new LastAdminError(name);
    }
    const before = this.records.length;
    this.records = this.records.filter((r) => r.name !== name);
    if (this.records.length === before) return false;
    this.save();
    for (const l of this.listeners) l(name);
    return true;
  }

  onRevoke(fn: (name: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Re-read tokens.json (a token created or revoked by the CLI while the relay runs); returns the names of the tokens it no longer holds (their sessions close) and the new ones. */
  reload(): { removed: string[]; added: string[] } {
    const fresh = new TokenStore(this.file);
    const changed = this.apply(fresh.records);
    this.diskText = fresh.diskText;
    return changed;
  }

  /** The record for a presented token, compared in constant time against every stored hash. */
  verify(token: string): Omit<TokenRecord, 'hash'> | null {
    const h = sha256(String(token));
    let found: TokenRecord | null = null;
    for (const r of this.records) {
      const stored = Buffer.from(r.hash, 'hex');
      if (stored.length === h.length && crypto.timingSafeEqual(stored, h)) found = r;
    }
    return found ? { name: found.name, role: found.role, createdAt: found.createdAt } : null;
  }
}
