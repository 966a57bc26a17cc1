/**
 * The renderer under its own strict CSP (no 'unsafe-inline' for styles, no eval): a tour of every view in light and
 * dark, against a real relay with traffic (a live row's detail, the Dashboard's chart hovered), records every
 * securitypolicyviolation the page reports, and there must be none. React's style props and uPlot write styles
 * through the CSSOM, which the policy allows; zod is told not to probe for `new Function` (renderer/src/main.tsx).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { DIST, addServerAndAccept, chromiumPath, launchChromium, openConsole, serveDist, startRelay } from './harness.ts';
import { VIEWS } from '../../renderer/src/views/registry.ts';

describe.skipIf(!chromiumPath)('console: the strict CSP holds on every view (Chromium)', () => {
  let relay: ManageRelay;
  let browser: Browser;
  beforeAll(async () => {
    [relay, browser] = await Promise.all([startRelay(), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await relay?.stop();
  });

  for (const colorScheme of ['light', 'dark'] as const) {
    it(`${colorScheme}: no CSP violation on any view`, { timeout: 60_000 }, async () => {
      const site = await serveDist(DIST);
      const c = await openConsole(browser, site.url, { colorScheme });
      try {
        await c.page.addInitScript(() => {
          const g = globalThis as unknown as { __csp: string[]; document: { addEventListener(t: string, f: (e: Record<string, string>) => void): void } };
          g.__csp = [];
          g.document.addEventListener('securitypolicyviolation', (e) => g.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`));
        });
        await c.page.reload();
        c.page.setDefaultTimeout(10_000);
        await addServerAndAccept(c.page, relay);
        for (let i = 0; i < 3; i++) await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: `127.0.0.${20 + i}` });
        for (const v of VIEWS) {
          await c.page.click(`[data-view-id="${v.id}"]`);
          await c.page.waitForTimeout(400);
        }
        await c.page.click('[data-view-id="live"]');
        await c.page.locator('.live-row').first().click().catch(() => {});
        await c.page.waitForTimeout(300);
        await c.page.click('[data-view-id="dashboard"]');
        // (uPlot's cursor overlay over the chart: hovering it draws the cursor and the legend's values)
        const over = c.page.locator('.u-over').first();
        await over.waitFor();
        await over.hover({ force: true });
        await c.page.waitForTimeout(300);
        const violations = await c.page.evaluate(() => (globalThis as unknown as { __csp: string[] }).__csp);
        expect(violations).toEqual([]);
        expect(c.errors).toEqual([]);
      } finally {
        await c.close();
        await site.close();
      }
    });
  }
});
