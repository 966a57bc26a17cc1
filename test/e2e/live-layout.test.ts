/**
 * Live traffic, Clients and Queue fit the window from 1024x640 up (Chromium, real relay, real traffic): with a
 * session's detail open the summary column keeps a readable width and the row's Trust button is inside the table
 * (at 1024 the summary was 38 px, "Mess", and the buttons were cut off; at 1280 the hovered row read "Relay ..."),
 * the detail panel stays in the window, and the Queue's Delete and the Clients' Trust buttons are on screen and whole.
 * Geometry, not timing: the boxes the browser laid out. Screenshots at 1024x640, 1280x800 and 1440x900.
 */
import { describe, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, screenshotPath, unexpectedErrors, type ConsolePage } from './harness.ts';

const SIZES = [
  { width: 1024, height: 640 },
  { width: 1280, height: 800 },
  { width: 1440, height: 900 },
] as const;

async function box(l: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  const b = await l.boundingBox();
  if (!b) throw new Error('not laid out');
  return b;
}

/** an element is inside another's box (to the half pixel) */
async function expectInside(inner: Locator, outer: Locator, what: string): Promise<void> {
  const i = await box(inner);
  const o = await box(outer);
  expect({ what, left: i.x >= o.x - 0.5, right: i.x + i.width <= o.x + o.width + 0.5, width: i.width > 0 }).toEqual({ what, left: true, right: true, width: true });
}

/** a button shows all of its label (nothing cut by its own box) */
/** a table fits its box: no part of it scrolled out of sight */
async function expectFits(wrap: Locator, what: string): Promise<void> {
  const { scroll, client } = await wrap.evaluate((el) => ({ scroll: (el as unknown as { scrollWidth: number }).scrollWidth, client: (el as unknown as { clientWidth: number }).clientWidth }));
  expect({ what, fits: scroll <= client + 1, scroll }).toEqual({ what, fits: true, scroll });
}

async function expectWhole(button: Locator): Promise<void> {
  const { scroll, client } = await button.evaluate((el) => ({ scroll: (el as unknown as { scrollWidth: number }).scrollWidth, client: (el as unknown as { clientWidth: number }).clientWidth }));
  expect(scroll).toBeLessThanOrEqual(client + 1);
}

describe.skipIf(!chromiumPath)('console: Live traffic, Clients and Queue from 1024x640 up (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;

  consoleSuite({ config: { limits: { messagesPerHour: { mode: 'enforce', max: 1 } } }, page: { viewport: { width: 1440, height: 900 } } }, async (s) => {
    ({ relay, c } = s);
    c.page.setDefaultTimeout(10_000);
    await addServerAndAccept(c.page, relay);
    // relaying refused (a long reply), a client over its hourly limit, and mail waiting in the queue (its server is down)
    await sendMail(relay.port, { from: 'me@example.org', to: ['someone@elsewhere.test'], localAddress: '127.0.0.4' });
    for (let i = 0; i < 2; i++) await sendMail(relay.port, { from: 'sales@example.org', to: ['alice@example.com'], localAddress: '127.0.0.31' });
    for (const ip of ['127.0.0.40', '127.0.0.41']) await sendMail(relay.port, { from: 'a-rather-long-sender-name@example.org', to: ['bob@example.com', 'alice@example.com'], localAddress: ip });
  });

  const liveChecks = async (page: Page, size: (typeof SIZES)[number]) => {
    await page.setViewportSize(size);
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    await page.locator('.live-toolbar').getByLabel('Rejections only').check();
    const relayRow = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.4"]').first();
    const rateRow = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.31"]').first();
    await relayRow.waitFor();
    await rateRow.waitFor();
    // the detail open
    if ((await page.locator('[data-testid="session-panel"]').count()) === 0) await rateRow.click();
    const panel = page.locator('[data-testid="session-panel"]');
    await panel.waitFor();
    const table = page.locator('.live-table');
    // hover the other rejected row: its secondary action must not eat the summary
    await relayRow.hover();
    for (const row of [rateRow, relayRow]) {
      const summary = await box(row.locator('.summary-text'));
      expect({ size: size.width, summaryWidth: summary.width >= 120 }).toEqual({ size: size.width, summaryWidth: true });
      const trust = row.locator('[data-action="trust"]');
      await expectInside(trust, table, `Trust button at ${size.width}`);
      await expectWhole(trust);
    }
    // the hovered row's "Everything from this IP" is either hidden or whole and inside the table
    const secondary = relayRow.locator('[data-action="only-ip"]');
    if (await secondary.isVisible()) {
      await expectInside(secondary, table, `Everything from this IP at ${size.width}`);
      await expectWhole(secondary);
    }
    // the panel is in the window, and its trust controls are whole
    const p = await box(panel);
    expect(p.x + p.width).toBeLessThanOrEqual(size.width + 0.5);
    expect(p.y + p.height).toBeLessThanOrEqual(size.height + 0.5);
    await expectWhole(panel.locator('[data-action="trust"]'));
    await page.screenshot({ path: screenshotPath(`live-layout-${size.width}x${size.height}`, 'light') });
    await page.mouse.move(0, 0);
  };

  it('Live traffic with a session open, at 1024x640, 1280x800 and 1440x900', async () => {
    for (const size of SIZES) await liveChecks(c.page, size);
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });

  it('Queue: Retry and Delete are on screen and whole at every size', async () => {
    const { page } = c;
    for (const size of SIZES) {
      await page.setViewportSize(size);
      await page.click('[data-view-id="queue"]');
      const row = page.locator('tr[data-queue-id]').first();
      await row.waitFor({ timeout: 15_000 });
      // the destinations table (with its Retry DESTINATION now) and the messages table
      const wraps = page.locator('.queue-view .table-wrap');
      expect(await wraps.count()).toBe(2);
      await expectFits(wraps.nth(0), `destinations table at ${size.width}`);
      await expectWhole(wraps.nth(0).getByRole('button', { name: /^Retry .+ now$/ }).first());
      const wrap = page.locator('.queue-view .table-wrap').filter({ has: row });
      await expectFits(wrap, `queue table at ${size.width}`);
      for (const name of ['Retry', 'Delete…']) {
        const b = row.getByRole('button', { name });
        await expectInside(b, wrap, `${name} at ${size.width}`);
        await expectWhole(b);
      }
      await page.screenshot({ path: screenshotPath(`queue-layout-${size.width}x${size.height}`, 'light') });
    }
  });

  it("Clients: a client's Trust… is on screen and whole at every size, and a trusted one reads plainly", async () => {
    const { page } = c;
    await c.core.connection.call('clients.trust', { ip: '127.0.0.41', expiresAt: null });
    for (const size of SIZES) {
      await page.setViewportSize(size);
      await page.click('[data-view-id="clients"]');
      const row = page.locator('tr[data-ip="127.0.0.40"]');
      await row.waitFor();
      // "Trusted", and the group named as a group (it read "Trusted in Trusted")
      const trusted = page.locator('tr[data-ip="127.0.0.41"] [data-testid="client-trusted"]');
      await expect.poll(() => trusted.textContent()).toBe('Trustedgroup "Trusted", no expiry');
      const b = row.getByRole('button', { name: 'Trust…' });
      await expectFits(page.locator('.clients-view .table-wrap'), `clients table at ${size.width}`);
      await expectInside(b, page.locator('.clients-view .table-wrap'), `Trust… at ${size.width}`);
      await expectWhole(b);
      await page.screenshot({ path: screenshotPath(`clients-layout-${size.width}x${size.height}`, 'light') });
    }
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
