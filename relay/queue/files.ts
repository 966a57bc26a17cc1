/**
 * The spool's on-disk format and the small disk primitives the queue is built from.
 *
 * Layout of the spool directory:
 *   DIR/tmp/<id>.tmp          a message being received (or a probe); never acknowledged, removed at start
 *   DIR/queue/<id>.msg        a queued message: the raw bytes, then the envelope as JSON, then a fixed footer
 *   DIR/queue/<id>.state      delivery state (attempts, recipients done), replaced atomically; optional
 *
 * A message is queued exactly when DIR/queue/<id>.msg exists. It gets there by rename from tmp/ after the file's data
 * (envelope included) is fsynced, and the queue directory is fsynced before the commit resolves, so a crash at any
 * instant leaves either a complete queued message or a temp file that was never acknowledged.
 *
 * The envelope rides at the end of the message file (a trailer) so the body can be streamed to disk before the
 * envelope is known and the whole message costs one file fsync.
 */
import fs, { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

export const TRAILER_MAGIC = 'RWQ1 ';
/** "\nRWQ1 " + 8 hex digits (length of the JSON) + "\n" */
export const FOOTER_LENGTH = 1 + TRAILER_MAGIC.length + 8 + 1;

export function encodeTrailer(json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  const footer = Buffer.from(`\n${TRAILER_MAGIC}${body.length.toString(16).padStart(8, '0')}\n`, 'latin1');
  return Buffer.concat([body, footer]);
}

/** Reads the trailer of a message file: the envelope JSON and the length of the raw message before it. */
export async function readTrailer(file: string): Promise<{ json: string; dataSize: number }> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size < FOOTER_LENGTH) throw new Error(`${file}: too short to be a queued message (${size} bytes)`);
    const footer = Buffer.alloc(FOOTER_LENGTH);
    await fh.read(footer, 0, FOOTER_LENGTH, size - FOOTER_LENGTH);
    const text = footer.toString('latin1');
    if (text[0] !== '\n' || !text.startsWith(TRAILER_MAGIC, 1) || text[FOOTER_LENGTH - 1] !== '\n') {
      throw new Error(`${file}: no queue trailer at the end of the file`);
    }
    const len = Number.parseInt(text.slice(1 + TRAILER_MAGIC.length, FOOTER_LENGTH - 1), 16);
    if (!Number.isFinite(len) || len > size - FOOTER_LENGTH) throw new Error(`${file}: trailer length ${len} is impossible`);
    const json = Buffer.alloc(len);
    await fh.read(json, 0, len, size - FOOTER_LENGTH - len);
    return { json: json.toString('utf8'), dataSize: size - FOOTER_LENGTH - len };
  } finally {
    await fh.close();
  }
}

let lastMs = 0;
let seq = 0;
// random bytes drawn 4 KiB at a time: one call into the CSPRNG per 1,024 ids rather than one per id
let pool = Buffer.alloc(0);
let poolOff = 0;
function random32(): number {
  if (poolOff + 4 > pool.length) {
    pool = randomBytes(4096);
    poolOff = 0;
  }
  const v = pool.readUInt32BE(poolOff);
  poolOff += 4;
  return v;
}
/**
 * Queue ids sort by time: 9 base-36 digits of the millisecond clock, a 3-digit per-millisecond sequence and 5 random
 * characters (unique across restarts and processes sharing a spool). Upper case, [0-9A-Z], 17 characters.
 */
export function newQueueId(nowMs: number = Date.now()): string {
  if (nowMs === lastMs) seq++;
  else {
    lastMs = nowMs;
    seq = 0;
  }
  const rnd = random32().toString(36).padStart(7, '0').slice(-5);
  return (nowMs.toString(36).padStart(9, '0') + (seq % 46656).toString(36).padStart(3, '0') + rnd).toUpperCase();
}

export const ID_PATTERN = /^[0-9A-Z]{17}$/;

/**
 * Opens a directory and fsyncs it, so that renames and unlinks inside it survive a crash. The open and close are
 * synchronous (microseconds, no disk wait); the fsync, which waits for the disk, runs in libuv's thread pool.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = fs.openSync(dir, 'r');
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Group commit for one directory: every caller gets a promise that resolves after an fsync of the directory that
 * started after the call. Calls that arrive while an fsync runs share the next one, so N commits in flight cost about
 * two directory fsyncs, not N. An fsync starts at the end of the event-loop turn in which the first caller asked
 * (setImmediate), so the commits whose file fsyncs completed in the same turn share it too.
 */
export class DirSyncer {
  private running: Promise<void> | null = null;
  private scheduled = false;
  private waiting: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.running && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          if (!this.running && this.waiting.length > 0) this.kick();
        });
      }
    });
  }

  private kick(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.running = fsyncDir(this.dir).then(
      () => {
        for (const w of batch) w.resolve();
      },
      (err) => {
        for (const w of batch) w.reject(err);
      },
    );
    void this.running.finally(() => {
      this.running = null;
      if (this.waiting.length > 0) this.kick();
    });
  }
}

/** Writes a small file atomically and durably: temp file, fsync, rename over the target. */
export async function writeFileAtomic(tmpDir: string, target: string, content: string | Buffer): Promise<void> {
  const tmp = path.join(tmpDir, `${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
  let fh: fsp.FileHandle | null = null;
  try {
    fh = await fsp.open(tmp, 'w', 0o600);
    await fh.writeFile(content);
    await fh.datasync();
    await fh.close();
    fh = null;
    await fsp.rename(tmp, target);
  } catch (err) {
    if (fh) await fh.close().catch(() => {});
    await fsp.unlink(tmp).catch(() => {});
    throw err;
  }
}
