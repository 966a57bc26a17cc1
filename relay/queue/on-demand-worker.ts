/**
 * A worker thread started on demand for calls that each get one answer (the delivery worker, the commit worker). It
 * keeps the lifecycle both need in one place:
 *  - started at the first call, and again at the next call after it died or was detached;
 *  - referenced only while calls are under way, so an idle relay (or a test) can exit;
 *  - when it ends with calls unanswered (it crashed, exited, was terminated), `lost` settles each of them, once.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';

export interface PendingCall<Ctx, Answer> {
  worker: Worker;
  ctx: Ctx;
  resolve: (answer: Answer) => void;
}

export interface OnDemandWorkerOptions<Ctx, Answer> {
  /** for messages: "the delivery worker" */
  name: string;
  entry: URL;
  workerData: unknown;
  /** the answer to call `id`, if this message from the worker is one */
  answerOf: (message: unknown) => { id: number; answer: Answer } | null;
  /**
   * These calls will get no answer: the worker ended (`crashed`; `reason` e.g. "the delivery worker exited (code 1)"),
   * or the caller settled them (settleAll, with its own reason).
   */
  lost: (calls: PendingCall<Ctx, Answer>[], reason: string, crashed: boolean) => void;
  log?: (line: string) => void;
}

export class OnDemandWorker<Ctx, Answer> {
  private worker: Worker | null = null;
  private readonly calls = new Map<number, PendingCall<Ctx, Answer>>();
  /** calls under way per worker; a worker leaves this map when its calls are settled for good */
  private readonly underWay = new Map<Worker, number>();
  private nextId = 1;

  constructor(private readonly o: OnDemandWorkerOptions<Ctx, Answer>) {}

  /** Sends `message` with a fresh `id` to the current worker (started if there is none); `answer` settles once. */
  call(message: object, ctx: Ctx, transfer: TransferListItem[] = []): { id: number; worker: Worker; answer: Promise<Answer> } {
    const w = this.start();
    const id = this.nextId++;
    const answer = new Promise<Answer>((resolve) => {
      const call = { worker: w, ctx, resolve };
      this.calls.set(id, call);
      this.underWay.set(w, (this.underWay.get(w) ?? 0) + 1);
      w.ref();
      try {
        w.postMessage({ ...message, id }, transfer);
      } catch (err) {
        // never sent (a value that cannot be cloned): settled at once, and the worker is not held for it
        this.calls.delete(id);
        this.answered(w);
        this.o.lost([call], `${this.o.name} was not sent the request (${(err as Error).message})`, false);
      }
    });
    return { id, worker: w, answer };
  }

  /** Calls still unanswered by `w`. */
  pendingOn(w: Worker): number {
    return this.underWay.get(w) ?? 0;
  }

  /**
   * Takes the current worker away (the next call starts another) and returns it, for the caller's orderly close;
   * null if none runs.
   */
  detach(): Worker | null {
    const w = this.worker;
    this.worker = null;
    return w;
  }

  /** Settles every call `w` still has through `lost`; later answers from `w` are ignored. Returns how many. */
  settleAll(w: Worker, reason: string, crashed = false): number {
    if (!this.underWay.has(w)) return 0;
    this.underWay.delete(w);
    const lost: PendingCall<Ctx, Answer>[] = [];
    for (const [id, c] of this.calls) {
      if (c.worker !== w) continue;
      this.calls.delete(id);
      lost.push(c);
    }
    if (lost.length > 0) this.o.lost(lost, reason, crashed);
    return lost.length;
  }

  /** @internal tests: the current worker dies as if it crashed (nothing is closed politely) */
  async kill(): Promise<void> {
    await this.worker?.terminate();
  }

  /** One call of `w` less under way; unreferenced when it has none. */
  private answered(w: Worker): void {
    const left = (this.underWay.get(w) ?? 1) - 1;
    if (left > 0) this.underWay.set(w, left);
    else {
      this.underWay.delete(w);
      w.unref();
    }
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.o.entry, { workerData: this.o.workerData });
    w.unref();
    w.on('message', (m: unknown) => {
      const a = this.o.answerOf(m);
      if (!a) return;
      const c = this.calls.get(a.id);
      if (!c || c.worker !== w) return;
      this.calls.delete(a.id);
      this.answered(w);
      c.resolve(a.answer);
    });
    const ended = (reason: string) => {
      if (this.worker === w) this.worker = null;
      this.settleAll(w, `${this.o.name} ${reason}`, true);
    };
    w.on('error', (err) => ended(`failed: ${err.message}`));
    w.on('exit', (code) => ended(`exited (code ${code})`));
    w.on('messageerror', (err) => this.o.log?.(`a message from ${this.o.name} could not be read: ${err.message}`));
    this.worker = w;
    return w;
  }
}
