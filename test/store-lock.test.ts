/**
 * The relay and a command write config.json / tokens.json at the same moment: each holds FILE.lock from its read to
 * its rename (relay/store/file-lock.ts), so no change of either is lost. A second tryout wrote from a console every
 * 20 ms while running `user remove` five times: one removed user survived (and relayed) and acknowledged console
 * changes vanished, though each writer read the file again just before writing. Here a child process stands for the
 * command line, writing as fast as it can, while this process (the relay's store) writes too.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigStore } from '../relay/store/config-store.ts';
import { TokenStore } from '../relay/store/tokens.ts';
import { withFileLock } from '../relay/store/file-lock.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-lock-'));
  dirs.push(d);
  return d;
}

/** the other writer, started; resolves when it has made its n changes */
function otherWriter(dir: string, what: 'config' | 'tokens', n: number, prefix: string): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/store-writer.ts', dir, what, String(n), prefix], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 && out.includes('done') ? resolve() : reject(new Error(`writer exited ${code}: ${out}`))));
  });
}

/** this process's writes, one per turn of the event loop, until the other writer is done (at least `min`) */
async function writeUntil(done: Promise<void>, min: number, write: (i: number) => void): Promise<number> {
  let finished = false;
  void done.then(() => (finished = true), () => (finished = true));
  let i = 0;
  while (!finished || i < min) {
    write(i++);
    await new Promise((r) => setImmediate(r));
  }
  await done;
  return i;
}

describe('two processes writing one file', () => {
  it('config.json: every change of both is there', { timeout: 60_000 }, async () => {
    const dir = dataDir();
    const relay = ConfigStore.open(dir).store;
    const n = 60;
    const other = otherWriter(dir, 'config', n, 'cli');
    const mine = await writeUntil(other, 60, (i) => relay.modify((d) => void (d.groups['Trusted'] = [...(d.groups['Trusted'] ?? []), { address: `10.1.${i >> 8}.${i & 255}` }]), { by: 'console', source: 'groups.addEntry' }));
    relay.reload();
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(Object.keys(onDisk.users).filter((u) => u.startsWith('cli'))).toHaveLength(n);
    expect(onDisk.groups.Trusted).toHaveLength(mine);
    expect(Object.keys(relay.current.users)).toHaveLength(n);
    expect(relay.current.groups['Trusted']).toHaveLength(mine);
    expect(fs.existsSync(path.join(dir, 'config.json.lock'))).toBe(false);
  });

  it('tokens.json: every token of both is there', { timeout: 60_000 }, async () => {
    const dir = dataDir();
    const relay = TokenStore.open(dir);
    const n = 60;
    const other = otherWriter(dir, 'tokens', n, 'cli');
    const mine = await writeUntil(other, 60, (i) => void relay.create(`console${i}`, 'viewer'));
    const names = TokenStore.open(dir).list().map((t) => t.name);
    expect(names.filter((x) => x.startsWith('cli'))).toHaveLength(n);
    expect(names.filter((x) => x.startsWith('console'))).toHaveLength(mine);
  });

  it('a lock left by a writer that died is taken over; one held by a live process is waited for, then refused in words', () => {
    const dir = dataDir();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(`${file}.lock`, '999999999\n'); // no such process
    expect(withFileLock(file, () => 'ran')).toBe('ran');
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
    fs.writeFileSync(`${file}.lock`, `${process.ppid}\n`); // alive, and not us
    expect(() => withFileLock(file, () => 'ran', 50)).toThrow(`${file} is being changed by another program (pid ${process.ppid} holds ${file}.lock); try again in a moment`);
    fs.rmSync(`${file}.lock`);
  });
});
