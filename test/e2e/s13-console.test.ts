/**
 * Console fixes of session 13, in Chromium against a real relay.
 * - The "Added NAME. Compare its certificate fingerprint ..., then accept it to connect." toast stayed on screen (its
 *   6 s) after the fingerprint was accepted and the console had connected, telling the admin to do what was done. It
 *   goes when the prompt is answered, either way.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { chromiumPath, consoleSuite, saveServerAndConnect, type ConsolePage } from './harness.ts';

describe.skipIf(!chromiumPath)('console: session-13 fixes (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let page: Page;
  consoleSuite({ page: { viewport: { width: 1280, height: 720 } } }, (s) => {
    ({ relay, c } = s);
    page = c.page;
    page.setDefaultTimeout(15_000);
  });

  it('the "compare its fingerprint, then accept" toast goes once the prompt is answered', async () => {
    const prompt = await saveServerAndConnect(page, relay, { name: 'Night relay' });
    const advice = page.getByTestId('toast').filter({ hasText: 'Compare its certificate fingerprint' });
    await advice.waitFor();
    await prompt.getByRole('button', { name: 'Accept and connect' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor();
    // gone at once, not at the end of its 6 s
    await advice.waitFor({ state: 'detached', timeout: 1_500 });
    expect(await advice.count()).toBe(0);
  });
});
