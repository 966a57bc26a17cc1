/**
 * The live view's notice of a gap, in the real renderer (dist/renderer) in Chromium, bound to the real console core
 * and a real relay: after a reconnect whose backlog the relay cut (more than 10,000 events while the console was
 * away) the view says which events it does not show and where they are; a small reconnect adds no such notice, and a
 * switch to another relay takes it away with the old stream. Needs `npm run build:renderer` first, like test/e2e/.
 */
import { describe, expect, it } from 'vitest';
import type { ConnectionState } from '../shared/console-api.ts';
import type { RelayEvent } from '../shared/events.ts';
import { fmtTime } from '../renderer/src/components/format.ts';
import type { ManageRelay } from './helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, startRelay, unexpectedErrors, type ConsolePage } from './e2e/harness.ts';

/** how the notice names the times on either side of a gap (one time when both fall in the same second) */
const span = (a: number, b: number) => (fmtTime(a) === fmtTime(b) ? `at ${fmtTime(a)}` : `from ${fmtTime(a)} to ${fmtTime(b)}`);

function emit(relay: ManageRelay, n: number, ip: string): RelayEvent[] {
  const out: RelayEvent[] = [];
  for (let i = 0; i < n; i++) out.push(relay.relay.bus.emit({ kind: 'connect', sessionId: `view-gap-${ip}-${i}`, ip, port: 2000 + i }));
  return out;
}

describe.skipIf(!chromiumPath)('the live view after a reconnect whose backlog the relay cut (Chromium)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  consoleSuite({}, async (s) => {
    relay = s.relay;
    c = s.c;
    await addServerAndAccept(c.page, relay, { name: 'edge' });
  });

  it('names the events it does not show and where they are; a small reconnect adds nothing; another relay takes it away', async () => {
    const { page, core } = c;
    const profileId = core.connection.state.profileId!;
    await page.click('[data-view-id="live"]');
    const rowOf = (id: number) => page.locator(`[data-event-id="${id}"]`);
    const seen = emit(relay, 3, '127.0.0.20').at(-1)!;
    await rowOf(seen.id).waitFor({ timeout: 10_000 });

    // a small reconnect: caught up, no gap
    await core.invoke('connection.disconnect', []);
    const few = emit(relay, 5, '127.0.0.21');
    expect(((await core.invoke('connection.connect', [profileId])) as ConnectionState).status).toBe('connected');
    await page.locator('[data-testid="live-caught-up"]').waitFor({ timeout: 10_000 });
    await rowOf(few.at(-1)!.id).waitFor({ timeout: 10_000 });
    expect(await page.locator('[data-testid="live-gap"]').count()).toBe(0);

    // away while 10,500 events happen: the relay sends the newest 10,000
    await core.invoke('connection.disconnect', []);
    const last = few.at(-1)!;
    const away = emit(relay, 10_500, '127.0.0.22');
    expect(((await core.invoke('connection.connect', [profileId])) as ConnectionState).status).toBe('connected');
    const notice = page.locator('[data-testid="live-gap"]');
    await notice.waitFor({ timeout: 10_000 });
    expect(await notice.count()).toBe(1);
    const text = await notice.innerText();
    expect(text).toContain(`Events ${span(last.at, away[500]!.at)} are not shown here: more than 10,000 happened while the console was away`);
    expect(text).toContain("They stay in the relay's event history for 7 days");
    expect(await notice.getAttribute('title')).toBe(`500 events (ids #${last.id + 1} to #${away[499]!.id}) between the live view's event #${last.id} and #${away[500]!.id}.`);
    expect(await page.locator('[data-testid="live-caught-up"]').innerText()).toContain('10,000 caught up');

    // another relay: the notice goes with the old stream (its first backlog is small: nothing left out)
    const other = await startRelay();
    try {
      await addServerAndAccept(page, other, { name: 'other' });
      await page.click('[data-view-id="live"]');
      // (its ids are the old relay's too: the row is found by its address)
      emit(other, 2, '127.0.0.23');
      await page.locator('.live-row[data-ip="127.0.0.23"]').first().waitFor({ timeout: 10_000 });
      expect(await page.locator('[data-testid="live-gap"]').count()).toBe(0);
    } finally {
      await core.invoke('connection.disconnect', []);
      await other.stop();
    }
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
