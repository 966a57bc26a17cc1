/**
 * The admin views in Chromium against a real relay (real SMTP traffic, the management channel, the console's real
 * core): edit a security option and see it enforced over SMTP (impact preview first), a conflict between two
 * admins, trusted groups (inline validation, add with expiry, remove with Undo), clients (trust), queue (delete),
 * audit (diff, restore), a viewer who sees every control disabled with the reason, and screenshots light and dark.
 */
import { describe, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay, WssClient } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, screenshotPath, type ConsolePage } from './harness.ts';

const open = async (page: Page, view: 'security' | 'groups' | 'clients' | 'queue' | 'audit') => {
  await page.click(`[data-view-id="${view}"]`);
  await page.locator(`.${view}-view`).waitFor({ timeout: 10_000 });
};

/**
 * errors in the page, less failed resource loads and the notice Chromium prints when a <meta> policy carries
 * frame-ancestors (the renderer's <meta> CSP is the policy of record; whether Electron's header reaches file:// pages
 * is not known, see main/electron/security.ts)
 */
const pageErrors = (c: ConsolePage) => c.errors.filter((e) => !/Failed to load resource|'frame-ancestors' is ignored/.test(e));

/** the number input of a security field */
const numInput = (page: Page, id: string) => page.locator(`[data-field="${id}"] input`);

/** A table's column headers as a screen reader names them (the column of row buttons is "Actions", read only by it). */
const headers = (scope: Locator) => scope.getByRole('columnheader').allTextContents();

describe.skipIf(!chromiumPath)('console: admin views (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let admin: WssClient;

  consoleSuite({ page: { viewport: { width: 1200, height: 860 } } }, async (s) => {
    ({ relay, c } = s);
    admin = await relay.admin();
    c.page.setDefaultTimeout(10_000);
    await addServerAndAccept(c.page, relay);
  });

  it('edits a security option: inline validation, diff, impact preview, Apply, and the relay enforces it over SMTP', async () => {
    const { page } = c;
    // recorded traffic for the preview: 3 messages from 127.0.0.9 within the hour
    for (let i = 0; i < 3; i++) {
      const r = await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.9' });
      expect(r.data?.code).toBe(250);
    }
    await open(page, 'security');
    const max = numInput(page, 'limits.messagesPerHour.max');
    expect(await max.inputValue()).toBe('100');

    // inline validation from the shared schema
    await max.fill('0');
    await expect.poll(() => page.locator('[data-rule="limits.messagesPerHour"] .field-error').textContent()).toBe('must be at least 1');
    expect(await page.locator('[data-testid="review-apply"]').getAttribute('data-disabled-reason')).toMatch(/Fix the settings marked in red/);
    await max.fill('2');
    await expect.poll(() => page.locator('[data-rule="limits.messagesPerHour"] .field-error').count()).toBe(0);
    // the change is marked with the old value and summarised in the apply bar
    expect(await page.locator('[data-rule="limits.messagesPerHour"] .field-was').textContent()).toBe('was 100 messages per hour');
    expect(await page.locator('.apply-bar').textContent()).toMatch(/1 change not applied.*Max messages per hour from one IP limit: 100 messages per hour → 2 messages per hour/);

    // Revert drops the edit
    await page.getByRole('button', { name: 'Revert' }).click();
    expect(await max.inputValue()).toBe('100');
    await max.fill('2');

    // review: the diff and the impact on the recorded traffic, before anything is applied
    await page.locator('[data-testid="review-apply"]').click();
    const dialog = page.getByRole('dialog', { name: 'Apply these changes?' });
    await dialog.waitFor();
    expect(await dialog.locator('.review-table').textContent()).toMatch(/Max messages per hour from one IP.*100 messages per hour.*2 messages per hour/);
    const summary = dialog.locator('[data-testid="impact-summary"]');
    await summary.waitFor({ timeout: 15_000 });
    expect(await summary.textContent()).toMatch(/1 newly rejected from 1 IP/);
    expect(await dialog.locator('.impact-table').textContent()).toMatch(/Messages per hour.*127\.0\.0\.9/);
    // the window can change (1 h / 24 h / 7 d)
    await dialog.getByRole('radio', { name: 'last hour' }).check();
    await expect.poll(() => summary.textContent(), { timeout: 15_000 }).toMatch(/1 newly rejected/);
    expect((await admin.call('config.get', {})).config.limits.messagesPerHour.max).toBe(100); // nothing applied yet

    await dialog.locator('[data-testid="apply"]').click();
    await page.getByTestId('toast').filter({ hasText: /Applied: 1 setting changed/ }).waitFor();
    expect((await admin.call('config.get', {})).config.limits.messagesPerHour.max).toBe(2);
    expect(await page.locator('.apply-bar').textContent()).toMatch(/No changes/);

    // enforced at once: 127.0.0.10 may send 2 messages, the third is refused at MAIL FROM
    for (let i = 0; i < 2; i++) expect((await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.10' })).data?.code).toBe(250);
    const third = await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.10' });
    expect(third.mail.code).toBe(450);
    expect(third.mail.text).toMatch(/^4\.7\.1 .*limit 2/);

    // monitor mode over the form: accepted again, reported as would-have-rejected
    await page.locator('[data-field="limits.messagesPerHour.mode"] input[value="monitor"]').check();
    await page.locator('[data-testid="review-apply"]').click();
    await page.getByRole('dialog', { name: 'Apply these changes?' }).locator('[data-testid="apply"]').click();
    await page.getByTestId('toast').filter({ hasText: /Applied: 1 setting changed/ }).nth(0).waitFor();
    await expect.poll(async () => (await admin.call('config.get', {})).config.limits.messagesPerHour.mode).toBe('monitor');
    const fourth = await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.10' });
    expect(fourth.data?.code).toBe(250);
    expect(relay.rejections('limits.messagesPerHour').some((e) => e.ip === '127.0.0.10' && !e.enforced)).toBe(true);
  });

  it('a conflict between two admins: shows what the other changed, and re-applies mine on top', async () => {
    const { page } = c;
    await open(page, 'security');
    const base = await admin.call('config.get', {});
    await numInput(page, 'limits.messagesPerHour.max').fill('20');
    await page.locator('[data-field="checks.reverseDns.mode"] input[value="monitor"]').check();

    // the other admin changes the same limit and another one
    const theirs = structuredClone(base.config);
    theirs.limits.messagesPerHour.max = 50;
    theirs.limits.concurrentConnections.max = 3;
    await admin.call('config.update', { baseRevision: base.revision, config: theirs });
    // the console notices while editing, and keeps the edits
    await page.locator('[data-testid="config-moved"]').waitFor({ timeout: 10_000 });
    expect(await numInput(page, 'limits.messagesPerHour.max').inputValue()).toBe('20');

    // Apply anyway: refused with 4009, nothing half-applied, the dialog shows who changed what
    await page.locator('[data-testid="review-apply"]').click();
    await page.getByRole('dialog', { name: 'Apply these changes?' }).locator('[data-testid="apply"]').click();
    const conflict = page.getByRole('alertdialog', { name: /Not applied: someone else changed the configuration/ });
    await conflict.waitFor({ timeout: 10_000 });
    // the revisions come from config.history, fetched (or refetched) as the dialog opens: wait for them
    await expect.poll(async () => (await conflict.textContent()) ?? '', { timeout: 10_000 }).toMatch(new RegExp(`Revision ${base.revision + 1}: admin`));
    const text = (await conflict.textContent()) ?? '';
    expect(text).toMatch(/Max concurrent SMTP connections from one IP: limit.*10 connections at once.*3 connections at once/);
    expect(await conflict.locator('[data-conflict="limits.messagesPerHour.max"]').textContent()).toMatch(
      new RegExp(`^[^0-9]*${base.config.limits.messagesPerHour.max} messages? per hour50 messages per hour20 messages per hour$`),
    );
    await page.screenshot({ path: screenshotPath('admin-security-conflict', 'light') });
    const now = await admin.call('config.get', {});
    expect(now.config.checks.reverseDns.mode).toBe('enforce');
    expect(now.config.limits.messagesPerHour.max).toBe(50);

    // re-apply on top: the review opens again, based on the new revision
    await conflict.locator('[data-testid="reapply"]').click();
    const review = page.getByRole('dialog', { name: 'Apply these changes?' });
    await review.waitFor();
    expect(await review.textContent()).toMatch(new RegExp(`Based on revision ${now.revision}`));
    await review.locator('[data-testid="apply"]').click();
    await page.getByTestId('toast').filter({ hasText: /Applied: 2 settings changed/ }).waitFor();
    const after = (await admin.call('config.get', {})).config;
    expect(after.limits.messagesPerHour.max).toBe(20); // mine
    expect(after.checks.reverseDns.mode).toBe('monitor'); // mine
    expect(after.limits.concurrentConnections.max).toBe(3); // theirs, kept

    // put things back for the next tests (enforce, 100)
    const cur = await admin.call('config.get', {});
    const back = structuredClone(cur.config);
    back.limits.messagesPerHour = { mode: 'enforce', max: 100 };
    back.checks.reverseDns.mode = 'enforce';
    back.limits.concurrentConnections.max = 10;
    await admin.call('config.update', { baseRevision: cur.revision, config: back });
  });

  it('trusted groups: inline validation, add with an expiry, expired entries greyed, remove with Undo', async () => {
    const { page } = c;
    await admin.call('groups.addEntry', { group: 'Trusted', address: '198.51.100.0/24', comment: 'old partner', expiresAt: new Date(Date.now() - 3 * 3600_000).toISOString() });
    await open(page, 'groups');
    const card = page.locator('[data-group="Trusted"]');
    await card.waitFor();
    const expired = card.locator('tr[data-address="198.51.100.0/24"]');
    await expired.waitFor();
    expect(await expired.getAttribute('data-expired')).toBe('true');
    expect(await expired.textContent()).toMatch(/expired 3 h ago/);
    expect(await card.locator('.group-head').textContent()).toMatch(/Exempt from limits.*May relay/);
    expect(await headers(card)).toEqual(['Address', 'Comment', 'Expiry', 'Added by', 'Added', 'Actions']);

    const form = card.locator('form.add-entry');
    const address = form.getByLabel('Address, CIDR or range');
    await address.fill('192.0.2.1/24');
    await expect.poll(() => form.locator('.field-error').first().textContent()).toMatch(/host bits set; did you mean 192\.0\.2\.0\/24/);
    await address.fill('192.0.2.0/24');
    await expect.poll(() => form.locator('.canonical').textContent()).toBe('saved as 192.0.2.0/24: 256 addresses');
    await form.getByLabel('Comment').fill('office');
    await form.getByLabel('Expires').selectOption('1d');
    await form.getByRole('button', { name: 'Add to Trusted' }).click();
    const row = card.locator('tr[data-address="192.0.2.0/24"]');
    await row.waitFor();
    expect(await row.textContent()).toMatch(/office.*expires in (23 h 59 min|24 h).*admin/);
    const entry = (await admin.call('config.get', {})).config.groups.Trusted!.find((e) => e.address === '192.0.2.0/24')!;
    expect(entry).toMatchObject({ comment: 'office', addedBy: 'admin' });
    expect(Math.abs(Date.parse(entry.expiresAt!) - (Date.now() + 86_400_000))).toBeLessThan(60_000);

    // remove, confirmed; Undo puts it back
    await row.getByRole('button', { name: 'Remove 192.0.2.0/24 from Trusted' }).click();
    await page.getByRole('alertdialog', { name: /Remove 192\.0\.2\.0\/24 from "Trusted"/ }).getByRole('button', { name: 'Remove' }).click();
    await row.waitFor({ state: 'detached' });
    expect((await admin.call('config.get', {})).config.groups.Trusted!.some((e) => e.address === '192.0.2.0/24')).toBe(false);
    await page.getByTestId('toast').filter({ hasText: 'Removed 192.0.2.0/24' }).getByRole('button', { name: 'Undo' }).click();
    await row.waitFor();
    expect((await admin.call('config.get', {})).config.groups.Trusted!.find((e) => e.address === '192.0.2.0/24')).toMatchObject({ comment: 'office' });

    // tidy up the expired entries in one config change
    await card.getByRole('button', { name: 'Remove expired…' }).click();
    const tidy = page.getByRole('dialog', { name: 'Remove 1 expired entry from "Trusted"?' });
    expect(await tidy.textContent()).toMatch(/198\.51\.100\.0\/24.*old partner/);
    await tidy.getByRole('button', { name: 'Remove expired' }).click();
    await expired.waitFor({ state: 'detached' });
    const trusted = (await admin.call('config.get', {})).config.groups.Trusted!.map((e) => e.address);
    expect(trusted).toContain('192.0.2.0/24');
    expect(trusted).not.toContain('198.51.100.0/24');
  });

  it('clients: a blocked client, Unblock, Trust with an expiry, and Everything from this IP', async () => {
    const { page } = c;
    // 127.0.0.12 hits the unknown-recipient limit and is blocked
    const many = Array.from({ length: 10 }, (_, i) => `nobody${i}@example.com`);
    await sendMail(relay.port, { from: 'spam@example.org', to: many, localAddress: '127.0.0.12' }).catch(() => {});
    await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.11' });
    await open(page, 'clients');
    const blocked = page.locator('tr[data-ip="127.0.0.12"]');
    await blocked.waitFor({ timeout: 10_000 });
    await expect.poll(() => blocked.textContent(), { timeout: 10_000 }).toMatch(/Blocked, \d+ min left.*Too many unknown recipients/);
    expect(await blocked.getAttribute('class')).toMatch(/row-bad/);
    expect(await headers(page.locator('.view'))).toEqual(['IP', 'Connections', 'Messages / h', 'Unknown rcpt / h', 'AUTH fails', 'Status', 'Last seen', 'Recent rejections', 'Actions']);
    expect(await page.getByRole('columnheader', { name: 'Messages / h' }).getAttribute('title')).toBe('accepted messages in the last 60 minutes');
    // the recent rejections open in words
    await blocked.locator('.rejections button').click();
    expect(await page.locator('.detail-row').textContent()).toMatch(/Unknown recipient|Unknown recipients/);

    await blocked.getByRole('button', { name: 'Unblock' }).click();
    await page.getByRole('dialog', { name: 'Unblock 127.0.0.12?' }).getByRole('button', { name: 'Unblock' }).click();
    await page.getByTestId('toast').filter({ hasText: 'Unblocked 127.0.0.12' }).waitFor();
    await expect.poll(() => blocked.textContent(), { timeout: 10_000 }).not.toMatch(/Blocked,/);

    const good = page.locator('tr[data-ip="127.0.0.11"]');
    await good.getByRole('button', { name: 'Trust…' }).click();
    const dlg = page.getByRole('dialog', { name: 'Trust 127.0.0.11?' });
    await dlg.getByLabel('Trust for').selectOption('1h');
    await dlg.getByLabel('Comment').fill('sales laptop');
    await dlg.getByRole('button', { name: 'Trust' }).click();
    await page.getByTestId('toast').filter({ hasText: 'Trusted 127.0.0.11 in "Trusted"' }).waitFor();
    await expect.poll(() => good.textContent(), { timeout: 10_000 }).toMatch(/Trustedgroup "Trusted", until \d{4}-/);
    expect((await admin.call('config.get', {})).config.groups.Trusted!.find((e) => e.address === '127.0.0.11')).toMatchObject({ comment: 'sales laptop' });

    await good.getByRole('button', { name: 'Everything from this IP' }).click();
    await page.locator('[data-testid="live-view"]').waitFor();
    expect(await page.locator('input[aria-label="Filter by IP address"]').inputValue()).toBe('127.0.0.11');
  });

  it('queue: lists deferred mail with its last error; Delete asks first', async () => {
    const { page } = c;
    await open(page, 'queue');
    const rows = page.locator('tr[data-queue-id]');
    await rows.first().waitFor({ timeout: 15_000 });
    expect(await headers(page.locator('.view table').last())).toEqual(['Queue id', 'From', 'To', 'Size', 'Attempts', 'Next attempt', 'Last error', 'Actions']);
    const before = (await admin.call('queue.list', {})).total;
    expect(before).toBeGreaterThan(0);
    const id = (await rows.first().getAttribute('data-queue-id'))!;
    await rows.first().getByRole('button', { name: 'Delete…' }).click();
    const dlg = page.getByRole('alertdialog', { name: `Delete ${id}?` });
    expect(await dlg.textContent()).toMatch(/gone for good/);
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    expect((await admin.call('queue.list', {})).items.some((m) => m.id === id)).toBe(true);
    await rows.first().getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('alertdialog', { name: `Delete ${id}?` }).getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByTestId('toast').filter({ hasText: `Deleted ${id}` }).waitFor();
    expect((await admin.call('queue.list', {})).items.some((m) => m.id === id)).toBe(false);
    await page.locator(`tr[data-queue-id="${id}"]`).waitFor({ state: 'detached' });
  });

  it('audit: who changed what, readable; restore a revision after seeing what it changes', async () => {
    const { page } = c;
    await open(page, 'audit');
    const entry = page.locator('.audit-entry[data-method="config.update"]').first();
    await entry.waitFor();
    // the newest: removing the expired entries, in words
    expect(await entry.textContent()).toMatch(/admin.*changed the configuration/);
    expect(await entry.locator('.change-list').textContent()).toMatch(/Group "Trusted": entry 198\.51\.100\.0\/24removed.*"old partner"/);
    const limits = page.locator('.audit-entry[data-method="config.update"]').filter({ hasText: 'Max messages per hour from one IP: limit' }).first();
    expect(await limits.locator('.change-list').textContent()).toMatch(/messages per hour/);
    expect(await page.locator('.audit-entry[data-method="groups.removeEntry"]').first().textContent()).toMatch(/192\.0\.2\.0\/24/);

    // restore the revision the first Apply made (limit 2): the dialog shows the difference first
    const audit = (await admin.call('audit.list', {})).entries;
    const first = audit.filter((e) => e.method === 'config.update' && e.changes?.some((x) => x.path === 'limits.messagesPerHour.max' && x.after === 2)).at(-1)!;
    const target = first.revision!;
    await page.locator(`.audit-entry[data-seq="${first.seq}"]`).getByRole('button', { name: `Restore revision ${target}…` }).click();
    const dlg = page.getByRole('alertdialog', { name: `Restore the configuration of revision ${target}?` });
    await expect.poll(() => dlg.textContent(), { timeout: 10_000 }).toMatch(/Max messages per hour from one IP: limit.*100 messages per hour.*2 messages per hour/);
    await dlg.getByRole('button', { name: 'Restore', exact: true }).click();
    await page.getByTestId('toast').filter({ hasText: `Restored revision ${target}` }).waitFor();
    expect((await admin.call('config.get', {})).config.limits.messagesPerHour.max).toBe(2);

    // the revisions tab lists it too
    await page.getByRole('tab', { name: 'Configuration revisions' }).click();
    await page.locator('.audit-entry[data-revision]').first().waitFor();
    expect(await page.locator('.audit-entry[data-revision]').first().textContent()).toMatch(new RegExp(`current.*config\\.revert to ${target}`));
    expect(pageErrors(c)).toEqual([]);
  });

  it('screenshots of the admin views, light and dark', async () => {
    const { page } = c;
    // a picture worth looking at: a rule in monitor mode, trusted entries (one expired), a partner range, a blocked client
    const cur = await admin.call('config.get', {});
    const next = structuredClone(cur.config);
    next.limits.messagesPerHour = { mode: 'enforce', max: 200 };
    next.checks.reverseDns.mode = 'monitor';
    next.checks.maxMessageSize.maxBytes = 50 * 1024 * 1024;
    await admin.call('config.update', { baseRevision: cur.revision, config: next });
    const inDays = (d: number) => new Date(Date.now() + d * 86_400_000).toISOString();
    await admin.call('groups.addEntry', { group: 'Trusted', address: '192.0.2.0/24', comment: 'office network' });
    await admin.call('clients.trust', { ip: '127.0.0.11', comment: 'sales laptop (campaign)', expiresAt: inDays(1) });
    await admin.call('groups.addEntry', { group: 'Trusted', address: '198.51.100.7', comment: 'contractor', expiresAt: inDays(-0.125) });
    await admin.call('groups.addEntry', { group: 'Partners', address: '203.0.113.10-203.0.113.20', comment: 'billing provider', expiresAt: inDays(7) });
    const many = Array.from({ length: 10 }, (_, i) => `nobody${i}@example.com`);
    await sendMail(relay.port, { from: 'spam@example.org', to: many, localAddress: '127.0.0.15' }).catch(() => {});
    await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com', 'alice@example.com'], localAddress: '127.0.0.13' });

    const shoot = async (name: string, scheme: 'light' | 'dark') => {
      // toasts of earlier steps would cover the view
      for (const x of await page.locator('.toast-close').all()) await x.click().catch(() => {});
      await page.waitForTimeout(250);
      await page.screenshot({ path: screenshotPath(`admin-${name}`, scheme) });
    };
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const view of ['security', 'groups', 'clients', 'queue', 'audit'] as const) {
        await open(page, view);
        if (view === 'clients') await page.locator('tr[data-ip="127.0.0.15"] .badge-bad').waitFor();
        await shoot(view, scheme);
      }
    }
    // the review dialog with its impact preview
    await open(page, 'security');
    await numInput(page, 'limits.messagesPerHour.max').fill('2');
    await page.locator('[data-field="checks.reverseDns.mode"] input[value="enforce"]').check();
    await page.locator('[data-testid="review-apply"]').click();
    await page.locator('[data-testid="impact-summary"]').waitFor({ timeout: 15_000 });
    await shoot('security-review', 'dark');
    await page.emulateMedia({ colorScheme: 'light' });
    await shoot('security-review', 'light');
    await page.getByRole('button', { name: 'Keep editing' }).click();
    await page.getByRole('button', { name: 'Revert' }).click();
    expect(pageErrors(c)).toEqual([]);
    // 12 screenshots in a real Chromium: about 26 s alone, more on a loaded machine
  }, 90_000);
});

describe.skipIf(!chromiumPath)('console: a viewer token (Chromium, real relay)', () => {
  let c: ConsolePage;

  consoleSuite({}, async (s) => {
    ({ c } = s);
    const token = s.relay.relay.tokens.create('night-shift', 'viewer');
    const admin = await s.relay.admin();
    await admin.call('groups.addEntry', { group: 'Trusted', address: '192.0.2.0/24', comment: 'office' });
    await sendMail(s.relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.14' });
    c.page.setDefaultTimeout(10_000);
    await addServerAndAccept(c.page, s.relay, { token });
  });

  it('sees every admin view, with each control disabled and the reason in words', async () => {
    const { page } = c;
    const reason = /viewer token: it can see everything but change nothing/;
    expect(await page.locator('.statusbar').textContent()).toMatch(/night-shift · viewer/);

    await open(page, 'security');
    expect(await page.locator('.disabled-reason').textContent()).toMatch(reason);
    const inputs = page.locator('.security-view .rule-card input');
    const n = await inputs.count();
    expect(n).toBeGreaterThan(30);
    type Input = { disabled: boolean; getAttribute(name: string): string | null };
    const states = await inputs.evaluateAll((els) => (els as unknown as Input[]).map((e) => ({ disabled: e.disabled, why: e.getAttribute('data-disabled-reason') })));
    for (const s of states) {
      expect(s.disabled).toBe(true);
      expect(s.why).toMatch(reason);
    }
    expect(await page.locator('[data-testid="review-apply"]').getAttribute('data-disabled-reason')).toMatch(reason);

    await open(page, 'groups');
    await page.locator('[data-group="Trusted"] tr[data-address="192.0.2.0/24"]').waitFor();
    expect(await page.getByRole('button', { name: 'Remove 192.0.2.0/24 from Trusted' }).getAttribute('data-disabled-reason')).toMatch(reason);
    expect(await page.getByRole('button', { name: 'Add to Trusted' }).getAttribute('data-disabled-reason')).toMatch(reason);
    expect(await page.locator('form.add-entry').getByLabel('Address, CIDR or range').isDisabled()).toBe(true);

    await open(page, 'clients');
    const row = page.locator('tr[data-ip="127.0.0.14"]');
    await row.waitFor({ timeout: 10_000 });
    expect(await row.getByRole('button', { name: 'Trust…' }).getAttribute('data-disabled-reason')).toMatch(reason);
    // looking is allowed
    expect(await row.getByRole('button', { name: 'Everything from this IP' }).isEnabled()).toBe(true);

    await open(page, 'queue');
    const q = page.locator('tr[data-queue-id]').first();
    await q.waitFor({ timeout: 15_000 });
    expect(await q.getByRole('button', { name: 'Delete…' }).getAttribute('data-disabled-reason')).toMatch(reason);
    expect(await q.getByRole('button', { name: 'Retry' }).getAttribute('data-disabled-reason')).toMatch(reason);

    await open(page, 'audit');
    await page.getByRole('tab', { name: 'Configuration revisions' }).click();
    const restore = page.getByRole('button', { name: 'Restore…' }).first();
    await restore.waitFor();
    expect(await restore.getAttribute('data-disabled-reason')).toMatch(reason);
    await page.screenshot({ path: screenshotPath('admin-viewer-audit', 'light') });
    expect(pageErrors(c)).toEqual([]);
  });
});
