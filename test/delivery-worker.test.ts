/**
 * The delivery worker thread (relay/queue/deliverer.ts): messages from memory and from a range of a spool file reach a
 * real sink byte for byte, TLS is reported from the worker, a worker that dies defers what it had under way and the
 * next delivery starts a new one, and close() ends connections and lets deliveries start again afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkerDeliverer, type DeliveryRequest } from '../relay/queue/deliverer.ts';
import { startSink, type Sink } from './helpers/sink.ts';
import { deliveryRequest } from './helpers/spool-images.ts';

/** This file's deliveries use STARTTLS when the sink offers it, as the relay's default does. */
const request = (s: Sink, source: DeliveryRequest['source'], over: Partial<DeliveryRequest> = {}): DeliveryRequest =>
  deliveryRequest(s, source, { tls: 'opportunistic', commandTimeoutMs: 5000, ...over });

const sinks: Sink[] = [];
const deliverers: WorkerDeliverer[] = [];
afterEach(async () => {
  for (const d of deliverers.splice(0)) await d.close();
  for (const s of sinks.splice(0)) await s.close();
});

async function sink(opts: Parameters<typeof startSink>[0] = {}): Promise<Sink> {
  const s = await startSink(opts);
  sinks.push(s);
  return s;
}
function deliverer(): WorkerDeliverer {
  const d = new WorkerDeliverer({ idleMs: 2000, maxIdlePerAddress: 5 }, () => {});
  deliverers.push(d);
  return d;
}
describe('delivery worker', () => {
  it('carries a message from memory and one from the middle of a spool file, byte for byte, and reports TLS', async () => {
    const s = await sink({ tls: true });
    const d = deliverer();
    const inMemory = Buffer.from('Subject: from memory\r\n\r\nbody one\r\n');
    const r1 = await d.deliver(request(s, { kind: 'buffer', bytes: inMemory }));
    expect(r1).toMatchObject({ kind: 'done', tls: true, results: [{ rcpt: 'bob@example.test', code: 250 }] });
    // the queue's own Buffer is untouched (the worker got a copy)
    expect(inMemory.toString()).toBe('Subject: from memory\r\n\r\nbody one\r\n');

    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rw-worker-'));
    try {
      const file = path.join(dir, 'segment');
      const inFile = Buffer.from('Subject: from a file\r\n\r\nbody two\r\n');
      await fsp.writeFile(file, Buffer.concat([Buffer.from('HEADER BYTES'), inFile, Buffer.from('TRAILER')]));
      const r2 = await d.deliver(request(s, { kind: 'file', file, offset: 12, size: inFile.length }));
      expect(r2).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
      const got = await s.waitFor(2);
      expect(got.map((m) => m.data.toString())).toEqual([inMemory.toString(), inFile.toString()]);
      expect(got[1]!.secure).toBe(true);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('a worker that dies defers the delivery it had under way; the next delivery starts a new worker', async () => {
    const slow = await sink({ dataDelayMs: 2000 });
    const d = deliverer();
    const underWay = d.deliver(request(slow, { kind: 'buffer', bytes: Buffer.from('Subject: x\r\n\r\nx\r\n') }));
    await expect.poll(() => slow.activeTransactions).toBe(1);
    await d.killWorker();
    expect(await underWay).toMatchObject({ kind: 'session-failed', reason: expect.stringMatching(/delivery worker exited/) });
    const fast = await sink();
    expect(await d.deliver(request(fast, { kind: 'buffer', bytes: Buffer.from('Subject: y\r\n\r\ny\r\n') }))).toMatchObject({ kind: 'done', results: [{ code: 250 }] });
    expect(fast.messages).toHaveLength(1);
  });

  it('close() ends the cached connection and the worker; a later delivery opens both again', async () => {
    const s = await sink();
    const d = deliverer();
    const msg = { kind: 'buffer' as const, bytes: Buffer.from('Subject: z\r\n\r\nz\r\n') };
    await d.deliver(request(s, msg));
    await d.deliver(request(s, msg));
    expect(s.connections).toBe(1); // the second reused the cached connection
    await d.close();
    await d.deliver(request(s, msg));
    expect(s.connections).toBe(2);
    expect(s.messages).toHaveLength(3);
  });

  it('a delivery tracked by the queue can be closed from the main thread (stop() does this)', async () => {
    const slow = await sink({ dataDelayMs: 5000 });
    const d = deliverer();
    let close: (() => void) | null = null;
    const underWay = d.deliver(request(slow, { kind: 'buffer', bytes: Buffer.from('Subject: w\r\n\r\nw\r\n') }, { track: (c) => ((close = c), () => (close = null)) }));
    await expect.poll(() => slow.activeTransactions).toBe(1);
    expect(close).not.toBeNull();
    close!();
    const r = await underWay;
    // the connection broke before the reply to the data: no recipient got a 2xx
    expect(r.kind === 'done' ? r.results.every((x) => x.code < 200 || x.code >= 300) : true).toBe(true);
    expect(close).toBeNull(); // untracked once it ended
  });
});
