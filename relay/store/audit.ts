/**
 * The audit log: DIR/audit.jsonl, one JSON object per line, appended (and fdatasynced) for every admin action:
 * who (token name and role), from where (remote IP), when, what (method, params without secrets), the outcome,
 * and for config changes the new revision and a diff. Lines are never rewritten; `seq` numbers them.
 */
import fs from 'node:fs';
import type { ConfigChange } from '../../shared/protocol.ts';
import { SECRET_KEYS } from '../../shared/config.ts';

export interface AuditRecord {
  seq: number;
  /** ISO 8601 */
  time: string;
  at: number;
  by: string;
  role: string;
  remoteIp: string | null;
  method: string;
  params: Record<string, unknown>;
  ok: boolean;
  error?: { code: number; message: string };
  revision?: number;
  changes?: ConfigChange[];
}

/** The most of a string, of an array's items and of an object's keys that an audit line keeps, and how deep. */
const AUDIT_MAX = { chars: 256, items: 20, keys: 20, depth: 3 };

/**
 * A value as an audit line keeps it: whole when it is small (what a valid request holds), else cut with the size said
 * ("… (200000 characters)"). A refused request is audited with the params as sent, which may be up to a frame (1 MiB)
 * of anything; each such line is written and fdatasynced, so it is bounded here.
 */
function bounded(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return v.length <= AUDIT_MAX.chars ? v : `${v.slice(0, AUDIT_MAX.chars)}… (${v.length} characters)`;
  if (v === null || typeof v !== 'object') return v;
  if (depth >= AUDIT_MAX.depth) return Array.isArray(v) ? `(an array of ${v.length})` : '(an object)';
  if (Array.isArray(v)) {
    const kept = v.slice(0, AUDIT_MAX.items).map((x) => bounded(x, depth + 1));
    return v.length <= AUDIT_MAX.items ? kept : [...kept, `… (${v.length} items)`];
  }
  const entries = Object.entries(v as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries.slice(0, AUDIT_MAX.keys)) out[bounded(k, AUDIT_MAX.depth) as string] = SECRET_KEYS.has(k) ? '(secret)' : bounded(x, depth + 1);
  if (entries.length > AUDIT_MAX.keys) out['…'] = `(${entries.length} keys)`;
  return out;
}

/** A copy of params with secrets replaced, whole configs left out (the diff says what changed), and sizes bounded. */
export function auditParams(params: unknown): Record<string, unknown> {
  if (!params || typeof params !== 'object' || Array.isArray(params)) return {};
  const entries = Object.entries(params as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries.slice(0, AUDIT_MAX.keys)) {
    const key = bounded(k, AUDIT_MAX.depth) as string;
    if (SECRET_KEYS.has(k)) out[key] = '(secret)';
    else if (k === 'config') out[key] = '(see changes)';
    else out[key] = bounded(v, 1);
  }
  if (entries.length > AUDIT_MAX.keys) out['…'] = `(${entries.length} keys)`;
  return out;
}

export class AuditLog {
  private seq: number;

  constructor(readonly file: string) {
    this.seq = this.lastSeq();
  }

  /** The seq of the last line (read from the file's tail), 0 for a new file. */
  private lastSeq(): number {
    const last = this.tail(1)[0];
    return last?.seq ?? 0;
  }

  append(rec: Omit<AuditRecord, 'seq'>): AuditRecord {
    const full: AuditRecord = { seq: ++this.seq, ...rec };
    const fd = fs.openSync(this.file, 'a', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(full) + '\n');
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return full;
  }

  /**
   * The newest `limit` records with seq < beforeSeq (all when undefined), newest first. Reads the file backwards in
   * 64 KiB chunks, so a long log costs only what is returned.
   */
  tail(limit: number, beforeSeq?: number): AuditRecord[] {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return [];
    }
    const out: AuditRecord[] = [];
    try {
      let pos = fs.fstatSync(fd).size;
      let rest = '';
      const chunk = Buffer.alloc(64 * 1024);
      while (pos > 0 && out.length < limit) {
        const n = Math.min(chunk.length, pos);
        pos -= n;
        fs.readSync(fd, chunk, 0, n, pos);
        // split on bytes (newline is never inside a UTF-8 sequence), keep the partial first line for the next round
        const text = chunk.subarray(0, n).toString('latin1') + rest;
        const lines = text.split('\n');
        rest = pos > 0 ? lines.shift()! : '';
        for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) {
          const line = lines[i]!;
          if (!line.trim()) continue;
          try {
            const rec = JSON.parse(Buffer.from(line, 'latin1').toString('utf8')) as AuditRecord;
            if (beforeSeq === undefined || rec.seq < beforeSeq) out.push(rec);
          } catch {
            // a torn last line after a crash: skip it
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return out;
  }
}
