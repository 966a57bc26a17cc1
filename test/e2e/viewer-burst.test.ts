/**
 * A viewer token sees everything and changes nothing, and the disabled controls say why; the live table under a
 * burst of 5,000 events a second (pushed through the same bridge channel the core uses) keeps answering clicks (the
 * rows hold still while the pointer is on them, counting what arrives), keeps the DOM small (virtualised), and Pause
 * keeps counting what arrives.
 */
import { describe, expect, it } from 'vitest';
import { sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { syntheticEvents } from './synthetic.ts';
import { addServerAndAccept, attrs, chromiumPath, consoleSuite, unexpectedErrors, type ConsolePage } from './harness.ts';

describe.skipIf(!chromiumPath)('console: viewer token and a 5,000 events/s burst (Chromium)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;

  consoleSuite({}, async (s) => {
    ({ relay, c } = s);
    const viewerToken = relay.relay.tokens.create('ops-viewer', 'viewer');
    await addServerAndAccept(c.page, relay, { name: 'Edge (viewer)', token: viewerToken });
  });

  it('a viewer sees the traffic, and every control that would change the relay is disabled and says why', async () => {
    const { page } = c;
    expect(await page.locator('.statusbar').textContent()).toMatch(/ops-viewer · viewer/);
    // a rejection: relaying for an outsider
    const r = await sendMail(relay.port, { from: 'x@example.org', to: ['someone@elsewhere.example'], localAddress: '127.0.0.9' });
    expect(r.rcpts[0]?.code).toBe(554);
    await page.keyboard.press('Control+3');
    const row = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.9"]').first();
    await row.waitFor({ timeout: 10_000 });
    const trust = row.locator('[data-action="trust"]');
    expect(await trust.isDisabled()).toBe(true);
    expect(await trust.getAttribute('data-disabled-reason')).toMatch(/viewer token.*change nothing/);
    // the reason is the tooltip and is read with the button
    expect(await row.locator('.disabled-wrap').getAttribute('title')).toMatch(/viewer token/);
    const describedBy = await trust.getAttribute('aria-describedby');
    expect(await page.locator(`[id="${describedBy}"]`).textContent()).toMatch(/viewer token/);
    // "Everything from this IP" only reads, so it stays enabled
    await row.hover();
    await row.locator('[data-action="only-ip"]').hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.locator('[data-action="only-ip"]').click();
    expect(await page.locator('input[aria-label="Filter by IP address"]').inputValue()).toBe('127.0.0.9');
    await page.getByRole('button', { name: 'Clear filters' }).click();

    // the other views say why too
    for (const key of ['4', '5']) {
      await page.keyboard.press(`Control+${key}`);
      await page.locator('.disabled-reason').first().waitFor({ timeout: 10_000 });
      expect(await page.locator('.disabled-reason').first().textContent()).toMatch(/viewer token/);
      const reasons = await attrs(page.locator('[data-disabled-reason]'), 'data-disabled-reason');
      expect(reasons.length).toBeGreaterThan(0);
      expect(reasons.some((x) => /viewer/.test(x ?? ''))).toBe(true);
    }
  });

  it('keeps answering clicks under 5,000 events/s, with a small DOM, and Pause counts what keeps arriving', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    let id = 10_000_000;
    let running = true;
    // 500 events every 100 ms, the way the relay batches them (events.batch at most every 100 ms)
    const burst = (async () => {
      const t0 = Date.now();
      let sent = 0;
      while (running && Date.now() - t0 < 30_000) {
        const batch = syntheticEvents(id, 500);
        id += 500;
        sent += 500;
        void c.push('events', { events: batch });
        const due = t0 + (sent / 5000) * 1000;
        await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
      }
      return sent;
    })();
    try {
      await page.locator('.live-row').nth(10).waitFor({ timeout: 10_000 });
      await page.waitForTimeout(1500);
      // clicks on rows open their sessions while the stream runs: the rows hold still under the pointer
      for (let k = 0; k < 3; k++) {
        await page.hover('[data-testid="live-scroll"]', { position: { x: 150, y: 200 } });
        await page.locator('[data-testid="hold-state"]').waitFor({ timeout: 5000 });
        const target = page.locator('.live-row').nth(2 + k);
        const eid = await target.getAttribute('data-event-id');
        await target.click({ timeout: 5000 });
        await page.locator('[data-testid="session-panel"]').waitFor({ timeout: 5000 });
        expect(await page.locator('.session-events li.is-selected').count()).toBe(1);
        expect(eid).toBeTruthy();
        await page.getByRole('button', { name: 'Close the session detail' }).click({ timeout: 5000 });
      }
      // virtualised: only the visible rows exist
      expect(await page.locator('.live-row').count()).toBeLessThan(120);
      // Space pauses; ingestion continues and is counted
      await page.locator('.live-head').click();
      await page.keyboard.press('Space');
      await page.locator('[data-testid="new-count"]').waitFor({ timeout: 5000 });
      const n1 = Number((await page.locator('[data-testid="new-count"]').textContent())!.replace(/\D/g, ''));
      await page.waitForTimeout(600);
      const n2 = Number((await page.locator('[data-testid="new-count"]').textContent())!.replace(/\D/g, ''));
      expect(n2).toBeGreaterThan(n1);
      const firstWhilePaused = await page.locator('.live-row').first().getAttribute('data-event-id');
      await page.waitForTimeout(300);
      expect(await page.locator('.live-row').first().getAttribute('data-event-id')).toBe(firstWhilePaused);
      await page.keyboard.press('Control+p');
      await page.locator('[data-testid="new-count"]').waitFor({ state: 'detached', timeout: 5000 });
    } finally {
      running = false;
    }
    const sent = await burst;
    expect(sent).toBeGreaterThan(5000);
    // the store holds at most its cap and received everything
    const held = await page.locator('[data-testid="live-counts"]').textContent();
    expect(held).toMatch(/held \(max 50,000\)/);
    expect(unexpectedErrors(c.errors)).toEqual([]);
  }, 60_000);
});
