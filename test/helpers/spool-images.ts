/**
 * Helpers for the spool's crash tests: what a restart would find if the relay were killed at an instant (a "crash
 * image": the spool directory copied at once, then loaded by a fresh Queue that delivers nothing), waiting turn by
 * turn, and delivery requests for the worker tests.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from '../../relay/queue/spool.ts';
import type { DeliveryRequest } from '../../relay/queue/deliverer.ts';
import { EventBus } from '../../relay/events/bus.ts';
import { ConfigSchema } from '../../shared/config.ts';
import { noDns } from './queue-harness.ts';
import type { Sink } from './sink.ts';

export const queueFiles = (dir: string) => fs.readdirSync(path.join(dir, 'queue')).sort();
export const segmentsOf = (dir: string) => queueFiles(dir).filter((n) => n.endsWith('.seg'));
export const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const turn = () => new Promise((r) => setImmediate(r));

/** A Queue on `dir` that only loads (no DNS, no worker): what a restart would hold. */
export function freshQueue(dir: string): Queue {
  const config = ConfigSchema.parse({ delivery: { tls: 'off' } });
  return new Queue({ dir, config: () => config, resolver: noDns, bus: new EventBus(), log: () => {}, deliveryWorker: false, stopTimeoutMs: 500 });
}

/** The ids a fresh Queue loads from `dir`. Loading changes the directory (it removes what no record needs): pass a copy. */
export async function loadIds(dir: string): Promise<string[]> {
  const q = freshQueue(dir);
  await q.start();
  const ids = q.list().map((i) => i.id);
  await q.stop();
  return ids;
}

/**
 * Copies `dir` into `copy` as it is now. The queue's thread-pool calls may remove a file while the copy walks the
 * directory (ENOENT): then the copy starts again, so the image is one the directory really was in.
 */
export function copySpool(dir: string, copy: string): void {
  for (let attempt = 1; ; attempt++) {
    try {
      fs.cpSync(dir, copy, { recursive: true });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw err;
      fs.rmSync(copy, { recursive: true, force: true });
      fs.mkdirSync(copy, { recursive: true });
    }
  }
}

/** What a restart would find if the relay were killed now: the ids, and the segment files there were. */
export async function crashImage(dir: string): Promise<{ ids: string[]; segments: string[] }> {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-crash-image-'));
  try {
    copySpool(dir, copy);
    const segments = segmentsOf(copy);
    return { ids: await loadIds(copy), segments };
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
}

/** Waits (event-loop turn by turn, so nothing durable is missed) until cond holds. */
export async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await turn();
  }
}

/** A delivery of one message to `s` (plain text unless `over` says otherwise). */
export function deliveryRequest(s: Sink, source: DeliveryRequest['source'], over: Partial<DeliveryRequest> = {}): DeliveryRequest {
  return {
    target: { host: s.host, ip: s.host, port: s.port },
    from: 'alice@sender.test',
    rcpts: ['bob@example.test'],
    size: source.kind === 'buffer' ? source.bytes.length : source.size,
    source,
    tls: 'off',
    auth: null,
    heloName: 'relay.test',
    connectTimeoutMs: 5000,
    commandTimeoutMs: 10_000,
    ...over,
  };
}

/** Whether this machine lets the tests mount a small tmpfs (root in a container that allows it): the real disk-full tests need one. */
export function canMountTmpfs(): boolean {
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}
