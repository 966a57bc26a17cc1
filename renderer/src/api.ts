/**
 * window.api: the console's typed API, built on the narrow bridge the preload exposes
 * (window.rwBridge: invoke an allow-listed operation, subscribe a push channel). In the end-to-end tests
 * the same bridge is provided by the test (page.exposeBinding), bound to the same core.
 */
import type { BridgeChannel, BridgeError, BridgeOp, ConsoleApi, Unsubscribe } from '../../shared/console-api.ts';

export interface Bridge {
  invoke(op: BridgeOp, ...args: unknown[]): Promise<unknown>;
  subscribe(channel: BridgeChannel, cb: (payload: unknown) => void): Unsubscribe;
}

declare global {
  interface Window {
    rwBridge?: Bridge;
  }
}

/** An error from the relay or the core, with the relay's code (e.g. 4009 conflict, -32602 invalid params). */
export class ApiError extends Error {
  readonly code: number | string;
  readonly data: unknown;
  constructor(e: BridgeError) {
    super(e.message);
    this.code = e.code;
    this.data = e.data;
  }
}

export function makeConsoleApi(bridge: Bridge): ConsoleApi {
  const inv = async <T>(op: BridgeOp, ...args: unknown[]): Promise<T> => {
    try {
      return (await bridge.invoke(op, ...args)) as T;
    } catch (err) {
      const e = err as Partial<BridgeError> & { message?: string };
      // Electron prefixes IPC errors with "Error invoking remote method ...: "; the payload is JSON after it
      const m = /(\{.*\})\s*$/.exec(e.message ?? '');
      if (m) {
        try {
          throw new ApiError(JSON.parse(m[1]!) as BridgeError);
        } catch (inner) {
          if (inner instanceof ApiError) throw inner;
        }
      }
      throw new ApiError({ code: e.code ?? 'error', message: e.message ?? String(err), data: e.data });
    }
  };
  return {
    profiles: {
      list: () => inv('profiles.list'),
      save: (input) => inv('profiles.save', input),
      remove: (id) => inv('profiles.remove', id),
      storageWarning: () => inv('profiles.storageWarning'),
    },
    connection: {
      connect: (id) => inv('connection.connect', id),
      disconnect: () => inv('connection.disconnect'),
      acceptFingerprint: (id, fp) => inv('connection.acceptFingerprint', id, fp),
      forgetFingerprint: (id) => inv('connection.forgetFingerprint', id),
      state: () => inv('connection.state'),
      onState: (cb) => bridge.subscribe('state', cb as (p: unknown) => void),
    },
    call: (method, params) => inv('call', method, params),
    onEvents: (cb) => bridge.subscribe('events', cb as (p: unknown) => void),
    onStats: (cb) => bridge.subscribe('stats', cb as (p: unknown) => void),
    onConfigChanged: (cb) => bridge.subscribe('config', cb as (p: unknown) => void),
    notify: (title, body) => inv('notify', title, body),
  };
}

let api: ConsoleApi | null = null;

export function getApi(): ConsoleApi {
  if (!api) {
    // globalThis is the page's window; read without the DOM's types, so that plain-Node tests of the modules that
    // import this one (hooks.ts's pure helpers) type-check too
    const bridge = (globalThis as { rwBridge?: Bridge }).rwBridge;
    if (!bridge) throw new Error('The console bridge is missing: this page must run inside the Relay Warden app.');
    api = makeConsoleApi(bridge);
  }
  return api;
}
