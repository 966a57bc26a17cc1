/**
 * The console tryout of session 12 in Chromium at 1280x720, against a real relay: the fixes it asked for, on screen.
 * - finding 11: the "Added ...; connecting…" toast outlived the connection; the status bar said "as admin (admin)".
 * - finding 2: with another admin's change applied meanwhile, the rule cards and Review showed the old revision as
 *   "Now"; Review now says the base is stale, shows the relay's values, and the other admin's other change.
 * - finding 4: a comment with a long unbroken token pushed Expiry, Added by and Added out of the group card.
 * - finding 14: "Until a date…" kept its date for the next entry; a past date is refused in words.
 * - finding 8: Clients counted a monitor-only would-reject as a rejection.
 * - finding 1: "Retry all now" with the next hop down said every message was tried now.
 * - finding 6: the chart's HH:MM:SS labels ran into each other (uPlot's 50 px between ticks).
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { sendMail } from '../helpers/smtp-client.ts';
import { waitFor } from '../helpers/wait.ts';
import { deadPort } from '../helpers/outage.ts';
import type { ManageRelay, WssClient } from '../helpers/wss-client.ts';
import { X_AXIS_FONT, X_AXIS_SPACE } from '../../renderer/src/components/chart-axis.ts';
import { chromiumPath, consoleSuite, saveServerAndConnect, screenshotPath, type ConsolePage } from './harness.ts';

const open = async (page: Page, view: string, selector: string) => {
  await page.click(`[data-view-id="${view}"]`);
  await page.locator(selector).first().waitFor({ timeout: 10_000 });
};
const closeToasts = async (page: Page) => {
  for (const x of await page.locator('.toast-close').all()) await x.click().catch(() => {});
};
/** a datetime-local value, hours from now (local time, as the input takes it) */
const localInput = (hoursFromNow: number) => {
  const d = new Date(Date.now() + hoursFromNow * 3_600_000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
};

describe.skipIf(!chromiumPath)('console: the session-12 tryout fixes (Chromium 1280x720, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let admin: WssClient;

  /** the last test stops the relay itself: the suite's end then only cleans up after it */
  let stopped = false;

  consoleSuite(
    {
      config: { smtp: { hostname: 'relay.test' } },
      page: { viewport: { width: 1280, height: 720 } },
      stopRelay: async (r) => {
        if (!stopped) return r.stop();
        await r.dns.close();
        fs.rmSync(r.dir, { recursive: true, force: true });
      },
    },
    async (s) => {
    ({ relay, c } = s);
    admin = await relay.admin();
    c.page.setDefaultTimeout(10_000);
    },
  );

  it('adding a server: the toast says what the first attempt reached; "Connected" names the token and its role', async () => {
    const { page } = c;
    const prompt = await saveServerAndConnect(page, relay, { name: 'Edge relay' });
    const added = page.getByTestId('toast').filter({ hasText: /^Added Edge relay/ });
    await added.waitFor();
    expect(await added.textContent()).toMatch(/Added Edge relay\. Compare its certificate fingerprint with the one the relay printed, then accept it to connect\./);
    expect(await added.textContent()).not.toMatch(/connecting…/);
    await prompt.getByRole('button', { name: 'Accept and connect' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor();
    expect(await page.locator('.statusbar .status-message').textContent()).toBe('Connected to relay.test with the token "admin" (admin role).');
    await closeToasts(page);
  });

  it('Security options after another admin applied a change: the cards and Review show the relay\'s values, and say the base is stale', async () => {
    const { page } = c;
    await open(page, 'security', '.security-view');
    const base = await admin.call('config.get', {});
    const startedFrom = base.config.limits.messagesPerHour.max;
    await page.locator('[data-field="limits.messagesPerHour.max"] input').fill(String(startedFrom + 5));
    await page.locator('[data-field="checks.reverseDns.mode"] input[value="monitor"]').check();
    // the other admin: the same limit, and maxRecipients off
    const theirs = structuredClone(base.config);
    theirs.limits.messagesPerHour.max = startedFrom + 7;
    theirs.checks.maxRecipients.mode = 'off';
    const applied = await admin.call('config.update', { baseRevision: base.revision, config: theirs });
    await page.locator('[data-testid="config-moved"]').waitFor();
    // the card says what the relay holds now (not only "was <old value>"); the bar at the bottom says the relay moved
    const card = page.locator('[data-rule="limits.messagesPerHour"]');
    await expect.poll(() => card.locator('.field-relay-now').textContent()).toBe(`now ${startedFrom + 7} messages per hour on the relay (revision ${applied.revision})`);
    expect(await page.locator('[data-rule="checks.maxRecipients"] .field-relay-now').first().textContent()).toMatch(/^now Off on the relay/);
    expect(await page.locator('.apply-bar').textContent()).toMatch(new RegExp(`the relay changed meanwhile \\(revision ${applied.revision}\\)`));
    await card.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath('s12-security-stale-cards', 'light') });

    await page.locator('[data-testid="review-apply"]').click();
    const review = page.getByRole('dialog', { name: 'Apply these changes?' });
    await review.waitFor();
    expect(await review.locator('[data-testid="review-stale"]').textContent()).toMatch(
      new RegExp(`the relay is at revision ${applied.revision}, your edits started from revision ${base.revision}\\.`),
    );
    expect(await review.locator('tr[data-change="limits.messagesPerHour.max"]').textContent()).toBe(
      `Max messages per hour from one IP: limit${startedFrom + 7} messages per hour (your edit started from ${startedFrom} messages per hour)${startedFrom + 5} messages per hour`,
    );
    // (the button says that Apply shows the other change first: "Apply ... now" beside the notice read as a contradiction)
    expect(await review.locator('[data-testid="apply"]').textContent()).toMatch(/^Apply \d+ changes?… \(the other change first\)$/);
    const theirsText = (await review.locator('[data-testid="review-theirs"]').textContent()) ?? '';
    expect(theirsText, theirsText).toMatch(/Max recipients in a message \(mode\): Enforce → Off\./);
    await page.waitForTimeout(300);
    await page.screenshot({ path: screenshotPath('s12-security-stale-review', 'light') });
    // "See what changed…" goes to the conflict view; re-applying on top opens Review on the relay's revision
    await review.getByRole('button', { name: 'See what changed…' }).click();
    const conflict = page.getByRole('alertdialog', { name: 'The configuration changed on the relay' });
    await conflict.locator('[data-testid="reapply"]').click();
    const again = page.getByRole('dialog', { name: 'Apply these changes?' });
    await again.waitFor();
    expect(await again.locator('[data-testid="review-stale"]').count()).toBe(0);
    expect(await again.textContent()).toMatch(new RegExp(`Based on revision ${applied.revision}`));
    expect(await again.locator('[data-testid="apply"]').textContent()).toMatch(/^Apply \d+ changes? now$/);
    await again.getByRole('button', { name: 'Keep editing' }).click();
    await page.getByRole('button', { name: 'Revert' }).click();
  });

  it('Trusted IP groups: a long unbroken comment wraps inside the card; "Until a date…" is reset after an add, and a past date refused', async () => {
    const { page } = c;
    const token = `https://tickets.example.net/${'ABCDEFGHIJ'.repeat(13)}`;
    await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.61', comment: token, expiresAt: null });
    await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.62', comment: 'short', expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    await open(page, 'groups', '.group-card');
    const card = page.locator('.group-card').filter({ has: page.locator('tr[data-address="127.0.0.61"]') });
    await card.locator('tr[data-address="127.0.0.61"]').waitFor();
    const cardBox = (await card.boundingBox())!;
    for (const name of ['Expiry', 'Added by', 'Added']) {
      const th = (await card.getByRole('columnheader', { name, exact: true }).boundingBox())!;
      expect(th.x + th.width, `${name} inside the card`).toBeLessThanOrEqual(cardBox.x + cardBox.width + 0.5);
    }
    await card.locator('tr[data-address="127.0.0.61"]').scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath('s12-groups-long-comment', 'light') });

    const add = card.locator('form.add-entry');
    const expires = add.getByLabel('Expires');
    await add.locator('input.mono').fill('127.0.0.63');
    await expires.selectOption('date');
    // a moment in the past: refused, in words
    await add.getByLabel('Expiry date and time').fill(localInput(-1));
    await expect.poll(() => add.textContent()).toMatch(/that moment is in the past; the entry would never match/);
    await add.getByLabel('Expiry date and time').fill(localInput(2));
    await add.getByRole('button', { name: 'Add to Trusted' }).click();
    await card.locator('tr[data-address="127.0.0.63"]').waitFor();
    // the next entry starts from "Never", not from the last entry's date
    await expect.poll(() => expires.inputValue()).toBe('never');
    expect(await add.getByLabel('Expiry date and time').count()).toBe(0);
    await closeToasts(page);
  });

  it('Clients: a monitor-only would-reject is counted apart from the rejections', async () => {
    const { page } = c;
    const cur = await admin.call('config.get', {});
    const monitor = structuredClone(cur.config);
    monitor.checks.reverseDns.mode = 'monitor';
    await admin.call('config.update', { baseRevision: cur.revision, config: monitor });
    // 127.0.0.45 has no PTR record: reverse DNS would reject it (monitor: accepted); then an unknown recipient (550)
    const r = await sendMail(relay.port, { from: 'sales@example.org', to: ['nobody@example.com'], localAddress: '127.0.0.45' }).catch((e: unknown) => e);
    expect(r).toBeTruthy();
    await waitFor(async () => (await admin.call('clients.list', {})).clients.some((x) => x.ip === '127.0.0.45' && x.recentRejections.length === 2), 'the two events', 10_000, 100);
    await open(page, 'clients', 'table');
    const cell = page.locator('tr[data-ip="127.0.0.45"] td.rejections');
    await expect.poll(() => cell.textContent(), { timeout: 10_000 }).toBe('1 rejected · Unknown recipient (550) + 1 would-reject (monitor only, not enforced)');
    await page.screenshot({ path: screenshotPath('s12-clients-monitor-apart', 'light') });
  });

  it('"Retry all now" with the next hop down: the toast says one message probes it and the others follow', async () => {
    const { page } = c;
    const port = await deadPort();
    const g = await admin.call('config.get', {});
    const config = structuredClone(g.config);
    config.domains['corp.example'] = { deliverTo: `127.0.0.1:${port}`, recipients: ['alice', 'bob', 'carol'] };
    await admin.call('config.update', { baseRevision: g.revision, config });
    const key = `local:127.0.0.1:${port}`;
    for (const to of ['alice', 'bob', 'carol']) {
      expect((await sendMail(relay.port, { from: 'payroll@example.org', to: [`${to}@corp.example`], localAddress: '127.0.0.23' })).data?.code).toBe(250);
    }
    await waitFor(
      async () => {
        const q = (await admin.call('stats.get', {})).queue;
        return q.deferred === 3 && q.destinations?.some((d) => d.destination === key && d.down && d.connections === 0);
      },
      'the messages deferred and the destination down',
      20_000,
      100,
    );
    await open(page, 'queue', '.queue-view');
    await page.getByTestId('retry-all').click();
    await page.getByRole('dialog', { name: /^Retry all 3 queued messages now\?$/ }).getByRole('button', { name: 'Retry all now' }).click();
    const toast = page.getByTestId('toast').filter({ hasText: /is down/ });
    await toast.waitFor();
    expect(await toast.textContent()).toMatch(
      new RegExp(`^127\\.0\\.0\\.1:${port} is down: one message is tried now to see if it answers; the other 2 follow as soon as it does\\.`),
    );
    await page.waitForTimeout(300);
    await page.screenshot({ path: screenshotPath('s12-queue-retry-all-down', 'light') });
    await closeToasts(page);

    // finding 11: one message returned to its sender: the Dashboard's footer says "1 bounce", not "1 bounces"
    let bounced = false;
    await waitFor(
      async () => {
        const item = (await admin.call('queue.list', {})).items.find((i) => i.status !== 'delivering');
        if (!item) return false;
        bounced = (await admin.call('queue.delete', { id: item.id, bounce: true })).pending === false;
        return true;
      },
      'a message not being delivered, returned to its sender',
      20_000,
      100,
    );
    expect(bounced).toBe(true);
    await waitFor(async () => (await admin.call('stats.get', {})).totals.bounced === 1, 'the bounce counted', 10_000, 100);
    await open(page, 'dashboard', '[data-testid="dashboard"]');
    await expect.poll(() => page.locator('.dash-wide.faint').last().textContent(), { timeout: 10_000 }).toMatch(/, 1 bounce · history/);
  });

  it('the chart: ticks at least one HH:MM:SS label (and a gap) apart, measured with the browser\'s fonts', async () => {
    const { page } = c;
    await open(page, 'dashboard', '[data-testid="dashboard"]');
    const width = await page.evaluate((font) => {
      const g = (globalThis as unknown as { document: { createElement(t: string): { getContext(k: string): { font: string; measureText(s: string): { width: number } } } } }).document;
      const ctx = g.createElement('canvas').getContext('2d');
      ctx.font = font;
      return Math.max(...['00:00:00', '18:48:48', '22:22:22'].map((s) => ctx.measureText(s).width));
    }, X_AXIS_FONT);
    expect(width).toBeGreaterThan(30);
    expect(width + 16).toBeLessThanOrEqual(X_AXIS_SPACE);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: screenshotPath('s12-dashboard-chart', 'light') });
  });

  it('the relay stops (SIGTERM\'s graceful stop): the status bar keeps "stopped at HH:MM:SS" and never suggests a wrong address', async () => {
    const { page } = c;
    await relay.relay.stop();
    stopped = true;
    const bar = page.locator('.statusbar');
    await page.locator('.statusbar[data-status="reconnecting"]').waitFor();
    expect(await bar.locator('.status-message').textContent()).toMatch(/^The relay stopped at \d\d:\d\d:\d\d \(it said: the relay is shutting down\)\.$/);
    // the retries meet a closed port: said after the stop, without "is manage.listen that address?"
    await expect
      .poll(() => bar.locator('.status-message').textContent(), { timeout: 15_000 })
      .toMatch(new RegExp(`^The relay stopped at \\d\\d:\\d\\d:\\d\\d \\(it said: the relay is shutting down\\)\\. Not back yet: nothing listens on 127\\.0\\.0\\.1:${relay.managePort}\\.$`));
    expect(await bar.textContent()).not.toMatch(/manage\.listen/);
    await page.screenshot({ path: screenshotPath('s12-statusbar-relay-stopped', 'light') });
  });
});
