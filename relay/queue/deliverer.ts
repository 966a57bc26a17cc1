/**
 * Who carries a message to a downstream server for the queue: the SMTP conversations (nodemailer, sockets, TLS) run
 * in a worker thread, so the relay's main thread keeps to the SMTP front, the policy and the spool. On the 2-core
 * machine the bench runs on, delivery was 12-15% of the main thread's busy time (bench/RESULTS.md); moved to a
 * worker, that time runs on the other core. The queue still decides everything (routes, DNS, retries, bounces);
 * the worker only runs SmtpClient.deliver and answers with its result.
 *
 * If the worker dies, every delivery it had under way ends as a failed session (the queue defers those recipients)
 * and the next delivery starts a new worker.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { OnDemandWorker } from './on-demand-worker.ts';
import { SmtpClient, type AttemptInput, type AttemptResult } from './smtp-client.ts';

/** The message bytes: in memory (kept since the commit) or a range of a spool file. */
export type DataSource = { kind: 'buffer'; bytes: Uint8Array } | { kind: 'file'; file: string; offset: number; size: number };

export type DeliveryRequest = Omit<AttemptInput, 'data' | 'track'> & {
  source: DataSource;
  /** called with a function that closes this delivery's connection (the queue's stop() uses it) */
  track?: (close: () => void) => () => void;
};

export interface Deliverer {
  deliver(req: DeliveryRequest): Promise<AttemptResult>;
  /** QUIT idle connections, close busy ones, release the worker; deliver() may be called again later */
  close(): Promise<void>;
}

export interface ClientOptions {
  idleMs: number;
  maxIdlePerAddress: number;
}

export function openSource(source: DataSource): Readable | Buffer {
  if (source.kind === 'buffer') return Buffer.from(source.bytes.buffer, source.bytes.byteOffset, source.bytes.byteLength);
  if (source.size === 0) return Readable.from([]);
  return createReadStream(source.file, { start: source.offset, end: source.offset + source.size - 1 });
}

/** Deliveries on the calling thread (the worker uses it; so may a caller that wants no worker). */
export class InProcessDeliverer implements Deliverer {
  private readonly client: SmtpClient;

  constructor(opts: ClientOptions) {
    this.client = new SmtpClient(opts);
  }

  deliver(req: DeliveryRequest): Promise<AttemptResult> {
    const { source, ...rest } = req;
    return this.client.deliver({ ...rest, data: () => openSource(source) });
  }

  async close(): Promise<void> {
    this.client.closeAll();
  }
}

/** Messages between the queue and the worker. */
export type ToWorker =
  | { t: 'deliver'; id: number; req: Omit<DeliveryRequest, 'track'> }
  | { t: 'close'; id: number }
  | { t: 'closeAll' };
export type FromWorker = { t: 'result'; id: number; result: AttemptResult } | { t: 'closedAll' };

/** Deliveries in a worker thread, started at the first delivery (and again after it died or was closed). */
export class WorkerDeliverer implements Deliverer {
  private readonly thread: OnDemandWorker<null, AttemptResult>;

  constructor(opts: ClientOptions, log: (line: string) => void) {
    this.thread = new OnDemandWorker({
      name: 'the delivery worker',
      // a JavaScript entry that registers the TypeScript loader in the worker (a worker does not inherit it), then loads the worker
      entry: new URL('./delivery-worker.mjs', import.meta.url),
      workerData: opts,
      answerOf: (m) => {
        const r = m as FromWorker | null;
        return r?.t === 'result' ? { id: r.id, answer: r.result } : null;
      },
      lost: (calls, reason, crashed) => {
        // deliveries under way end as a failed session: the queue defers those recipients
        for (const c of calls) c.resolve({ kind: 'session-failed', reason, tlsHandshake: false });
        if (crashed) log(`queue: ${reason}; ${calls.length} deliveries under way are deferred`);
      },
      log: (line) => log(`queue: ${line}`),
    });
  }

  async deliver(req: DeliveryRequest): Promise<AttemptResult> {
    const { track, ...rest } = req;
    // a copy of the bytes, moved (not copied again) to the worker; the queue keeps its own Buffer
    let transfer: ArrayBuffer[] = [];
    if (rest.source.kind === 'buffer') {
      const bytes = new Uint8Array(rest.source.bytes);
      rest.source = { kind: 'buffer', bytes };
      transfer = [bytes.buffer as ArrayBuffer];
    }
    const { id, worker, answer } = this.thread.call({ t: 'deliver', req: rest } satisfies Omit<Extract<ToWorker, { t: 'deliver' }>, 'id'>, null, transfer);
    const untrack = track?.(() => worker.postMessage({ t: 'close', id } satisfies ToWorker)) ?? (() => {});
    try {
      return await answer;
    } finally {
      untrack();
    }
  }

  /** @internal tests: the worker dies as if it crashed (nothing is closed politely) */
  async killWorker(): Promise<void> {
    await this.thread.kill();
  }

  /**
   * Closes the current worker: its cached connections get QUIT, its busy ones are closed, then it ends. Deliveries
   * asked for from now on go to a new worker.
   */
  async close(): Promise<void> {
    const w = this.thread.detach();
    if (!w) return;
    w.ref();
    const acked = new Promise<void>((resolve) => {
      const on = (m: FromWorker | null) => {
        if (m?.t === 'closedAll') {
          w.off('message', on);
          resolve();
        }
      };
      w.on('message', on);
      w.once('exit', () => resolve());
    });
    w.postMessage({ t: 'closeAll' } satisfies ToWorker);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([acked, new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
    // what was still under way ends as a failed session (the queue's stop() closed those connections already)
    this.thread.settleAll(w, 'the relay stopped during this delivery');
    await w.terminate();
  }
}
