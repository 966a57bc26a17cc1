/**
 * A relay whose queue cannot start (its spool's tmp/ is a file: a structural fault, which a test running as root
 * cannot get round as it can chmod) does not start: Relay.start() rejects with an error that says the queue could not
 * start, where, and why, and leaves nothing of its own open (the event history's SQLite file, the spool). Once the
 * fault is fixed, the relay starts on the same data directory. (The CLI's exit on this error: test/cli.test.ts.)
 * Regression (failed before the fix): the failed start left the event history open, and its error was only the
 * bare file-system message.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Relay } from '../relay/relay.ts';

const dirs: string[] = [];
const relays: Relay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** What this process holds open inside `dir` (its descriptors, worker threads' included). */
function openIn(dir: string): string[] {
  const held: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target === dir || target.startsWith(dir + path.sep)) held.push(path.relative(dir, target) || '.');
    } catch {
      // closed between the listing and the readlink (the listing's own descriptor)
    }
  }
  return held.sort();
}

describe('a relay whose queue cannot start', () => {
  it('Relay.start() rejects saying so, leaves nothing open, and starts once the fault is fixed', async () => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rw-boot-')));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ dns: { servers: ['127.0.0.1:9'], timeoutMs: 200 } }));
    fs.mkdirSync(path.join(dir, 'spool'));
    fs.writeFileSync(path.join(dir, 'spool', 'tmp'), 'in the way');
    const options = { dataDir: dir, smtpListen: '127.0.0.1:0', log: () => {} };

    const err = await Relay.start(options).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(openIn(dir)).toEqual([]);
    expect(err!.message).toMatch(/queue/);
    expect(err!.message).toContain(path.join(dir, 'spool'));
    // the cause, as the file system gave it
    expect(err!.message).toContain('EEXIST');
    expect((err!.cause as NodeJS.ErrnoException | undefined)?.code).toBe('EEXIST');

    fs.rmSync(path.join(dir, 'spool', 'tmp'));
    const relay = await Relay.start(options);
    relays.push(relay);
    expect(relay.queue.size).toBe(0);
    expect(fs.statSync(path.join(dir, 'spool', 'tmp')).isDirectory()).toBe(true);
  });
});

describe('a relay given a listen address it cannot parse', () => {
  for (const [what, options] of [
    ['smtp.listen', { smtpListen: 'not an address:x' }],
    ['manage.listen', { smtpListen: '127.0.0.1:0', manageListen: '127.0.0.1:99999' }],
  ] as const) {
    it(`${what}: Relay.start() rejects naming it, before the queue starts, and leaves nothing open`, async () => {
      const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rw-boot-')));
      dirs.push(dir);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ dns: { servers: ['127.0.0.1:9'], timeoutMs: 200 } }));
      const err = await Relay.start({ dataDir: dir, log: () => {}, ...options }).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(new RegExp(`^${what.replace('.', '\\.')} `));
      // before the fix the queue had started and the event history stayed open (history.sqlite and its -wal, -shm)
      expect(openIn(dir)).toEqual([]);
    });
  }
});
