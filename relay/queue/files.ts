/**
 * The spool's on-disk format and the small disk primitives the queue is built from.
 *
 * Layout of the spool directory:
 *   DIR/tmp/<id>.tmp          a large message being received (or a probe); never acknowledged, removed at start
 *   DIR/tmp/<segid>.seg       a segment being written; never acknowledged, removed at start
 *   DIR/queue/<segid>.seg     a segment: small messages committed together (group commit), each as a record
 *   DIR/queue/<id>.msg        one queued message: the raw bytes, then the envelope as JSON, then a fixed footer
 *   DIR/queue/<id>.state      delivery state (attempts, recipients done, "deleted", "returning"), replaced atomically;
 *                             optional
 *
 * A message is queued exactly when DIR/queue/<id>.msg exists or a record for <id> is in a DIR/queue/*.seg (the .msg
 * wins when both exist). A file gets into queue/ by rename from tmp/ after its data (envelopes included) is fsynced,
 * and the queue directory is fsynced before any commit in it resolves, so a crash at any instant leaves either complete
 * queued messages or a temp file that was never acknowledged.
 *
 * Why segments: a message that fits in memory (below the flush threshold) is not written alone. Commits that arrive
 * while the previous segment is being written wait and go to disk together in the next one: one create, one fdatasync,
 * one rename and one directory fsync for the whole group, where a file per message paid all four for each message
 * (bench/RESULTS.md). A segment lives while its messages are in their first delivery attempt; a message still
 * pending after that attempt (deferred) is copied to its own .msg first, so segments are short-lived.
 *
 * In a .msg the envelope rides at the end (a trailer) so a large body can be streamed to disk before the envelope is
 * known and the whole message costs one file fsync.
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

/**
 * A segment is a sequence of records, each: a 41-byte header "RWS1 <id> <data length, 8 hex> <JSON length, 8 hex>\n",
 * the raw message, then its envelope JSON (the same JSON as a .msg trailer).
 */
export const SEGMENT_MAGIC = 'RWS1 ';
export const SEGMENT_HEADER_LENGTH = SEGMENT_MAGIC.length + 17 + 1 + 8 + 1 + 8 + 1;
const SEGMENT_HEADER_RE = /^RWS1 ([0-9A-Z]{17}) ([0-9a-f]{8}) ([0-9a-f]{8})\n$/;

export function segmentHeader(id: string, dataLength: number, jsonLength: number): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  return Buffer.from(`${SEGMENT_MAGIC}${id} ${hex(dataLength)} ${hex(jsonLength)}\n`, 'latin1');
}

export interface SegmentRecord {
  id: string;
  /** where the raw message starts in the segment file */
  dataOffset: number;
  dataSize: number;
  json: string;
}

/** Parses a whole segment; throws on anything malformed (the caller moves the file aside). */
export function parseSegment(buf: Buffer, file: string): SegmentRecord[] {
  const out: SegmentRecord[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + SEGMENT_HEADER_LENGTH > buf.length) throw new Error(`${file}: truncated record header at byte ${off}`);
    const m = SEGMENT_HEADER_RE.exec(buf.toString('latin1', off, off + SEGMENT_HEADER_LENGTH));
    if (!m) throw new Error(`${file}: no record header at byte ${off}`);
    const dataSize = Number.parseInt(m[2]!, 16);
    const jsonLength = Number.parseInt(m[3]!, 16);
    const dataOffset = off + SEGMENT_HEADER_LENGTH;
    const end = dataOffset + dataSize + jsonLength;
    if (end > buf.length) throw new Error(`${file}: record ${m[1]} runs past the end of the file`);
    out.push({ id: m[1]!, dataOffset, dataSize, json: buf.toString('utf8', dataOffset + dataSize, end) });
    off = end;
  }
  if (out.length === 0) throw new Error(`${file}: empty segment`);
  return out;
}

/**
 * The raw bytes and envelope JSON of queued message `id`, wherever it is stored (its .msg, else a segment); null when
 * it is not queued. For tests and inspection tools: it reads every segment.
 */
export async function readQueuedMessage(queueDir: string, id: string): Promise<{ data: Buffer; json: string } | null> {
  const msgFile = path.join(queueDir, `${id}.msg`);
  try {
    const { json, dataSize } = await readTrailer(msgFile);
    const raw = await fsp.readFile(msgFile);
    return { data: raw.subarray(0, dataSize), json };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const name of (await fsp.readdir(queueDir)).filter((n) => n.endsWith('.seg'))) {
    const file = path.join(queueDir, name);
    const buf = await fsp.readFile(file);
    const rec = parseSegment(buf, file).find((r) => r.id === id);
    if (rec) return { data: buf.subarray(rec.dataOffset, rec.dataOffset + rec.dataSize), json: rec.json };
  }
  return null;
}

/**
 * Ids of every message queued on disk (.msg files and segment records, less those whose .state is a "deleted"
 * tombstone), sorted. For tests and inspection tools.
 */
export async function listQueuedIds(queueDir: string): Promise<string[]> {
  const ids = new Set<string>();
  const names = await fsp.readdir(queueDir);
  for (const name of names) {
    if (name.endsWith('.msg')) ids.add(name.slice(0, -4));
    else if (name.endsWith('.seg')) {
      const file = path.join(queueDir, name);
      for (const r of parseSegment(await fsp.readFile(file), file)) ids.add(r.id);
    }
  }
  for (const name of names.filter((n) => n.endsWith('.state'))) {
    if (await isTombstone(path.join(queueDir, name))) ids.delete(name.slice(0, -6));
  }
  return [...ids].sort();
}

/**
 * Whether a .state file is the tombstone of a message the administrator deleted or returned (false when there is none
 * or it cannot be read: the queue then retries all of the message's recipients). A return not done yet (`returning`,
 * written with `deleted` for older relays) is no tombstone: the message is still queued, to be returned.
 */
export async function isTombstone(file: string): Promise<boolean> {
  try {
    const state = JSON.parse(await fsp.readFile(file, 'utf8')) as { deleted?: unknown; returning?: unknown };
    return state.deleted === true && state.returning !== true;
  } catch {
    return false;
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

/**
 * Writes a file atomically and durably: temp file, fdatasync, rename over the target, then the target's directory
 * fsynced (through `dirSync`, shared with the commits in flight). Resolves when the new content survives a crash.
 */
export async function writeFileAtomic(tmpDir: string, target: string, content: string | Buffer | Buffer[], dirSync: DirSyncer): Promise<void> {
  const tmp = path.join(tmpDir, `${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
  let fh: fsp.FileHandle | null = null;
  try {
    fh = await fsp.open(tmp, 'w', 0o600);
    await fh.writeFile(Array.isArray(content) ? Buffer.concat(content) : content);
    await fh.datasync();
    await fh.close();
    fh = null;
    await fsp.rename(tmp, target);
    await dirSync.sync();
  } catch (err) {
    if (fh) await fh.close().catch(() => {});
    await fsp.unlink(tmp).catch(() => {});
    throw err;
  }
}
