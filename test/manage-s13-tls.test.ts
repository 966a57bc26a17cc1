/**
 * The management port's TLS listener against idle and hostile connections (hostile-client tryout s13, findings 4, 11
 * and 14): a short handshake timeout, the upgrade soon after it, a cap on connections not logged in (per address, and
 * overall with the oldest making room), a log line (at most one a minute per kind) when a cap refuses one, WebSocket
 * upgrades with an Origin header (a browser page) refused, and TLS 1.2 with AEAD suites only.
 */
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { manageRelayPerTest } from './helpers/wss-client.ts';

const startRelay = manageRelayPerTest();

const openedAt = new WeakMap<net.Socket, { at: number; gone: Promise<number> }>();

/** track a socket from its creation: when it opened, and when it closed */
function track<S extends net.Socket>(s: S): S {
  const at = Date.now();
  openedAt.set(s, { at, gone: new Promise((resolve) => s.once('close', () => resolve(Date.now()))) });
  return s;
}

/** resolves with how long the socket stayed open (ms), or null when it is still open `withinMs` from now */
async function closedWithin(socket: net.Socket, withinMs: number): Promise<number | null> {
  const o = openedAt.get(socket)!;
  const gone = await Promise.race([o.gone, new Promise<null>((r) => setTimeout(() => r(null), withinMs))]);
  return gone === null ? null : gone - o.at;
}

function rawConnect(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = track(net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s)));
    s.on('error', () => {});
    s.once('error', reject);
  });
}

function tlsConnect(port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = track(tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...opts }, () => resolve(s)));
    s.once('error', reject);
  });
}

describe('idle connections', () => {
  it('a TCP connection that sends no TLS handshake is closed after the handshake timeout (not Node’s 120 s)', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { tlsHandshakeTimeoutMs: 500 } } });
    const s = await rawConnect(t.managePort);
    const after = await closedWithin(s, 4000);
    expect(after).not.toBeNull();
    expect(after!).toBeGreaterThanOrEqual(400);
  });

  it('a TLS connection that never upgrades to a WebSocket is closed after the upgrade timeout', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { upgradeTimeoutMs: 500 } } });
    const s = await tlsConnect(t.managePort);
    s.on('error', () => {});
    expect(await closedWithin(s, 4000)).not.toBeNull();
  });

  it('one address holds at most maxConnectionsPerIp connections not logged in; the next are closed at once, and a line is logged (once, not per refusal)', async () => {
    const lines: string[] = [];
    const t = await startRelay({}, { relay: { log: (l: string) => lines.push(l), manageLimits: { maxConnectionsPerIp: 4 } } });
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await rawConnect(t.managePort, '127.0.0.82'));
    const extra = [];
    for (let i = 0; i < 5; i++) extra.push(await rawConnect(t.managePort, '127.0.0.82'));
    const closed = await Promise.all(extra.map((s) => closedWithin(s, 2000)));
    expect(closed.every((c) => c !== null)).toBe(true);
    expect(await closedWithin(held[0]!, 300)).toBeNull();
    const refusals = lines.filter((l) => l.includes('refused a connection from 127.0.0.82'));
    expect(refusals).toHaveLength(1);
    // another address is not affected; a logged-in session leaves the count
    const admin = await t.admin();
    expect((await admin.call('config.get', {})).revision).toBeGreaterThan(0);
    for (const s of held) s.destroy();
  });

  it('connections that never log in cannot fill the port: past maxPendingConnections the oldest makes room, and an admin gets in', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { maxPendingConnections: 6, maxConnectionsPerIp: 3, tlsHandshakeTimeoutMs: 60_000 } } });
    const idle: net.Socket[] = [];
    for (let i = 0; i < 12; i++) idle.push(await rawConnect(t.managePort, `127.0.0.${83 + (i % 4)}`));
    const gone = await Promise.all(idle.map((s) => closedWithin(s, 500)));
    // the 6 oldest were closed for the 6 newer ones
    expect(gone.slice(0, 6).every((g) => g !== null)).toBe(true);
    expect(gone.slice(6).every((g) => g === null)).toBe(true);
    const admin = await t.admin();
    expect((await admin.call('config.get', {})).revision).toBeGreaterThan(0);
    for (const s of idle) s.destroy();
  });
});

describe('browsers', () => {
  it('a WebSocket upgrade with an Origin header is refused (403); without one it is served', async () => {
    const t = await startRelay();
    for (const origin of ['https://evil.example.com', 'null']) {
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`wss://127.0.0.1:${t.managePort}/`, { rejectUnauthorized: false, origin });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => {
          ws.terminate();
          reject(new Error(`opened with Origin ${origin}`));
        });
        ws.on('error', () => {});
      });
      expect(status).toBe(403);
    }
    const admin = await t.admin();
    expect((await admin.call('config.get', {})).revision).toBeGreaterThan(0);
  });
});

describe('TLS', () => {
  it('TLS 1.2 offers AEAD suites only (no CBC, no SHA-1); TLS 1.3 is as it was', async () => {
    const t = await startRelay();
    for (const cipher of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-SHA256']) {
      await expect(tlsConnect(t.managePort, { maxVersion: 'TLSv1.2', ciphers: cipher }), cipher).rejects.toThrow();
    }
    for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
      const s = await tlsConnect(t.managePort, { maxVersion: 'TLSv1.2', ciphers: cipher });
      expect(s.getCipher().standardName).toBeTruthy();
      expect(s.getProtocol()).toBe('TLSv1.2');
      s.destroy();
    }
    const s13 = await tlsConnect(t.managePort, { minVersion: 'TLSv1.3' });
    expect(s13.getProtocol()).toBe('TLSv1.3');
    s13.destroy();
  });
});
