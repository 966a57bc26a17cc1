/**
 * The 2 a.m. outage in Chromium against a real relay: a local domain whose server (deliverTo) is a loopback port where
 * nothing listens. The Dashboard's Queue card says mail is stuck (warning style, the destination that does not answer,
 * its last error and next attempt, the oldest message's age, the deferred count, a link to the Queue view); the Queue
 * view lists the destination with "Retry <destination> now" and a filter, each row's destination, and "Retry all now"
 * (with the count, a confirmation that says what it does, the relay's numbers in the toast). Then the server comes
 * back on that port, one click drains the queue into it, and the Dashboard's chart has delivered messages in it.
 * A viewer sees the same controls disabled, with the reason.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { startSink, type Sink } from '../helpers/sink.ts';
import { sendMail } from '../helpers/smtp-client.ts';
import { waitFor } from '../helpers/wait.ts';
import type { ManageRelay, WssClient } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, screenshotPath, unexpectedErrors, type ConsolePage } from './harness.ts';
import { deadPort } from '../helpers/outage.ts';

const open = async (page: Page, view: 'dashboard' | 'queue') => {
  await page.click(`[data-view-id="${view}"]`);
  await page.locator(view === 'dashboard' ? '[data-testid="dashboard"]' : '.queue-view').waitFor({ timeout: 10_000 });
};

/** Close the toasts on screen (they would cover what a screenshot is for). */
const closeToasts = async (page: Page) => {
  for (const x of await page.locator('.toast-close').all()) await x.click().catch(() => {});
};

const MESSAGES = 6;

/** The relay with corp.example delivering to a dead port, and MESSAGES messages for it that were refused once. */
async function outage(relay: ManageRelay, admin: WssClient): Promise<{ port: number; key: string }> {
  const port = await deadPort();
  const g = await admin.call('config.get', {});
  const config = structuredClone(g.config);
  config.domains['corp.example'] = { ...config.domains['example.com']!, deliverTo: `127.0.0.1:${port}`, recipients: ['alice', 'bob', 'carol'] };
  await admin.call('config.update', { baseRevision: g.revision, config });
  const key = `local:127.0.0.1:${port}`;
  for (let i = 0; i < MESSAGES; i++) {
    const r = await sendMail(relay.port, { from: 'payroll@example.org', to: [`${['alice', 'bob', 'carol'][i % 3]}@corp.example`], localAddress: '127.0.0.23' });
    expect(r.data?.code).toBe(250);
  }
  // every message refused once, and the destination known to be down
  await waitFor(
    async () => {
      const q = (await admin.call('stats.get', {})).queue;
      return q.deferred === MESSAGES && q.destinations?.some((d) => d.destination === key && d.down);
    },
    'the messages to be deferred and corp.example down',
    20_000,
    100,
  );
  return { port, key };
}

describe.skipIf(!chromiumPath)('console: the queue during an outage (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let admin: WssClient;
  let port: number;
  let key: string;
  let sink: Sink | null = null;

  consoleSuite(
    {
      page: { viewport: { width: 1280, height: 860 } },
      stopRelay: async (r) => {
        await r.stop();
        await sink?.close();
      },
    },
    async (s) => {
      ({ relay, c } = s);
      admin = await relay.admin();
      c.page.setDefaultTimeout(10_000);
      ({ port, key } = await outage(relay, admin));
      await addServerAndAccept(c.page, relay);
    },
  );

  it('the Dashboard says mail is stuck: warning, the destination down with its error and next attempt, the oldest age, a way to the queue', async () => {
    const { page } = c;
    await open(page, 'dashboard');
    const card = page.locator('[data-testid="queue-size"]');
    await expect.poll(() => card.getAttribute('data-tone')).toBe('warn');
    const text = (await card.textContent())!;
    expect(text).toContain(`Mail is stuck: 127.0.0.1:${port} does not answer.`);
    expect(text).toMatch(new RegExp(`oldest waiting \\d+ s · ${MESSAGES} deferred · 0 delivering now · accepting mail`));
    const dest = card.locator(`[data-destination="${key}"]`);
    expect(await dest.textContent()).toMatch(new RegExp(`^down 127\\.0\\.0\\.1:${port}${MESSAGES} messages · next attempt (in \\d+ (s|min)|due now).*refused`, 'i'));
    // the chart has the delivered and deferred lines, with a legend
    expect(await page.locator('.legend').textContent()).toMatch(/accepted.*rejected.*delivered.*deferred/);
    await page.waitForTimeout(300);
    await page.screenshot({ path: screenshotPath('queue-outage-dashboard', 'light') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(300);
    await page.screenshot({ path: screenshotPath('queue-outage-dashboard', 'dark') });
    await page.emulateMedia({ colorScheme: 'light' });
    // the link goes to the Queue view
    await card.getByRole('button', { name: 'Open the queue' }).click();
    await page.locator('.queue-view').waitFor();
  });

  it('the Queue view: the destination, each row\'s destination, the filter, and "Retry all now" confirmed, with the relay\'s numbers', async () => {
    const { page } = c;
    await open(page, 'queue');
    const destRow = page.locator(`[data-testid="queue-destination-list"] tr[data-destination="${key}"]`);
    await destRow.waitFor();
    expect(await destRow.textContent()).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}${MESSAGES}down.*refused`, 'i'));
    await expect.poll(() => page.locator('tr[data-queue-id]').count()).toBe(MESSAGES);
    expect(await page.locator('tr[data-queue-id] .queue-row-dests').first().textContent()).toBe(`via 127.0.0.1:${port}`);
    // the toolbar never says "updated in 4 s"
    expect(await page.locator('.toolbar .count').textContent()).toMatch(/^6 messages queued · (updated (just now|\d+ s ago)|refreshing)$/);

    // the filter: this destination's messages, then one with none
    const filter = page.getByLabel('Destination', { exact: true });
    expect(await filter.locator('option').allTextContents()).toEqual(['All destinations', `127.0.0.1:${port} (${MESSAGES})`]);
    await filter.selectOption(key);
    await expect.poll(() => page.locator('.toolbar .count').textContent()).toMatch(new RegExp(`^6 messages for 127\\.0\\.0\\.1:${port}`));
    // with the filter on, the primary button is about the messages shown: that destination's
    await expect.poll(() => page.getByTestId('retry-all').textContent()).toBe(`Retry these now (${MESSAGES})`);
    await page.getByTestId('retry-all').click();
    const forDest = page.getByRole('dialog', { name: new RegExp(`127\\.0\\.0\\.1:${port}`) });
    await forDest.waitFor();
    await forDest.getByRole('button', { name: 'Cancel' }).click();
    await forDest.waitFor({ state: 'detached' });
    await filter.selectOption('');

    const button = page.getByTestId('retry-all');
    expect(await button.textContent()).toBe(`Retry all now (${MESSAGES})`);
    const before = relay.auditLines().length;
    await button.click();
    const dialog = page.getByRole('dialog', { name: `Retry all ${MESSAGES} queued messages now?` });
    await dialog.waitFor();
    expect(await dialog.textContent()).toMatch(/Every queued message becomes due at once, instead of at its next scheduled attempt\..*left as they are\. Nothing is deleted or returned to its sender\./);
    await page.waitForTimeout(200);
    await page.screenshot({ path: screenshotPath('queue-outage-retry-all-dialog', 'light') });
    await dialog.getByRole('button', { name: 'Retry all now' }).click();
    // the destination is down: the toast says one message is its probe and the others follow (it said every message
    // "will be tried now", a tryout found, while the relay held all but one back)
    const toast = page.getByTestId('toast').filter({ hasText: /is down/ });
    await toast.waitFor();
    const words = (await toast.textContent())!;
    expect(words).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} is down: (one message is tried now to see if it answers; the other \\d+ follows? as soon as it does|a connection to it is under way)`));
    // one admin action, one audit line
    const lines = relay.auditLines().slice(before);
    expect(lines.map((l) => [l.method, l.params, l.ok])).toEqual([['queue.retry', { all: true }, true]]);
    await page.waitForTimeout(300);
    await page.screenshot({ path: screenshotPath('queue-outage-queue', 'light') });
  });

  it('the server comes back: "Retry <destination> now" drains the queue into it, the chart shows the deliveries, the card calms down', async () => {
    const { page } = c;
    sink = await startSink({ port });
    await closeToasts(page);
    await open(page, 'queue');
    const destRow = page.locator(`[data-testid="queue-destination-list"] tr[data-destination="${key}"]`);
    await destRow.getByRole('button', { name: `Retry 127.0.0.1:${port} now` }).click();
    const dialog = page.getByRole('dialog', { name: new RegExp(`^Retry the \\d+ messages? waiting for 127\\.0\\.0\\.1:${port} now\\?$`) });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: `Retry 127.0.0.1:${port} now` }).click();
    await page.getByTestId('toast').filter({ hasText: new RegExp(`127\\.0\\.0\\.1:${port} is down: |for 127\\.0\\.0\\.1:${port} (will be tried now|was waiting)`) }).waitFor();
    await sink.waitFor(MESSAGES, 30_000);
    await page.getByText('The queue is empty').waitFor({ timeout: 20_000 });

    await open(page, 'dashboard');
    const card = page.locator('[data-testid="queue-size"]');
    await expect.poll(() => card.getAttribute('data-tone'), { timeout: 10_000 }).toBe('ok');
    expect(await card.locator('.kpi').textContent()).toBe('0');
    // the deliveries are in the per-second series the chart draws (stats.get, as the Dashboard loads it)
    const series = (await admin.call('stats.get', {})).series;
    expect(series.reduce((n, p) => n + (p.delivered ?? 0), 0)).toBe(MESSAGES);
    await closeToasts(page);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: screenshotPath('queue-outage-drained', 'light') });
    expect(unexpectedErrors(c.errors).filter((e) => !/Failed to load resource/.test(e))).toEqual([]);
  }, 60_000);
});

describe.skipIf(!chromiumPath)('console: the queue during an outage, as a viewer (Chromium, real relay)', () => {
  let c: ConsolePage;
  let key: string;

  consoleSuite({}, async (s) => {
    ({ c } = s);
    const admin = await s.relay.admin();
    ({ key } = await outage(s.relay, admin));
    const token = s.relay.relay.tokens.create('night-watch', 'viewer');
    c.page.setDefaultTimeout(10_000);
    await addServerAndAccept(c.page, s.relay, { token });
  });

  it('sees the outage and the retry controls disabled, with the reason', async () => {
    const { page } = c;
    const reason = /viewer token: it can see everything but change nothing/;
    await open(page, 'dashboard');
    await expect.poll(() => page.locator('[data-testid="queue-size"]').getAttribute('data-tone')).toBe('warn');
    await open(page, 'queue');
    const destRow = page.locator(`[data-testid="queue-destination-list"] tr[data-destination="${key}"]`);
    await destRow.waitFor();
    expect(await destRow.getByRole('button', { name: /^Retry .* now$/ }).getAttribute('data-disabled-reason')).toMatch(reason);
    expect(await page.getByTestId('retry-all').getAttribute('data-disabled-reason')).toMatch(reason);
    // looking is allowed: the filter works
    await page.getByLabel('Destination', { exact: true }).selectOption(key);
    await expect.poll(() => page.locator('.toolbar .count').textContent()).toMatch(/^6 messages for /);
  });
});
