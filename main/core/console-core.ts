/**
 * The console's core as one object, and the single dispatcher through which the renderer reaches it.
 * Electron's IPC handler and the end-to-end tests' page binding both call `invoke(op, args)`; only the
 * operations in BRIDGE_OPS exist, every argument is validated here, and errors cross as plain data.
 */
import path from 'node:path';
import { BRIDGE_CHANNELS, BRIDGE_OPS, type BridgeChannel, type BridgeError, type BridgeOp, type ProfileSaveConnection, type ProfileSaved } from '../../shared/console-api.ts';
import { configErrorMap } from '../../shared/config.ts';
import { ErrorCode, JsonRpcRequest, Methods, POSITIONAL_PARAMS, RpcError, isMethodName, toIssues } from '../../shared/protocol.ts';
import { PinReplaceRefused, RelayConnection, type ConnectionOptions } from './connection.ts';
import { jsonFile } from './json-file.ts';
import { KnownHosts } from './known-hosts.ts';
import type { JsonFile, SecretStore } from './ports.ts';
import { ProfileError, Profiles } from './profiles.ts';
import { TransportError } from './rpc-client.ts';

export interface CoreOptions {
  secrets: SecretStore;
  /** where profiles.json and known-hosts.json live (Electron: app.getPath('userData')) */
  dataDir?: string;
  files?: { profiles: JsonFile<never>; knownHosts: JsonFile<never> };
  notify?: (title: string, body: string) => void;
  connection?: Partial<ConnectionOptions>;
}

export class BridgeFailure extends Error {
  constructor(readonly payload: BridgeError) {
    super(payload.message);
  }
}

export function toBridgeError(err: unknown): BridgeError {
  if (err instanceof RpcError) return { code: err.code, message: err.message, data: err.data };
  if (err instanceof TransportError) return { code: err.code, message: err.message };
  if (err instanceof ProfileError) return { code: 'invalid', message: err.message, data: { issues: err.issues } };
  if (err instanceof BridgeFailure) return err.payload;
  if (err instanceof PinReplaceRefused) return { code: err.code, message: err.message, data: { pinned: err.pinned, offered: err.offered } };
  return { code: 'error', message: (err as Error)?.message ?? String(err) };
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 500) throw new BridgeFailure({ code: 'invalid', message: `${what} must be a non-empty string` });
  return v;
};

/** the relay's answer to a request whose envelope is not JSON-RPC 2.0 (relay/manage/server.ts) */
const NOT_A_REQUEST = 'not a JSON-RPC 2.0 request: expected {"jsonrpc":"2.0","id":...,"method":"...","params":{...}}';

/** a SHA-256 fingerprint as Node and the relay print it: 32 hex bytes joined by colons */
const FINGERPRINT = /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/i;
const fingerprint = (v: unknown): string => {
  if (typeof v !== 'string' || !FINGERPRINT.test(v)) {
    throw new BridgeFailure({ code: 'invalid', message: 'fingerprint must be a SHA-256 fingerprint: 32 hex bytes joined by colons (AB:CD:...)' });
  }
  return v;
};

export class ConsoleCore {
  readonly profiles: Profiles;
  readonly knownHosts: KnownHosts;
  readonly connection: RelayConnection;
  private readonly notifyFn: (title: string, body: string) => void;

  constructor(opts: CoreOptions) {
    const files = opts.files ?? {
      profiles: jsonFile(path.join(opts.dataDir ?? '.', 'profiles.json')),
      knownHosts: jsonFile(path.join(opts.dataDir ?? '.', 'known-hosts.json')),
    };
    this.knownHosts = new KnownHosts(files.knownHosts as JsonFile<{ hosts: Record<string, never> }>);
    this.profiles = new Profiles(files.profiles as JsonFile<{ profiles: never[] }>, opts.secrets, this.knownHosts);
    this.connection = new RelayConnection({ profiles: this.profiles, knownHosts: this.knownHosts, ...opts.connection });
    this.notifyFn = opts.notify ?? (() => {});
  }

  /** Subscribe a push channel (state, events, stats, config). */
  on(channel: BridgeChannel, fn: (payload: unknown) => void): () => void {
    // the push channels are the connection's event kinds, one for one
    if (!(BRIDGE_CHANNELS as readonly string[]).includes(channel)) {
      throw new BridgeFailure({ code: 'invalid', message: `unknown channel ${String(channel)}` });
    }
    return this.connection.on(channel, fn);
  }

  /** The one entry point from the renderer. Resolves with plain data; rejects with BridgeFailure. */
  async invoke(op: string, args: unknown[]): Promise<unknown> {
    if (!(BRIDGE_OPS as readonly string[]).includes(op)) throw new BridgeFailure({ code: 'invalid', message: `unknown operation ${op}` });
    if (!Array.isArray(args) || args.length > 3) throw new BridgeFailure({ code: 'invalid', message: 'bad arguments' });
    try {
      return await this.dispatch(op as BridgeOp, args);
    } catch (err) {
      throw new BridgeFailure(toBridgeError(err));
    }
  }

  private async dispatch(op: BridgeOp, a: unknown[]): Promise<unknown> {
    switch (op) {
      case 'profiles.list':
        return this.profiles.list();
      case 'profiles.save': {
        const input = a[0] as { id?: unknown; token?: unknown } | null;
        const before = input && typeof input.id === 'string' ? this.profiles.get(input.id) : null;
        const saved = this.profiles.save(input);
        const after = before ? this.profiles.get(saved.id) : null;
        // the connection on this profile (refused, trying, stopped, or up) goes on with what was saved, now; the answer
        // says what it did, for the renderer's words (a new profile is nobody's connection yet)
        const connection: ProfileSaveConnection =
          before && after
            ? this.connection.profileChanged(saved.id, {
                address: before.host !== after.host || before.port !== after.port,
                tokenGiven: typeof input?.token === 'string' && input.token.trim() !== '',
                tokenChanged: before.token !== after.token,
              })
            : 'not-current';
        return { ...saved, connection } satisfies ProfileSaved;
      }
      case 'profiles.remove': {
        const id = str(a[0], 'id');
        if (this.connection.state.profileId === id) await this.connection.disconnect();
        return this.profiles.remove(id);
      }
      case 'profiles.storageWarning':
        return this.profiles.storageWarning();
      case 'connection.connect':
        return this.connection.connect(str(a[0], 'profile id'));
      case 'connection.disconnect':
        return this.connection.disconnect();
      case 'connection.acceptFingerprint':
        return this.connection.acceptFingerprint(str(a[0], 'profile id'), fingerprint(a[1]));
      case 'connection.forgetFingerprint': {
        const p = this.profiles.get(str(a[0], 'profile id'));
        if (!p) throw new BridgeFailure({ code: 'invalid', message: 'no such server profile' });
        this.knownHosts.forget(p.host, p.port);
        return undefined;
      }
      case 'connection.state':
        return this.connection.state;
      case 'call': {
        const method = str(a[0], 'method');
        // the core owns the login and the event stream; the renderer gets events through the 'events' channel
        if (!isMethodName(method) || method === 'auth.login' || method === 'events.subscribe' || method === 'events.unsubscribe') {
          throw new BridgeFailure({ code: -32601, message: `method ${method} is not available to the console view` });
        }
        // validated here with the relay's own schema and wording before anything is sent: a malformed call never
        // leaves the machine, and the renderer gets the error the relay would give (-32602 with the issues)
        const params = a[1] ?? {};
        // params by position (an array): -32602, as the relay answers them
        if (Array.isArray(params)) {
          throw new BridgeFailure({
            code: ErrorCode.InvalidParams,
            message: `invalid params for ${method}: params: ${POSITIONAL_PARAMS}`,
            data: { issues: [{ path: [], message: POSITIONAL_PARAMS, code: 'invalid_type' }] },
          });
        }
        // params that are not an object: the relay refuses the request itself (-32600), in these words
        const env = JsonRpcRequest.safeParse({ jsonrpc: '2.0', id: 0, method, params });
        if (!env.success) {
          throw new BridgeFailure({ code: ErrorCode.InvalidRequest, message: NOT_A_REQUEST, data: { issues: toIssues(env.error) } });
        }
        const spec = Methods[method];
        const parsed = spec.params.safeParse(params, { error: configErrorMap });
        if (!parsed.success) {
          const issues = toIssues(parsed.error, spec.params);
          const first = issues[0];
          const where = first ? `${first.path.join('.') || 'params'}: ${first.message}` : 'params';
          throw new BridgeFailure({ code: ErrorCode.InvalidParams, message: `invalid params for ${method}: ${where}`, data: { issues } });
        }
        // the params as the renderer gave them (the relay fills in the defaults itself, as for any client)
        return this.connection.call(method, params as never);
      }
      case 'notify':
        this.notifyFn(str(a[0], 'title').slice(0, 200), String(a[1] ?? '').slice(0, 1000));
        return undefined;
    }
  }
}
