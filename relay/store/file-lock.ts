/**
 * A lock between processes around a read-modify-write of one file (config.json, tokens.json): the relay and the
 * command line both change them, each reading the file, changing it and renaming a new one into place. Reading again
 * just before writing (ConfigStore.catchUp) narrows the window, but the other writer could still rename its file
 * between that read and this rename, and one change was lost (a tryout: a console writing every 20 ms and `user
 * remove` five times; one removed user survived and relayed). So both take `FILE.lock` (created exclusively, holding
 * the taker's pid) from the read to the rename, as vipw and postmap lock theirs.
 *
 * The relay holds it for a few milliseconds (a read, a parse, a write with fsync), synchronously, so the wait for it
 * is a bounded busy wait: at most LOCK_WAIT_MS, then an error that says what holds it. A lock whose pid is not alive
 * (a command killed while holding it) or that is older than STALE_MS is taken over.
 */
import fs from 'node:fs';

export const LOCK_WAIT_MS = 2000;
const STALE_MS = 30_000;
const nap = new Int32Array(new SharedArrayBuffer(4));

export class LockBusyError extends Error {
  readonly code = 'ELOCKED';
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `fn` holding `file`.lock; the lock is released however `fn` ends. */
export function withFileLock<T>(file: string, fn: () => T, waitMs = LOCK_WAIT_MS): T {
  const lock = `${file}.lock`;
  const until = Date.now() + waitMs;
  for (;;) {
    let fd: number;
    try {
      fd = fs.openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let text: string;
      let age = 0;
      try {
        text = fs.readFileSync(lock, 'utf8').trim();
        age = Date.now() - fs.statSync(lock).mtimeMs;
      } catch {
        continue; // released meanwhile: try again at once
      }
      // (empty: its taker has created it and not yet written its pid, a moment's work: it is held)
      const holder = text === '' ? NaN : Number(text);
      const dead = text !== '' && (!Number.isInteger(holder) || (holder !== process.pid && !alive(holder)));
      if (dead || age > STALE_MS) {
        // left by a writer that died while holding it (or is stuck): taken over
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() >= until) {
        throw new LockBusyError(`${file} is being changed by another program (pid ${Number.isNaN(holder) ? '?' : holder} holds ${lock}); try again in a moment`);
      }
      Atomics.wait(nap, 0, 0, 2);
      continue;
    }
    try {
      fs.writeSync(fd, `${process.pid}\n`);
    } finally {
      fs.closeSync(fd);
    }
    try {
      return fn();
    } finally {
      fs.rmSync(lock, { force: true });
    }
  }
}
