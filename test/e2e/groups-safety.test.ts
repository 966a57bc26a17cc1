/**
 * The trusted-groups view in Chromium against a real relay, where a slip is expensive: a wide entry in a group that
 * may relay or is exempt from limits is warned about before the click and
 * confirmed, naming the consequence (0.0.0.0/0 in "Trusted", an open relay, is refused by the relay and not offered); an address already in the group says what Replace changes and can be undone;
 * a group name differing only in case is warned about; the search box's placeholder is not clipped; the Remove
 * dialog's list reads as sentences; and an entry shows as expired at its expiry (page clock), not up to a minute later.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { ManageRelay, WssClient } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, screenshotPath, type ConsolePage } from './harness.ts';

const open = async (page: Page, view: 'groups' | 'queue') => {
  await page.click(`[data-view-id="${view}"]`);
  await page.locator(`.${view}-view`).waitFor({ timeout: 10_000 });
};

/** the little of the DOM the page-side checks use (the tests are typed without the DOM lib) */
interface Styled {
  style: { color: string };
  remove(): void;
  parentElement: { append(e: Styled): void };
  ownerDocument: {
    createElement(tag: 'span'): Styled;
    createElement(tag: 'canvas'): { getContext(kind: '2d'): { font: string; measureText(t: string): { width: number } } };
    defaultView: { getComputedStyle(e: Styled): { color: string; font: string; paddingLeft: string; paddingRight: string } };
  };
}

const pageErrors = (c: ConsolePage) => c.errors.filter((e) => !/Failed to load resource|'frame-ancestors' is ignored/.test(e));

describe.skipIf(!chromiumPath)('console: trusted groups, safe adding (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let admin: WssClient;
  const trusted = async () => (await admin.call('config.get', {})).config.groups.Trusted ?? [];

  consoleSuite({}, async (s) => {
    ({ relay, c } = s);
    admin = await relay.admin();
    // "Office": exempt from limits only; "Spare": used by no rule
    const cur = await admin.call('config.get', {});
    const next = structuredClone(cur.config);
    next.groups.Office = [];
    next.groups.Spare = [];
    next.limits.exemptGroups = ['Trusted', 'Office'];
    await admin.call('config.update', { baseRevision: cur.revision, config: next });
    c.page.setDefaultTimeout(10_000);
    await addServerAndAccept(c.page, relay);
  });

  it('0.0.0.0/0 in a group that may relay: said in danger colours as typed, and not offered (the relay refuses an open relay)', async () => {
    const { page } = c;
    await open(page, 'groups');
    const card = page.locator('[data-group="Trusted"]');
    const form = card.locator('form.add-entry');
    await form.getByLabel('Address, CIDR or range').fill('0.0.0.0/0');
    const warning = form.getByTestId('wide-warning');
    await expect.poll(() => warning.textContent()).toBe(
      '"Trusted" may relay: any IPv4 address on the internet (all 4,294,967,296) would relay mail to any domain through this server (an open relay). The relay refuses it: let those clients log in (SMTP AUTH), or type their own networks.',
    );
    // in the danger colour (--bad), not the green of a harmless "saved as"
    const colours = await form.getByTestId('wide-warning').evaluate((el) => {
      const probe = (el as Styled).ownerDocument.createElement('span');
      probe.style.color = 'var(--bad)';
      (el as Styled).parentElement.append(probe);
      const view = (el as Styled).ownerDocument.defaultView;
      const bad = view.getComputedStyle(probe).color;
      probe.remove();
      return { bad, warning: view.getComputedStyle(el as Styled).color };
    });
    expect(colours.warning).toBe(colours.bad);
    await page.screenshot({ path: screenshotPath('groups-open-relay-hint', 'light') });
    // no way to add it, and the reason is on the button; the relay itself refuses it too
    const button = form.getByRole('button', { name: 'Add to Trusted' });
    expect(await button.isDisabled()).toBe(true);
    expect(await form.locator('[data-disabled-reason]').first().getAttribute('data-disabled-reason')).toBe(
      'The relay refuses 0.0.0.0/0 in "Trusted": it would make the server an open relay.',
    );
    const refused = await admin.callError('groups.addEntry', { group: 'Trusted', address: '0.0.0.0/0' });
    expect(refused.message).toContain('0.0.0.0/0 is every IPv4 address, and "Trusted" is in relay.allowGroups');
    expect((await trusted()).map((e) => e.address)).not.toContain('0.0.0.0/0');
    await form.getByLabel('Address, CIDR or range').fill('');
  });

  it('a wide network in a group that may relay: confirmed naming what it lets through, undoable', async () => {
    const { page } = c;
    const card = page.locator('[data-group="Trusted"]');
    const form = card.locator('form.add-entry');
    await form.getByLabel('Address, CIDR or range').fill('10.0.0.0/8');
    await expect.poll(() => form.getByTestId('wide-warning').textContent()).toBe(
      '"Trusted" may relay: any of the 16,777,216 addresses in 10.0.0.0/8 may relay mail to any domain through this server.',
    );
    // the click asks first; Cancel adds nothing
    await form.getByRole('button', { name: 'Add to Trusted' }).click();
    const dlg = page.getByRole('alertdialog', { name: 'Let 10.0.0.0/8 relay mail through this server?' });
    await dlg.waitFor();
    expect(await dlg.textContent()).toMatch(/Any of the 16,777,216 addresses in 10\.0\.0\.0\/8 may relay mail to any domain through this server.*also skip the per-IP limits/);
    await page.screenshot({ path: screenshotPath('groups-wide-relay-confirm', 'light') });
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    await dlg.waitFor({ state: 'detached' });
    expect((await trusted()).map((e) => e.address)).not.toContain('10.0.0.0/8');

    // confirmed: added, and the toast can take it back
    await form.getByRole('button', { name: 'Add to Trusted' }).click();
    await dlg.getByRole('button', { name: 'Add 10.0.0.0/8 anyway' }).click();
    const toast = page.getByTestId('toast').filter({ hasText: 'Added 10.0.0.0/8 to "Trusted"' });
    await toast.waitFor();
    expect((await trusted()).map((e) => e.address)).toContain('10.0.0.0/8');
    await toast.getByRole('button', { name: 'Undo' }).click();
    await page.getByTestId('toast').filter({ hasText: '10.0.0.0/8 is out of "Trusted" again' }).waitFor();
    expect((await trusted()).map((e) => e.address)).not.toContain('10.0.0.0/8');
    await card.locator('tr[data-address="10.0.0.0/8"]').waitFor({ state: 'detached' });
  });

  it('a wide entry in a group only exempt from limits says they skip the limits; a group no rule uses is not warned about', async () => {
    const { page } = c;
    const office = page.locator('[data-group="Office"] form.add-entry');
    await office.getByLabel('Address, CIDR or range').fill('10.0.0.0/8');
    await expect.poll(() => office.getByTestId('wide-warning').textContent()).toBe(
      '"Office" is exempt from limits: any of the 16,777,216 addresses in 10.0.0.0/8 would skip the per-IP limits.',
    );
    await office.getByRole('button', { name: 'Add to Office' }).click();
    const dlg = page.getByRole('alertdialog', { name: 'Exempt 10.0.0.0/8 from the per-IP limits?' });
    expect(await dlg.textContent()).not.toMatch(/relay mail/);
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    expect((await admin.call('config.get', {})).config.groups.Office).toEqual([]);

    // an ordinary network in a relaying group: no warning, no question
    const form = page.locator('[data-group="Trusted"] form.add-entry');
    await form.getByLabel('Address, CIDR or range').fill('192.168.0.0/16');
    await expect.poll(() => form.locator('.canonical').textContent()).toBe('saved as 192.168.0.0/16: 65,536 addresses');
    expect(await form.getByTestId('wide-warning').count()).toBe(0);
    await form.getByLabel('Address, CIDR or range').fill('');

    const spare = page.locator('[data-group="Spare"] form.add-entry');
    await spare.getByLabel('Address, CIDR or range').fill('10.0.0.0/8');
    await expect.poll(() => spare.locator('.canonical').textContent()).toBe('saved as 10.0.0.0/8: 16,777,216 addresses');
    expect(await spare.getByTestId('wide-warning').count()).toBe(0);
    await spare.getByRole('button', { name: 'Add to Spare' }).click();
    await page.getByTestId('toast').filter({ hasText: 'Added 10.0.0.0/8 to "Spare"' }).waitFor();
  });

  it('an address already in the group: says what Replace changes, and Undo restores the entry it had', async () => {
    const { page } = c;
    const expiresAt = new Date(Date.now() + 57 * 60_000 + 30_000).toISOString();
    await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.6', comment: 'sales laptop', expiresAt });
    const card = page.locator('[data-group="Trusted"]');
    await card.locator('tr[data-address="127.0.0.6"]').waitFor();
    const form = card.locator('form.add-entry');
    await form.getByLabel('Address, CIDR or range').fill('127.0.0.6');
    const note = form.getByTestId('replace-note');
    await expect.poll(() => note.textContent()).toBe('already in "Trusted" (expires in 57 min, comment "sales laptop"); Replace makes it: never expires, no comment');
    await page.screenshot({ path: screenshotPath('groups-replace-note', 'light') });
    await form.getByRole('button', { name: 'Replace in Trusted' }).click();
    const toast = page.getByTestId('toast').filter({ hasText: 'Replaced the comment and expiry of 127.0.0.6 in "Trusted"' });
    await toast.waitFor();
    await expect.poll(async () => (await trusted()).find((e) => e.address === '127.0.0.6')).toMatchObject({ comment: null, expiresAt: null });
    await toast.getByRole('button', { name: 'Undo' }).click();
    await page.getByTestId('toast').filter({ hasText: '127.0.0.6 in "Trusted" has its previous comment and expiry again' }).waitFor();
    expect((await trusted()).find((e) => e.address === '127.0.0.6')).toMatchObject({ comment: 'sales laptop', expiresAt });
    await expect.poll(() => card.locator('tr[data-address="127.0.0.6"]').textContent()).toMatch(/sales laptop.*expires in 5\d min/);

    // typed again with the comment and expiry it has: nothing to change, and the button says why it is off
    await admin.call('groups.addEntry', { group: 'Trusted', address: '192.0.2.0/24', comment: 'office', expiresAt: null });
    await form.getByLabel('Address, CIDR or range').fill('192.0.2.0/24');
    await form.getByLabel('Comment').fill('office');
    await expect.poll(() => note.textContent()).toBe('already in "Trusted" with this comment and expiry (never expires, comment "office"): nothing to change');
    expect(await form.getByRole('button', { name: 'Replace in Trusted' }).getAttribute('data-disabled-reason')).toBe('It is already in "Trusted" with this comment and expiry.');
    await form.getByLabel('Address, CIDR or range').fill('');
    await form.getByLabel('Comment').fill('');
  });

  it('small things: a placeholder that fits, a Remove list in sentences, a group name differing only in case', async () => {
    const { page } = c;
    // the search box's placeholder fits in the box (it was clipped to "Find an address or com")
    const fits = await page.locator('.groups-view input[type="search"]').evaluate((el) => {
      const input = el as Styled & { placeholder: string; clientWidth: number };
      const cs = input.ownerDocument.defaultView.getComputedStyle(input);
      const ctx = input.ownerDocument.createElement('canvas').getContext('2d');
      ctx.font = cs.font;
      const room = input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
      return { text: input.placeholder, width: ctx.measureText(input.placeholder).width, room };
    });
    expect(fits.width).toBeLessThanOrEqual(fits.room);
    expect(fits.text).toBe('Address or comment');

    const card = page.locator('[data-group="Trusted"]');
    await card.getByRole('button', { name: 'Remove 192.0.2.0/24 from Trusted' }).click();
    const dlg = page.getByRole('alertdialog', { name: 'Remove 192.0.2.0/24 from "Trusted"?' });
    expect(await dlg.locator('li').allTextContents()).toEqual([
      'Clients in this network are counted against the per-IP limits again.',
      'They may no longer relay mail to other domains unless they log in.',
    ]);
    await dlg.getByRole('button', { name: 'Cancel' }).click();

    const name = page.getByLabel('New group');
    await name.fill('trusted');
    const warn = page.getByTestId('group-name-warning');
    await expect.poll(() => warn.textContent()).toBe(
      'A group "Trusted" already exists. Group names are case-sensitive, so "trusted" would be a second group, used by no rule until you add it to one in Security options. To add addresses to "Trusted", use its card below.',
    );
    expect(await page.getByRole('button', { name: 'Create anyway' }).isEnabled()).toBe(true);
    await page.screenshot({ path: screenshotPath('groups-name-case', 'light') });
    await name.fill('Trusted');
    await expect.poll(() => page.locator('.new-group .field-error').textContent()).toBe('a group with this name exists');
    await name.fill('');
    expect(pageErrors(c)).toEqual([]);
  });

  it('an entry shows as expired at its expiry, with the counts, not at the next 30 s tick (page clock)', async () => {
    const { page } = c;
    const expires = Date.now() + 60_000;
    await admin.call('groups.addEntry', { group: 'Trusted', address: '127.0.0.9', comment: 'short', expiresAt: new Date(expires).toISOString() });
    // the page's clock from here on, paused 2.5 s before the expiry; the view mounts at that moment. Each step moves
    // the clock once and waits for what the page shows (a re-render after a fake timer runs on the page's own time)
    await open(page, 'queue');
    await page.clock.install();
    await page.clock.pauseAt(expires - 2500);
    await open(page, 'groups');
    const row = page.locator('[data-group="Trusted"] tr[data-address="127.0.0.9"]');
    await row.waitFor();
    const expiry = row.locator('td').nth(1);
    expect(await expiry.textContent()).toBe('expires in 3 s');
    const head = page.locator('[data-group="Trusted"] .group-head');
    const active = async () => Number(/(\d+) active/.exec((await head.textContent()) ?? '')?.[1]);
    const before = await active();
    // the last seconds count down (a fixed 30 s tick would leave "3 s" standing)
    await page.clock.runFor(1000);
    await expect.poll(() => expiry.textContent()).toBe('expires in 2 s');
    await page.clock.runFor(1000);
    await expect.poll(() => expiry.textContent()).toBe('expires now');
    // half a second later is the expiry itself: a timer set to it, not to the next whole second, turns the row
    await page.clock.runFor(500);
    await expect.poll(() => row.getAttribute('data-expired')).toBe('true');
    expect(await expiry.textContent()).toBe('expired now');
    expect(await active()).toBe(before - 1);
    expect(await head.textContent()).toMatch(/1 expired/);
    await page.clock.resume();
  });
});
