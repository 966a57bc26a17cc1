/**
 * What the console core needs from its host (Electron in the app, plain Node in tests): ports, injected.
 */

/** Electron's safeStorage in the app; a test double in tests. */
export interface SecretStore {
  /** false: secrets cannot be encrypted at all on this machine */
  isEncryptionAvailable(): boolean;
  /** e.g. "gnome_libsecret", "kwallet", "basic_text" (Linux plain-text fallback), "keychain", "dpapi" */
  backend(): string;
  encrypt(plain: string): Buffer;
  decrypt(data: Buffer): string;
}

/** A JSON document on disk (profiles.json, known-hosts.json in the app's userData folder). */
export interface JsonFile<T> {
  read(): T | null;
  write(value: T): void;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
  random(): number;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
  random: () => Math.random(),
};
