/**
 * A Queue in a fresh spool directory with a real config, an event bus whose events are recorded, and a way to
 * submit a message the way the SMTP front does (begin, write, commit).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue, type Envelope, type MxResolver, type QueueOptions } from '../../relay/queue/spool.ts';
import { EventBus } from '../../relay/events/bus.ts';
import { ConfigSchema, type Config, type ConfigInput } from '../../shared/config.ts';
import type { RelayEvent } from '../../shared/events.ts';

export const noDns: MxResolver = {
  mx: async () => ({ status: 'temperror', reason: 'no DNS server in this test' }),
  a: async () => ({ status: 'temperror', reason: 'no DNS server in this test' }),
  aaaa: async () => ({ status: 'temperror', reason: 'no DNS server in this test' }),
};

export interface Harness {
  dir: string;
  queue: Queue;
  bus: EventBus;
  events: RelayEvent[];
  config: Config;
  setConfig(input: ConfigInput): void;
  submit(from: string, to: string[], body?: string | Buffer, over?: Partial<Envelope>): Promise<string>;
  /** a new Queue on the same spool directory (a restart) */
  reopen(extra?: Partial<QueueOptions>): Queue;
  /** waits until an event matches */
  waitEvent<K extends RelayEvent['kind']>(kind: K, pred?: (e: Extract<RelayEvent, { kind: K }>) => boolean, timeoutMs?: number): Promise<Extract<RelayEvent, { kind: K }>>;
  close(): Promise<void>;
}

/** An envelope as the SMTP front would store it (one recipient unless `over` says otherwise). */
export function testEnvelope(over: Partial<Envelope> = {}): Envelope {
  return {
    from: 'alice@sender.test',
    to: ['bob@example.test'],
    sessionId: 's1',
    clientIp: '127.0.0.1',
    clientHostname: null,
    helo: 'client.test',
    authUser: null,
    receivedAt: Date.now(),
    ...over,
  };
}

export function message(subject = 'test', body = 'hello'): string {
  return `From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: ${subject}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@sender.test>\r\n\r\n${body}\r\n`;
}

export async function queueHarness(configInput: ConfigInput, opts: Partial<QueueOptions> = {}): Promise<Harness> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rw-queue-'));
  const events: RelayEvent[] = [];
  const bus = new EventBus({ now: opts.now });
  bus.subscribe((e) => events.push(e));
  let config = ConfigSchema.parse(configInput);
  const queues: Queue[] = [];
  const make = (extra: Partial<QueueOptions> = {}) => {
    const q = new Queue({
      dir,
      config: () => config,
      resolver: noDns,
      bus,
      log: () => {},
      connectTimeoutMs: 3000,
      commandTimeoutMs: 10_000,
      stopTimeoutMs: 1000,
      ...opts,
      ...extra,
    });
    queues.push(q);
    return q;
  };
  const h: Harness = {
    dir,
    queue: make(),
    bus,
    events,
    get config() {
      return config;
    },
    setConfig(input) {
      config = ConfigSchema.parse(input);
    },
    async submit(from, to, body = message(), over = {}) {
      const w = h.queue.begin();
      w.write(Buffer.isBuffer(body) ? body : Buffer.from(body));
      const { id } = await w.commit({
        from,
        to,
        sessionId: 'sess-1',
        clientIp: '192.0.2.7',
        clientHostname: null,
        helo: 'client.test',
        authUser: null,
        receivedAt: (opts.now ?? Date.now)(),
        ...over,
      });
      return id;
    },
    reopen(extra) {
      h.queue = make(extra);
      return h.queue;
    },
    waitEvent(kind, pred = () => true, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const found = events.find((e) => e.kind === kind && pred(e as never));
        if (found) return resolve(found as never);
        const timer = setTimeout(() => {
          off();
          reject(new Error(`no "${kind}" event within ${timeoutMs} ms; events so far: ${JSON.stringify(events.map((e) => [e.kind, 'reason' in e ? e.reason : '']))}`));
        }, timeoutMs);
        const off = bus.subscribe((e) => {
          if (e.kind === kind && pred(e as never)) {
            clearTimeout(timer);
            off();
            resolve(e as never);
          }
        });
      });
    },
    async close() {
      for (const q of queues) await q.stop();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}
