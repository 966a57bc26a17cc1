/**
 * The bridge's `call` op validates a relay method's params in the console's main side, with the shared schema the
 * relay uses (shared/protocol.ts Methods[method].params), before anything is sent: the renderer gets the very error
 * the relay would give (-32602, its message, its issues; -32600 for params that are not an object), and the relay never
 * sees the call. The fingerprint argument
 * of connection.acceptFingerprint must look like a SHA-256 fingerprint.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ConnectionState } from '../shared/console-api.ts';
import { BridgeFailure, ConsoleCore } from '../main/core/console-core.ts';
import { memoryJson } from '../main/core/json-file.ts';
import { ErrorCode } from '../shared/protocol.ts';
import { testSecretStore } from './e2e/harness.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

const startRelay = manageRelayPerTest();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function newCore(): ConsoleCore {
  const core = new ConsoleCore({ secrets: testSecretStore(), files: { profiles: memoryJson() as never, knownHosts: memoryJson() as never } });
  cleanups.push(() => core.connection.disconnect());
  return core;
}

/** bad params for admin and viewer methods, each refused by the relay: by the method's schema (-32602), or, params that are not an object, as a request (-32600) */
const BAD: Array<[string, unknown]> = [
  ['config.get', { extra: 1 }],
  ['audit.list', { limit: 1.5 }],
  ['audit.list', { limit: 'ten' }],
  ['queue.delete', { id: 5 }],
  ['queue.delete', {}],
  ['clients.trust', { ip: 'not an ip', group: 'Trusted' }],
  ['config.update', { baseRevision: 1, config: { limits: { messagesPerHour: { max: 1.5 } } } }],
  ['tokens.create', { name: '', role: 'root' }],
  ['stats.get', 'a string'],
  ['stats.get', [1, 2]],
];

describe('the bridge validates call params with the shared schema before sending', () => {
  it('answers exactly what the relay answers (-32602, message, issues), and the relay never sees the call', async () => {
    const relay = await startRelay();
    const core = newCore();
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: relay.managePort, token: relay.adminToken }])) as { id: string };
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, relay.fingerprint])) as ConnectionState).status).toBe('connected');
    const direct = await relay.admin();
    const sent = vi.spyOn(core.connection, 'call');
    let audited = 0;
    for (const [method, params] of BAD) {
      // what the relay itself answers to this call, from a client of its own
      const auditBefore = relay.auditLines().length;
      const relayErr = await direct.callError(method, params);
      expect([ErrorCode.InvalidParams, ErrorCode.InvalidRequest], `${method} ${JSON.stringify(params)}: the relay refuses it`).toContain(relayErr.code);
      const auditAfterRelay = relay.auditLines().length;
      const err = (await core.invoke('call', [method, params]).catch((e: unknown) => e)) as BridgeFailure;
      expect(err, `${method} ${JSON.stringify(params)}`).toBeInstanceOf(BridgeFailure);
      expect(err.payload, `${method} ${JSON.stringify(params)}`).toEqual({ code: relayErr.code, message: relayErr.message, data: relayErr.data });
      // nothing reached the relay: the connection was not asked, and the relay's audit log (which records refused
      // admin calls too) did not grow
      expect(sent).not.toHaveBeenCalled();
      expect(relay.auditLines().length).toBe(auditAfterRelay);
      if (auditAfterRelay > auditBefore) audited++;
    }
    // (the audit check can see a call: the relay logged the refused admin calls it was sent directly)
    expect(audited).toBeGreaterThanOrEqual(4);
    // valid params go through, as the renderer gave them (the relay fills in defaults)
    await expect(core.invoke('call', ['audit.list', {}])).resolves.toMatchObject({ entries: expect.any(Array) });
    expect(sent).toHaveBeenCalledWith('audit.list', {});
    await expect(core.invoke('call', ['stats.get'])).resolves.toMatchObject({ lastEventId: expect.any(Number) });
  });

  it('validates before the connection state: malformed params get -32602 even while not connected', async () => {
    const core = newCore();
    await expect(core.invoke('call', ['audit.list', { limit: 0 }])).rejects.toMatchObject({ payload: { code: ErrorCode.InvalidParams, data: { issues: [{ path: ['limit'] }] } } });
    // well-formed: the connection's own answer
    await expect(core.invoke('call', ['audit.list', { limit: 5 }])).rejects.toMatchObject({ payload: { code: 'closed' } });
  });

  it('refuses a fingerprint argument that is not a SHA-256 fingerprint, before looking at the profile', async () => {
    const core = newCore();
    const p = (await core.invoke('profiles.save', [{ name: 'edge', host: '127.0.0.1', port: 9, token: 't' }])) as { id: string };
    const good = 'AB:'.repeat(31) + 'CD';
    for (const bad of ['yes', 'AB'.repeat(32), good.slice(3), `${good}:EF`, `${good}\n`, good.replace('AB', 'G1'), 42, null]) {
      await expect(core.invoke('connection.acceptFingerprint', [p.id, bad]), String(bad)).rejects.toMatchObject({
        payload: { code: 'invalid', message: expect.stringMatching(/SHA-256 fingerprint/) },
      });
    }
    expect(core.connection.state.status).toBe('disconnected');
  });
});
