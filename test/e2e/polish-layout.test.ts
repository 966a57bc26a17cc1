/**
 * At 1024x640 (Chromium, real relay): the Clients table fits its box with a blocked client (Unblock and Trust…) and
 * its "Recent rejections" column is not under the sticky actions column (it read "1 · Messa… per ho", the table 37 px
 * wider than its box); the Live traffic session panel's own "Trust this IP" row can be scrolled to inside the panel
 * (it sat below the panel's bottom edge, unreachable); a hovered row lights its header cell too.
 * Geometry, not timing: the boxes the browser laid out.
 */
import { describe, expect, it } from 'vitest';
import type { Locator } from 'playwright-core';
import { sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, screenshotPath, unexpectedErrors, type ConsolePage } from './harness.ts';

/** the little of the DOM the page-side checks read (the tests are typed without the DOM lib) */
interface Sized {
  scrollWidth: number;
  clientWidth: number;
}

async function box(l: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  const b = await l.boundingBox();
  if (!b) throw new Error('not laid out');
  return b;
}

/** `inner`'s box lies inside `outer`'s (to the half pixel), on both axes */
async function expectInside(inner: Locator, outer: Locator, what: string): Promise<void> {
  const i = await box(inner);
  const o = await box(outer);
  expect({
    what,
    left: i.x >= o.x - 0.5,
    right: i.x + i.width <= o.x + o.width + 0.5,
    top: i.y >= o.y - 0.5,
    bottom: i.y + i.height <= o.y + o.height + 0.5,
  }).toEqual({ what, left: true, right: true, top: true, bottom: true });
}

describe.skipIf(!chromiumPath)('console polish at 1024x640 (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;

  consoleSuite({ config: { limits: { messagesPerHour: { mode: 'enforce', max: 1 } } }, page: { viewport: { width: 1024, height: 640 }, colorScheme: 'dark' } }, async (s) => {
    ({ relay, c } = s);
    c.page.setDefaultTimeout(10_000);
    await addServerAndAccept(c.page, relay);
    // a client over its hourly limit (rejections), and one blocked for unknown recipients (Unblock and Trust…)
    for (let i = 0; i < 2; i++) await sendMail(relay.port, { from: 'sales@example.org', to: ['alice@example.com'], localAddress: '127.0.0.31' });
    const many = Array.from({ length: 10 }, (_, i) => `nobody${i}@example.com`);
    await sendMail(relay.port, { from: 'spam@example.org', to: many, localAddress: '127.0.0.32' }).catch(() => {});
  });

  it('Clients: the table fits its box and "Recent rejections" is left of the sticky actions column', async () => {
    const { page } = c;
    await page.click('[data-view-id="clients"]');
    const blocked = page.locator('tr[data-ip="127.0.0.32"]');
    await blocked.getByRole('button', { name: 'Unblock' }).waitFor({ timeout: 15_000 });
    const limited = page.locator('tr[data-ip="127.0.0.31"]');
    await limited.locator('.rejections button').waitFor({ timeout: 15_000 });
    // "Last seen" as wide as it gets in practice ("12 s ago", not "now": the tryout's 37 px)
    for (const row of [blocked, limited]) await expect.poll(() => row.locator('td.nowrap').textContent(), { timeout: 20_000 }).toMatch(/\d+ s ago/);
    const wrap = page.locator('.clients-view .table-wrap');
    const { scroll, client } = await wrap.evaluate((el) => ({ scroll: (el as unknown as Sized).scrollWidth, client: (el as unknown as Sized).clientWidth }));
    expect({ fits: scroll <= client + 1, scroll, client }).toEqual({ fits: true, scroll, client });
    for (const row of [blocked, limited]) {
      const rej = row.locator('td.rejections');
      const actions = row.locator('td.actions');
      const r = await box(rej);
      const a = await box(actions);
      // the rejections cell ends where the actions column starts: nothing of it scrolled under that column
      expect(r.x + r.width).toBeLessThanOrEqual(a.x + 0.5);
      await expectInside(row.locator('.rejections button'), rej, 'rejections link in its cell');
      for (const b of await actions.getByRole('button').all()) await expectInside(b, wrap, 'action button in the table box');
    }
    // the header reads whole words: its cell is not narrower than the word "rejections"
    const head = page.locator('.clients-table thead th', { hasText: 'Recent' });
    const { sw, cw } = await head.evaluate((el) => ({ sw: (el as unknown as Sized).scrollWidth, cw: (el as unknown as Sized).clientWidth }));
    expect(sw).toBeLessThanOrEqual(cw + 1);
    // a hovered row lights its header cell (the IP) like its other cells
    await limited.locator('td.num').first().hover();
    const bg = await limited.evaluate((tr) => {
      const row = tr as unknown as { querySelector(sel: string): unknown };
      const view = globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } };
      const th = row.querySelector('th');
      const td = row.querySelector('td.num');
      return { th: view.getComputedStyle(th).backgroundColor, td: view.getComputedStyle(td).backgroundColor };
    });
    expect(bg.th).toBe(bg.td);
    await page.screenshot({ path: screenshotPath('polish-clients-1024x640', 'dark') });
    await page.mouse.move(0, 0);
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });

  it("Live traffic: the session panel's warning and its Trust this IP row can be reached inside the panel", async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    await page.locator('.live-toolbar').getByLabel('Rejections only').check();
    const rateRow = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.31"]').first();
    await rateRow.waitFor();
    await rateRow.click();
    const panel = page.locator('[data-testid="session-panel"]');
    await panel.waitFor();
    const p = await box(panel);
    expect(p.y + p.height).toBeLessThanOrEqual(640 + 0.5);
    const facts = panel.locator('.panel-facts');
    const trust = panel.locator('.trust-row [data-action="trust"]');
    await trust.waitFor();
    const warning = panel.locator('[data-testid="trust-effect"]');
    for (const [what, el] of [
      ['warning', warning],
      ['Trust this IP', trust],
    ] as const) {
      // scrolled to inside the facts column, the element shows wholly inside it and inside the panel
      await el.evaluate((e) => (e as unknown as { scrollIntoView(o: object): void }).scrollIntoView({ block: 'nearest' }));
      await expectInside(el, facts, `${what} in the facts column`);
      await expectInside(el, panel, `${what} in the panel`);
    }
    // and the view itself never scrolled to show it: the panel is where it was
    expect((await box(panel)).y).toBeCloseTo(p.y, 0);
    await page.screenshot({ path: screenshotPath('polish-live-session-1024x640', 'dark') });
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
