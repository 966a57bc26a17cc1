/**
 * JSON-RPC 2.0 client over one WebSocket, typed by the shared protocol, with a timeout on every call.
 */
import type WebSocket from 'ws';
import { realTimers, type Timers } from './ports.ts';
import { type MethodName, type NotificationName, type NotificationParams, type Params, type Result, RpcError } from '../../shared/protocol.ts';

/** The call did not reach an answer: the connection closed, or the relay did not answer in time. */
export class TransportError extends Error {
  constructor(
    readonly code: 'closed' | 'timeout',
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: unknown; method: string };

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<(p: unknown) => void>>();
  closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly timeoutMs = 15_000,
    /** the call timeouts run on these (the connection's, so a test's fake clock drives them too) */
    private readonly timers: Pick<Timers, 'setTimeout' | 'clearTimeout'> = realTimers,
  ) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let msg: { id?: number; result?: unknown; error?: { code: number; message: string; data?: unknown }; method?: string; params?: unknown };
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (msg.method !== undefined && msg.id === undefined) {
        for (const h of this.handlers.get(msg.method) ?? []) h(msg.params);
        return;
      }
      const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
      if (!p) return;
      this.pending.delete(msg.id!);
      this.timers.clearTimeout(p.timer);
      if (msg.error) p.reject(new RpcError(msg.error.code, msg.error.message, msg.error.data));
      else p.resolve(msg.result);
    });
    // a socket error after the open must never be unhandled (it would crash the main process); the close that
    // follows it is what the connection reacts to
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.closed = true;
      const why = reason.toString() || `connection closed (${code})`;
      for (const [id, p] of this.pending) {
        this.timers.clearTimeout(p.timer);
        p.reject(new TransportError('closed', `${p.method}: ${why}`));
        this.pending.delete(id);
      }
    });
  }

  call<M extends MethodName>(method: M, params: Params<M>, timeoutMs = this.timeoutMs): Promise<Result<M>> {
    if (this.closed) return Promise.reject(new TransportError('closed', 'not connected to the relay'));
    const id = this.nextId++;
    return new Promise<Result<M>>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(id);
        reject(new TransportError('timeout', `the relay did not answer ${method} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, method });
      this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  on<N extends NotificationName>(method: N, fn: (p: NotificationParams<N>) => void): () => void {
    let set = this.handlers.get(method);
    if (!set) this.handlers.set(method, (set = new Set()));
    set.add(fn as (p: unknown) => void);
    return () => set!.delete(fn as (p: unknown) => void);
  }

  close(code = 1000): void {
    this.closed = true;
    try {
      this.ws.close(code);
    } catch {
      // already closed
    }
  }
}
