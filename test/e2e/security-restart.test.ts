/**
 * The security options, the dashboard and the toasts in Chromium against a real relay that is restarted under them
 * (the tryout's findings): unsaved edits survive a relay restart (and a config changed while it was down gets the
 * conflict handling), the impact preview credits a change only with what it does itself (not with IPs trusted since
 * the traffic was recorded), the dashboard says "since the relay started" where its counters began at the restart,
 * toasts never sit over the apply bar's buttons, and the smaller wording fixes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { Relay } from '../../relay/relay.ts';
import { sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay, WssClient } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, screenshotPath, type ConsolePage } from './harness.ts';

const numInput = (page: Page, id: string) => page.locator(`[data-field="${id}"] input`);
const openSecurity = async (page: Page) => {
  await page.click('[data-view-id="security"]');
  await page.locator('.security-view').waitFor();
};
const pageErrors = (c: ConsolePage) => c.errors.filter((e) => !/Failed to load resource|'frame-ancestors' is ignored/.test(e));

/** whether two elements' boxes overlap on screen */
async function overlap(a: Locator, b: Locator): Promise<boolean> {
  const [x, y] = [await a.boundingBox(), await b.boundingBox()];
  if (!x || !y) return false;
  return x.x < y.x + y.width && y.x < x.x + x.width && x.y < y.y + y.height && y.y < x.y + x.height;
}

describe.skipIf(!chromiumPath)('console: security options and dashboard across a relay restart (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let admin: WssClient;
  /** the relay running now: the harness's, then each restart's */
  let running: Relay;
  let smtpPort: number;
  let disconnectedText = '';

  consoleSuite(
    {
      stopRelay: async (r) => {
        if (running === r.relay) return r.stop();
        await running.stop();
        await r.dns.close();
        fs.rmSync(r.dir, { recursive: true, force: true });
      },
    },
    async (s) => {
      ({ relay, c } = s);
      running = relay.relay;
      smtpPort = relay.port;
      admin = await relay.admin();
      c.page.setDefaultTimeout(10_000);
      // before any server: the placeholder's words
      await c.page.click('[data-view-id="security"]');
      disconnectedText = (await c.page.locator('.empty-state').first().textContent()) ?? '';
      await addServerAndAccept(c.page, relay);
    },
  );

  /** stop the relay, optionally edit its config.json meanwhile, start it again on the same address and data */
  const restart = async (page: Page, edit?: (config: Record<string, any>) => void, whileDown?: () => Promise<void>) => {
    await running.stop();
    await page.locator('.statusbar[data-status="reconnecting"], .statusbar[data-status="connecting"]').first().waitFor();
    await whileDown?.();
    if (edit) {
      const file = path.join(relay.dir, 'config.json');
      const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, any>;
      edit(config);
      fs.writeFileSync(file, JSON.stringify(config, null, 2));
    }
    running = await Relay.start({ dataDir: relay.dir, smtpListen: '127.0.0.1:0', manageListen: `127.0.0.1:${relay.managePort}`, log: () => {}, history: { flushMs: 20 } });
    smtpPort = running.smtpAddress.port;
    await page.locator('.statusbar[data-status="connected"]').waitFor({ timeout: 20_000 });
  };

  it('says "Not connected: the security configuration comes from the relay" (one thing, "comes")', () => {
    expect(disconnectedText).toMatch(/^Not connected: the security configuration comes from the relay/);
  });

  it('the impact preview credits the change only with what it does, not with IPs trusted since', async () => {
    const { page } = c;
    // recorded: 127.0.0.21 and .22 each refused once by an hourly limit of 2, then trusted; 127.0.0.23 sends to 2 recipients
    const cur = await admin.call('config.get', {});
    const strict = structuredClone(cur.config);
    strict.limits.messagesPerHour.max = 2;
    await admin.call('config.update', { baseRevision: cur.revision, config: strict });
    for (const ip of ['127.0.0.21', '127.0.0.22']) {
      for (let i = 0; i < 3; i++) await sendMail(smtpPort, { from: 'carol@example.org', to: ['alice@example.com'], localAddress: ip });
      expect(relay.rejections('limits.messagesPerHour').filter((e) => e.ip === ip)).toHaveLength(1);
      await admin.call('clients.trust', { ip });
    }
    expect((await sendMail(smtpPort, { from: 'carol@example.org', to: ['alice@example.com', 'bob@example.com'], localAddress: '127.0.0.23' })).data?.code).toBe(250);

    await openSecurity(page);
    await expect.poll(() => page.locator('.apply-bar').textContent()).toMatch(/No changes/);
    await numInput(page, 'checks.maxRecipients.max').fill('1');
    await page.locator('[data-testid="review-apply"]').click();
    const dialog = page.getByRole('dialog', { name: 'Apply these changes?' });
    try {
      const summary = dialog.locator('[data-testid="impact-summary"]');
      await summary.waitFor({ timeout: 20_000 });
      // before the fix: "1 newly rejected from 1 IP; 2 that were rejected would pass (from 2 IPs)", the 2 being the
      // trusted IPs, which pass with the settings in effect now as well
      expect(await summary.textContent()).toMatch(/^1 newly rejected from 1 IP; nothing that the current settings reject would pass\.$/);
      const row = dialog.locator('.impact-table tr[data-rule="checks.maxRecipients"]');
      expect(await row.textContent()).toMatch(/127\.0\.0\.23/);
      expect(await dialog.locator('.impact-table').textContent()).toMatch(/Rejected with current settings.*With this change/);
      expect(await dialog.locator('.impact-table tr[data-rule="limits.messagesPerHour"]').count()).toBe(0);
      await page.screenshot({ path: screenshotPath('security-impact-vs-current', 'light') });
    } finally {
      // the next tests start from the form, whatever happened here
      await dialog.getByRole('button', { name: 'Keep editing' }).click();
      await page.getByRole('button', { name: 'Revert' }).click();
    }
  });

  it('"-1" in a limit says the bound, and "1 setting to fix" takes the cursor to it', async () => {
    const { page } = c;
    await openSecurity(page);
    const max = numInput(page, 'limits.unknownRecipients.max');
    await max.fill('-1');
    const card = page.locator('[data-rule="limits.unknownRecipients"]');
    await expect.poll(() => card.locator('.field-error').textContent()).toBe('must be at least 1');
    await page.locator('[data-field="delivery.tls"] input[value="required"]').focus();
    await page.locator('[data-testid="show-errors"]').click();
    await expect.poll(() => max.evaluate((e) => e === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement)).toBe(true);
    await page.getByRole('button', { name: 'Revert' }).click();
  });

  it('keeps unsaved edits through a relay restart, and shows the conflict when the config changed meanwhile', async () => {
    const { page } = c;
    await openSecurity(page);
    const before = await admin.call('config.get', {});
    await numInput(page, 'limits.messagesPerHour.max').fill('50');
    await page.locator('[data-field="checks.senderDomain.mode"] input[value="monitor"]').check();
    await expect.poll(() => page.locator('.apply-bar').textContent()).toMatch(/2 changes not applied/);

    // the relay restarts with nothing changed: the form stays, read-only, saying the edits are kept, and after the
    // reconnect they are still there, not applied
    await restart(page, undefined, async () => {
      const offline = page.locator('[data-testid="security-offline"]');
      await offline.waitFor();
      expect(await offline.textContent()).toMatch(/Not connected to the relay\. Your 2 changes are kept here, not applied/);
      expect(await numInput(page, 'limits.messagesPerHour.max').inputValue()).toBe('50');
      expect(await page.locator('[data-testid="review-apply"]').getAttribute('data-disabled-reason')).toMatch(/Not connected/);
      await page.screenshot({ path: screenshotPath('security-edits-kept-offline', 'light') });
    });
    await page.locator('[data-testid="security-offline"]').waitFor({ state: 'detached' });
    expect(await numInput(page, 'limits.messagesPerHour.max').inputValue()).toBe('50');
    expect(await page.locator('[data-field="checks.senderDomain.mode"] input[value="monitor"]').isChecked()).toBe(true);
    expect(await page.locator('.apply-bar').textContent()).toMatch(/2 changes not applied/);
    expect(await page.locator('[data-testid="config-moved"]').count()).toBe(0);

    // a view switch does not drop them either
    await page.click('[data-view-id="dashboard"]');
    await openSecurity(page);
    expect(await page.locator('.apply-bar').textContent()).toMatch(/2 changes not applied/);

    // config.json edited while the relay was down: a revision of its own; the edits are kept and the change is shown
    await restart(page, (config) => {
      config.limits = { ...config.limits, concurrentConnections: { mode: 'enforce', max: 3 } };
    });
    const moved = page.locator('[data-testid="config-moved"]');
    await moved.waitFor();
    expect(await numInput(page, 'limits.messagesPerHour.max').inputValue()).toBe('50');
    await moved.getByRole('button', { name: 'See what changed…' }).click();
    const conflict = page.getByRole('alertdialog', { name: 'The configuration changed on the relay' });
    await conflict.waitFor();
    expect(await conflict.textContent()).toMatch(/Max concurrent SMTP connections from one IP: limit.*10 connections at once.*3 connections at once/);
    await conflict.locator('[data-testid="reapply"]').click();
    const review = page.getByRole('dialog', { name: 'Apply these changes?' });
    await review.locator('[data-testid="apply"]').click();
    const toast = page.getByTestId('toast').filter({ hasText: /Applied: 2 settings changed/ });
    await toast.waitFor();
    // mine and theirs, on the restarted relay
    const after = (await (await relay.admin()).call('config.get', {})).config;
    expect(before.config.limits.messagesPerHour.max).not.toBe(50);
    expect(after.limits.messagesPerHour.max).toBe(50);
    expect(after.checks.senderDomain.mode).toBe('monitor');
    expect(after.limits.concurrentConnections.max).toBe(3);

    // the toast does not sit over the apply bar's buttons (it did for 6 to 12 s): asked while it is on screen
    const over = async (name: string) => {
      if (!(await toast.isVisible())) return 'the toast went away before it was clear of the button';
      return (await overlap(toast, page.locator('.apply-bar').getByRole('button', { name }))) ? `covers ${name}` : 'clear';
    };
    for (const name of ['Revert', 'Review and apply…']) await expect.poll(() => over(name)).toBe('clear');
    await page.screenshot({ path: screenshotPath('security-toast-above-apply-bar', 'light') });
  });

  it('the dashboard says "since the relay started" where its counters began at the restart', async () => {
    const { page } = c;
    await page.click('[data-view-id="dashboard"]');
    const rules = page.locator('[data-testid="rejections-by-rule"]');
    await rules.waitFor();
    // the history holds rejections from minutes ago (the first test); the counters only know the new start
    await expect.poll(() => rules.textContent()).toMatch(/^Rejections per rule since the relay started (\d+ s|\d+ min|just now)( ago)?/);
    expect(await rules.textContent()).toMatch(/No rejections since the relay started .*earlier traffic is in Live traffic/);
    expect(await page.locator('[data-testid="top-talkers"]').textContent()).toMatch(/^Top talkers since the relay started .*No client sent mail since the relay started/);
    expect(await page.locator('[data-testid="kpi-rejected"]').textContent()).toMatch(/since the relay started/);
    expect(await page.locator('[data-testid="kpi-rejected"]').textContent()).not.toMatch(/in 15 min/);
    await page.screenshot({ path: screenshotPath('dashboard-after-restart', 'light') });
    expect(pageErrors(c)).toEqual([]);
  });
});
