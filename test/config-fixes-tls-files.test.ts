/**
 * A change to tls.certFile / tls.keyFile is checked when it is made: files that cannot be read, a certificate that is
 * not one, or a key that does not belong to it are refused by SIGHUP and by config.update, naming the key and the
 * file's error, and the last good config stays. A good change is accepted with the note that it takes effect at the
 * next start (as a changed listen address), and that start serves the new certificate.
 * Regression (failed before the fix): any path was accepted silently, the relay kept its old certificate, and the
 * next start failed on the file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Relay } from '../relay/relay.ts';
import { fingerprintOf, generateSelfSigned } from '../relay/tls/cert.ts';

const dirs: string[] = [];
const relays: Relay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

let pairA: { cert: string; key: string };
let pairB: { cert: string; key: string };
beforeAll(async () => {
  pairA = await generateSelfSigned('a.example');
  pairB = await generateSelfSigned('b.example');
});

async function start(): Promise<{ relay: Relay; dir: string; lines: string[] }> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rw-tls-')));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ dns: { servers: ['127.0.0.1:9'], timeoutMs: 200 } }));
  const lines: string[] = [];
  const relay = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', log: (l) => lines.push(l) });
  relays.push(relay);
  return { relay, dir, lines };
}

function editConfig(dir: string, tls: { certFile: string | null; keyFile: string | null }): void {
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  c.tls = tls;
  fs.writeFileSync(file, JSON.stringify(c));
}

describe('tls.certFile / tls.keyFile changed while the relay runs', () => {
  it('SIGHUP refuses files that cannot be loaded, naming the key and the error, and keeps the last good config', async () => {
    const { relay, dir } = await start();
    const before = relay.config.current;
    fs.writeFileSync(path.join(dir, 'a.crt'), pairA.cert);
    fs.writeFileSync(path.join(dir, 'a.key'), pairA.key);
    fs.writeFileSync(path.join(dir, 'b.key'), pairB.key);
    fs.mkdirSync(path.join(dir, 'adir'));

    const cases: [{ certFile: string; keyFile: string }, RegExp][] = [
      [{ certFile: 'missing.crt', keyFile: 'a.key' }, /tls\.certFile: cannot read the TLS certificate .*missing\.crt: ENOENT/],
      [{ certFile: 'a.crt', keyFile: 'missing.key' }, /tls\.keyFile: cannot read the TLS key .*missing\.key: ENOENT/],
      [{ certFile: 'a.crt', keyFile: 'adir' }, /tls\.keyFile: cannot read the TLS key .*adir: EISDIR/],
      [{ certFile: 'a.key', keyFile: 'a.key' }, /tls\.certFile: .*a\.key is not a PEM certificate/],
      [{ certFile: 'a.crt', keyFile: 'b.key' }, /tls\.keyFile: .*b\.key does not match .*a\.crt/],
    ];
    for (const [tls, message] of cases) {
      editConfig(dir, tls);
      const r = relay.reload();
      expect(r.ok, JSON.stringify(tls)).toBe(false);
      expect(!r.ok && r.error).toMatch(message);
      expect(relay.config.current).toBe(before);
    }
  });

  it('config.update refuses a key that does not match, with an issue at tls.keyFile, and leaves config.json as it was', async () => {
    const { relay, dir } = await start();
    fs.writeFileSync(path.join(dir, 'a.crt'), pairA.cert);
    fs.writeFileSync(path.join(dir, 'b.key'), pairB.key);
    const file = path.join(dir, 'config.json');
    const text = fs.readFileSync(file, 'utf8');
    const next = { ...structuredClone(relay.config.current), tls: { certFile: 'a.crt', keyFile: 'b.key' } };
    let err: unknown = null;
    try {
      relay.revisions.update(next, { by: 'admin', source: 'config.update' });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ data: { issues: [{ path: ['tls', 'keyFile'], message: expect.stringMatching(/does not match/) }] } });
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
    expect(relay.config.current.tls).toEqual({ certFile: null, keyFile: null });
  });

  it('a good change is accepted with the "takes effect at restart" note, and the next start serves the new certificate', async () => {
    const { relay, dir, lines } = await start();
    const oldFingerprint = relay.identity.fingerprint256;
    fs.writeFileSync(path.join(dir, 'a.crt'), pairA.cert);
    fs.writeFileSync(path.join(dir, 'a.key'), pairA.key);
    editConfig(dir, { certFile: 'a.crt', keyFile: 'a.key' });
    expect(relay.reload()).toMatchObject({ ok: true, changed: true });
    expect(relay.config.current.tls).toEqual({ certFile: 'a.crt', keyFile: 'a.key' });
    expect(lines.join('\n')).toMatch(/tls\.certFile.*takes effect when the relay restarts/);
    expect(relay.identity.fingerprint256).toBe(oldFingerprint);

    await relays.pop()!.stop();
    const again = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', log: () => {} });
    relays.push(again);
    expect(again.identity.fingerprint256).toBe(fingerprintOf(pairA.cert));
  });
});

describe('a relay started with a certificate file it cannot read', () => {
  it('Relay.start() rejects naming tls.certFile and the file error', async () => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rw-tls-')));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'a.key'), pairA.key);
    fs.writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({ dns: { servers: ['127.0.0.1:9'], timeoutMs: 200 }, tls: { certFile: 'gone.crt', keyFile: 'a.key' } }),
    );
    await expect(Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', log: () => {} })).rejects.toThrow(
      /^tls\.certFile: cannot read the TLS certificate .*gone\.crt: ENOENT/,
    );
  });
});
