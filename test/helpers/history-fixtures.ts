/**
 * A history whose events tie on `at` across page boundaries and whose ids run out of `at` order: the case a paged
 * scan in (at, id) order can get wrong. Call tiedHistories() at the top of a describe block; each history() made
 * through it is closed and its directory removed after its test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import type { RelayEvent } from '../../shared/events.ts';
import { EventHistory } from '../../relay/store/history.ts';

export const TIED_T = 1_800_000_000_000;
export const TIED_KINDS = ['connect', 'helo', 'mail', 'rcpt', 'accepted', 'delivered', 'disconnect', 'rejected', 'auth'];

export function tiedHistories(): () => { h: EventHistory; events: RelayEvent[] } {
  const made: { dir: string; h: EventHistory }[] = [];
  afterEach(() => {
    for (const m of made.splice(0)) {
      m.h.close();
      fs.rmSync(m.dir, { recursive: true, force: true });
    }
  });
  return () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-tied-'));
    const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), log: () => {} });
    made.push({ dir, h });
    const events: RelayEvent[] = [];
    for (let id = 1; id <= 3000; id++) {
      // runs of 25 events on one `at`; from id 2001 on the clock went back (ids rise, `at` drops to where ids 500 on
      // were), in runs of 13, so ids far apart share an `at` too
      const at = id <= 2000 ? TIED_T + Math.floor(id / 25) * 10 : TIED_T + 200 + Math.floor((id - 2000) / 13) * 10;
      events.push({ id, at, kind: TIED_KINDS[id % TIED_KINDS.length], sessionId: `s${id}`, ip: '192.0.2.1' } as RelayEvent);
    }
    h.load(events);
    return { h, events };
  };
}
