/**
 * Connection profiles (name, host, port, token). The token is kept encrypted with the secret store
 * (Electron's safeStorage); where the platform only has the plain-text backend we say so.
 */
import crypto from 'node:crypto';
import { ProfileInput, type ProfileView } from '../../shared/console-api.ts';
import type { KnownHosts } from './known-hosts.ts';
import type { JsonFile, SecretStore } from './ports.ts';

interface StoredProfile {
  id: string;
  name: string;
  host: string;
  port: number;
  /** base64 of the secret store's ciphertext */
  token: string | null;
}
type Doc = { profiles: StoredProfile[] };

export class ProfileError extends Error {
  constructor(
    message: string,
    readonly issues: { path: (string | number)[]; message: string }[] = [],
  ) {
    super(message);
  }
}

export class Profiles {
  /** tokens that could not be stored encrypted stay in memory for this run only */
  private readonly memoryTokens = new Map<string, string>();

  constructor(
    private readonly file: JsonFile<Doc>,
    private readonly secrets: SecretStore,
    private readonly knownHosts: KnownHosts,
  ) {}

  private doc(): Doc {
    return this.file.read() ?? { profiles: [] };
  }

  storageWarning(): string | null {
    if (!this.secrets.isEncryptionAvailable()) {
      return 'This system offers no way to encrypt secrets: tokens are kept in memory only and must be pasted again after a restart.';
    }
    if (this.secrets.backend() === 'basic_text') {
      return 'No keyring (such as GNOME Keyring or KWallet) is available: tokens are stored with a fixed key, readable by anyone who can read your profile folder.';
    }
    return null;
  }

  private view(p: StoredProfile): ProfileView {
    return {
      id: p.id,
      name: p.name,
      host: p.host,
      port: p.port,
      hasToken: p.token !== null || this.memoryTokens.has(p.id),
      fingerprint256: this.knownHosts.get(p.host, p.port)?.fingerprint256 ?? null,
    };
  }

  list(): ProfileView[] {
    return this.doc().profiles.map((p) => this.view(p));
  }

  get(id: string): (ProfileView & { token: string | null }) | null {
    const p = this.doc().profiles.find((x) => x.id === id);
    if (!p) return null;
    let token: string | null = this.memoryTokens.get(id) ?? null;
    if (!token && p.token) {
      try {
        token = this.secrets.decrypt(Buffer.from(p.token, 'base64'));
      } catch {
        token = null;
      }
    }
    return { ...this.view(p), token };
  }

  save(input: unknown): ProfileView {
    const r = ProfileInput.safeParse(input);
    if (!r.success) {
      const issues = r.error.issues.map((i) => ({ path: i.path.map((x) => (typeof x === 'symbol' ? String(x) : x)), message: i.message }));
      throw new ProfileError(issues.map((i) => `${i.path.join('.') || 'profile'}: ${i.message}`).join('; '), issues);
    }
    const v = r.data;
    const host = v.host.replace(/^\[(.*)\]$/, '$1');
    const d = this.doc();
    let p = v.id ? d.profiles.find((x) => x.id === v.id) : undefined;
    if (v.id && !p) throw new ProfileError(`there is no server profile ${v.id}`);
    if (d.profiles.some((x) => x.name.toLowerCase() === v.name.toLowerCase() && x.id !== v.id)) {
      throw new ProfileError(`a server named "${v.name}" exists already`, [{ path: ['name'], message: 'this name is taken' }]);
    }
    if (!p) {
      if (!v.token) throw new ProfileError('a new server needs its token', [{ path: ['token'], message: 'paste the token' }]);
      p = { id: crypto.randomUUID(), name: v.name, host, port: v.port, token: null };
      d.profiles.push(p);
    } else {
      p.name = v.name;
      p.host = host;
      p.port = v.port;
    }
    if (v.token) {
      if (this.secrets.isEncryptionAvailable()) {
        p.token = this.secrets.encrypt(v.token).toString('base64');
        this.memoryTokens.delete(p.id);
      } else {
        p.token = null;
        this.memoryTokens.set(p.id, v.token);
      }
    }
    this.file.write(d);
    return this.view(p);
  }

  remove(id: string): void {
    const d = this.doc();
    const before = d.profiles.length;
    d.profiles = d.profiles.filter((p) => p.id !== id);
    if (d.profiles.length === before) throw new ProfileError(`there is no server profile ${id}`);
    this.memoryTokens.delete(id);
    this.file.write(d);
  }
}
