/**
 * The console's connection core (main/core) against a relay of its own, for the connection tests: a relay in this
 * process on free loopback ports (stop() may be called by the test, to see what the console makes of it), and a
 * ConsoleCore on a fake clock (no automatic retry runs unless the test lets it), both cleaned up after each test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import type { ConnectionState, ProfileSaved } from '../../shared/console-api.ts';
import { ConsoleCore } from '../../main/core/console-core.ts';
import { memoryJson } from '../../main/core/json-file.ts';
import type { Timers } from '../../main/core/ports.ts';
import { Relay, type RelayOptions } from '../../relay/relay.ts';
import { testSecretStore } from '../e2e/harness.ts';
import { FakeClock } from './queue-clock.ts';

export class ConsoleClock extends FakeClock implements Timers {
  random = (): number => 0.5;
}

/** Call at the top of a test file: what it makes is cleaned up after each test (last made, first gone). */
export function consoleConnectionFixtures() {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A relay of the test's own (config.json as given), its manage port, certificate fingerprint and admin token. */
  async function ownRelay(config: object = {}, extra: Partial<RelayOptions> = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-conn-'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    let relay = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', manageListen: '127.0.0.1:0', log: () => {}, ...extra });
    const port = relay.manageAddress.port;
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await relay.stop();
    };
    /** the same relay started again (its data directory, its manage port): a restart as the console sees one */
    const restart = async () => {
      await stop();
      relay = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', manageListen: `127.0.0.1:${port}`, log: () => {}, ...extra });
      stopped = false;
      return relay;
    };
    cleanups.push(async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    return { relay: () => relay, stop, restart, port, fp: relay.identity.fingerprint256, token: fs.readFileSync(path.join(dir, 'admin-token'), 'utf8').trim() };
  }

  /** A console core with in-memory profiles and known hosts, short backoffs on a fake clock, its states recorded. */
  function newCore() {
    const clock = new ConsoleClock();
    const core = new ConsoleCore({
      secrets: testSecretStore(),
      files: { profiles: memoryJson() as never, knownHosts: memoryJson() as never },
      connection: { backoffBaseMs: 50, backoffMaxMs: 300, callTimeoutMs: 3000, timers: clock },
    });
    const states: ConnectionState[] = [];
    core.on('state', (s) => states.push(s as ConnectionState));
    cleanups.push(() => core.connection.disconnect());
    const save = async (p: Record<string, unknown>) => (await core.invoke('profiles.save', [p])) as ProfileSaved;
    return { core, clock, states, save, state: () => core.connection.state };
  }

  return { cleanups, ownRelay, newCore };
}
