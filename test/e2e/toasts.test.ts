/**
 * Toasts in Chromium against a real relay (renderer/src/components/Toast.tsx):
 * - a toast with a key replaces the one on screen with that key instead of stacking under it: saving the same server
 *   twice shows one "Saved" toast, the second in place of the first;
 * - the stack moves off the controls it would cover ("lift"), also when they come under a toast already on screen:
 *   a toast shown on Servers, then the security view opened with unsaved edits, its apply bar in the corner. Nothing
 *   polls for that: the page's own changes (the view rendered) move the stack.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, unexpectedErrors, type ConsolePage } from './harness.ts';

/** the page's side, typed without the DOM lib */
interface Rect {
  left: number;
  right: number;
  top: number;
  bottom: number;
}
interface El {
  textContent: string | null;
  getBoundingClientRect(): Rect;
  getAttribute(name: string): string | null;
  contains(other: El | null): boolean;
}
interface PageSide {
  document: {
    querySelector(s: string): El | null;
    querySelectorAll(s: string): ArrayLike<El>;
    elementFromPoint(x: number, y: number): El | null;
  };
  MutationObserver: new (cb: () => void) => { observe(target: El, opts: Record<string, boolean>): void };
  /** every distinct list of the toasts' messages on screen, in order (see recordToasts) */
  __toasts?: string[][];
}

/** From now on, log the messages of the toasts on screen each time they change (the page's own MutationObserver). */
async function recordToasts(page: Page): Promise<void> {
  await page.evaluate(() => {
    const g = globalThis as unknown as PageSide;
    const log: string[][] = [];
    g.__toasts = log;
    const snap = (): void => {
      const now = Array.from(g.document.querySelectorAll('[data-testid="toast"] .toast-message'), (e) => e.textContent ?? '');
      if (log.length === 0 || log[log.length - 1]!.join('\n') !== now.join('\n')) log.push(now);
    };
    snap();
    new g.MutationObserver(snap).observe(g.document.querySelector('.toasts')!, { childList: true, subtree: true, characterData: true });
  });
}

describe.skipIf(!chromiumPath)('console: toasts (Chromium)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let page: Page;

  consoleSuite({ page: { viewport: { width: 1200, height: 800 } } }, async (s) => {
    ({ relay, c } = s);
    page = c.page;
    page.setDefaultTimeout(15_000);
    await addServerAndAccept(page, relay, { name: 'Edge relay' });
  });

  const form = () => page.locator('[data-testid="server-form"]');
  const card = () => page.locator('[data-testid="server-card"]').first();
  /** Servers, the server's Edit, and the form showing it */
  const edit = async () => {
    await page.click('[data-view-id="servers"]');
    await card().getByRole('button', { name: 'Edit' }).click();
    await expect.poll(() => form().locator('input[name="name"]').inputValue(), { timeout: 15_000 }).not.toBe('');
  };
  /** close whatever toasts are on screen, so a test starts with none */
  const closeToasts = async () => {
    while ((await page.getByTestId('toast').count()) > 0) await page.getByTestId('toast').first().getByRole('button', { name: 'Close' }).click();
  };

  it('saving the same server twice shows one toast: the second replaces the first instead of stacking under it', async () => {
    await closeToasts();
    await recordToasts(page);
    await edit();
    await form().locator('input[name="name"]').fill('Edge A');
    await form().getByRole('button', { name: 'Save' }).click();
    const first = page.getByTestId('toast').filter({ hasText: 'Saved Edge A.' });
    await first.waitFor();
    // saved again at once, while the first toast is on screen
    await edit();
    await form().locator('input[name="name"]').fill('Edge B');
    await form().getByRole('button', { name: 'Save' }).click();
    await page.getByTestId('toast').filter({ hasText: 'Saved Edge B.' }).waitFor();
    expect(await page.getByTestId('toast').count()).toBe(1);

    // every change the page made to the toasts: never two at once, and B took A's place in one step (not A gone by
    // its timeout first, which would show nothing about keys)
    const log = await page.evaluate(() => (globalThis as unknown as PageSide).__toasts!);
    expect(log.every((now) => now.length <= 1)).toBe(true);
    const a = log.findIndex((now) => now.length === 1 && now[0]!.startsWith('Saved Edge A.'));
    expect(a).toBeGreaterThanOrEqual(0);
    expect(log[a + 1]).toEqual([expect.stringMatching(/^Saved Edge B\./)]);
  });

  it('a toast on screen moves above the apply bar of the security view opened under it, clear of its buttons', async () => {
    await closeToasts();
    // unsaved edits on the security form: kept while the user goes elsewhere
    await page.click('[data-view-id="security"]');
    const max = page.locator('[data-field="limits.messagesPerHour.max"] input');
    await max.fill('50');
    await expect.poll(() => page.locator('.apply-bar').textContent(), { timeout: 15_000 }).toMatch(/1 change not applied/);

    // a toast on Servers (whatever it is lifted above there: what follows is about the view that comes under it)
    await edit();
    await form().getByRole('button', { name: 'Save' }).click();
    await page.getByTestId('toast').filter({ hasText: /^Saved .*the connection stays as it is\./ }).waitFor();
    // the security view comes back under the toast, with the edits and the apply bar, by the keyboard, the pointer
    // out of the way (a view changing under it makes Chromium send it a pointerover, which would move the stack too)
    await page.mouse.move(1, 1);
    await page.keyboard.press('Control+4');
    await page.locator('.apply-bar.apply-bar-dirty').waitFor();

    // measured in one go in the page: the toast, the bar, the stack's lift, and what is at the buttons' centres
    const measure = () =>
      page.evaluate(() => {
        const d = (globalThis as unknown as PageSide).document;
        const t = d.querySelector('[data-testid="toast"]');
        const stack = d.querySelector('.toasts');
        const bar = d.querySelector('.apply-bar');
        if (!t || !stack || !bar) return { shown: false as const };
        const tr = t.getBoundingClientRect();
        const br = bar.getBoundingClientRect();
        const covered = ['Revert', 'Review and apply…'].filter((name) => {
          const b = Array.from(d.querySelectorAll('.apply-bar button')).find((x) => x.textContent === name);
          if (!b) return true;
          const r = b.getBoundingClientRect();
          return !b.contains(d.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2));
        });
        return {
          shown: true as const,
          text: t.textContent ?? '',
          overlap: tr.left < br.right && br.left < tr.right && tr.top < br.bottom && br.top < tr.bottom,
          covered,
          lift: Number(stack.getAttribute('data-lift') ?? 0),
          // where the toast would be without the lift: over the bar (what makes this test about lifting)
          unliftedOverBar: tr.bottom + Number(stack.getAttribute('data-lift') ?? 0) > br.top && tr.left < br.right,
        };
      });
    await expect
      .poll(
        async () => {
          const m = await measure();
          if (!m.shown) return 'the toast went away before it was clear of the bar';
          return { text: m.text, overlap: m.overlap, covered: m.covered, lifted: m.lift > 0, unliftedOverBar: m.unliftedOverBar };
        },
        { timeout: 15_000 },
      )
      .toEqual({ text: expect.stringMatching(/^Saved .*the connection stays as it is\./), overlap: false, covered: [], lifted: true, unliftedOverBar: true });

    // leave the form as it was
    await page.getByRole('button', { name: 'Revert' }).click();
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
