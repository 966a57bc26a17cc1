/**
 * One react-query cache serves every relay the console manages: after a switch from relay A to relay B, no view may
 * show A's data as B's, neither while B cannot be reached nor in the moment B's first answers are on their way, and
 * not through a view that keeps the previous page on screen while the next loads (Clients). Two real relays whose
 * configs and clients differ; the page records every A-only text that ever appears from the switch on (a
 * MutationObserver), so a flash of A's data between two renders counts too.
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { Relay } from '../../relay/relay.ts';
import { RawSmtp, sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, startRelay, unexpectedErrors, type ConsolePage } from './harness.ts';

/** only relay A has these: its Trusted entry (address and comment) and its SMTP client's address */
const A_ENTRY = { address: '192.0.2.77', comment: 'alpha-only-entry' };
const A_CLIENT = '127.0.0.31';
const A_MARKERS = [A_ENTRY.address, A_ENTRY.comment, A_CLIENT];
/** only relay B has these */
const B_ENTRY = { address: '198.51.100.88', comment: 'bravo-only-entry' };
const B_CLIENT = '127.0.0.32';

/** the little of the page the watcher uses (the tests are typed without the DOM lib) */
interface Watched {
  document: { body: { textContent: string | null } };
  MutationObserver: new (cb: () => void) => { observe(target: unknown, opts: { childList: boolean; subtree: boolean; characterData: boolean }): void };
  __rwSeen?: string[];
}

/** From now on, remember each of `markers` that the page shows at any moment (checked after every DOM change). */
async function watchFor(page: Page, markers: string[]): Promise<void> {
  await page.evaluate((ms) => {
    const w = globalThis as unknown as Watched;
    const seen: string[] = [];
    w.__rwSeen = seen;
    const check = () => {
      const text = w.document.body.textContent ?? '';
      for (const m of ms) if (text.includes(m) && !seen.includes(m)) seen.push(m);
    };
    check();
    new w.MutationObserver(check).observe(w.document.body, { childList: true, subtree: true, characterData: true });
  }, markers);
}
const seen = (page: Page) => page.evaluate(() => (globalThis as unknown as Watched).__rwSeen ?? []);

const open = async (page: Page, view: 'groups' | 'clients' | 'servers') => {
  await page.click(`[data-view-id="${view}"]`);
  await page.locator(`.view[data-view="${view}"]`).waitFor();
};

describe.skipIf(!chromiumPath)('console: one relay\'s data is never shown for another (Chromium, two real relays)', () => {
  let a: ManageRelay;
  let b: ManageRelay | null = null;
  /** relay B as restarted by the test (same address, certificate and data) */
  let bAgain: Relay | null = null;
  let bDown = false;
  let c: ConsolePage;

  // A allows one message an hour per IP, so the second test can get a rejection with a one-click trust
  consoleSuite({ config: { groups: { Trusted: [A_ENTRY] }, limits: { messagesPerHour: { mode: 'enforce', max: 1 } } } }, async (s) => {
    ({ relay: a, c } = s);
    c.page.setDefaultTimeout(15_000);
    b = await startRelay({ groups: { Trusted: [B_ENTRY] } });
    expect((await sendMail(a.port, { from: 'ann@example.org', to: ['bob@example.com'], localAddress: A_CLIENT })).data?.code).toBe(250);
    // both profiles with their certificates accepted; A last, so the console is on A
    await addServerAndAccept(c.page, b, { name: 'Relay B' });
    await addServerAndAccept(c.page, a, { name: 'Relay A' });
  });
  // registered after consoleSuite's, so it runs before the console and relay A are closed
  afterAll(async () => {
    if (!b) return;
    if (!bDown) return b.stop();
    await bAgain?.stop();
    await b.dns.close();
    fs.rmSync(b.dir, { recursive: true, force: true });
  });

  it("after a switch to B (down, then up), Groups and Clients show B's data or say there is none yet, never A's", async () => {
    const { page } = c;
    const bRelay = b!;
    // on A: its groups and its client
    await open(page, 'groups');
    await page.locator(`[data-group="Trusted"] tr[data-address="${A_ENTRY.address}"]`).waitFor();
    expect(await page.locator('[data-group="Trusted"]').textContent()).toContain(A_ENTRY.comment);
    await open(page, 'clients');
    await page.locator(`tr[data-ip="${A_CLIENT}"]`).waitFor();

    // B goes down; the user switches the console to it (from Servers, where nothing of A's is on screen)
    await bRelay.relay.stop();
    bDown = true;
    await open(page, 'servers');
    await watchFor(page, A_MARKERS);
    expect(await seen(page)).toEqual([]);
    await page.locator('[data-testid="server-card"][data-profile-name="Relay B"]').getByRole('button', { name: 'Connect' }).click();
    await page.locator('.statusbar[data-status="reconnecting"]').waitFor();
    expect(await page.locator('.statusbar').textContent()).toMatch(/Relay B/);

    // while B cannot be reached, the views say so
    await open(page, 'groups');
    await expect.poll(() => page.locator('.view').textContent(), { timeout: 15_000 }).toMatch(/Not connected: the list of trusted IP groups comes from the relay/);
    await open(page, 'clients');
    await expect.poll(() => page.locator('.view').textContent(), { timeout: 15_000 }).toMatch(/Not connected: the client list/);
    expect(await page.locator('tr[data-ip]').count()).toBe(0);

    // B comes back on the same address; the console reconnects by itself, with Clients on screen
    bAgain = await Relay.start({ dataDir: bRelay.dir, smtpListen: '127.0.0.1:0', manageListen: `127.0.0.1:${bRelay.managePort}`, log: () => {}, history: { flushMs: 20 } });
    await page.locator('.statusbar[data-status="connected"]').waitFor({ timeout: 15_000 });
    expect(await page.locator('.statusbar').textContent()).toMatch(/Relay B/);
    // connected, B's first answer maybe still on its way: A's clients were not shown meanwhile
    expect(await seen(page), "A's data shown while the console was on B").toEqual([]);
    // B's client list: empty after its restart, then its own client once it sends
    expect((await sendMail(bAgain.smtpAddress.port, { from: 'bea@example.org', to: ['bob@example.com'], localAddress: B_CLIENT })).data?.code).toBe(250);
    await page.locator(`tr[data-ip="${B_CLIENT}"]`).waitFor({ timeout: 15_000 });
    expect(await page.locator('tr[data-ip]').evaluateAll((rs) => rs.map((r) => (r as unknown as { getAttribute(n: string): string | null }).getAttribute('data-ip')))).toEqual([B_CLIENT]);
    // B's groups
    await open(page, 'groups');
    await page.locator(`[data-group="Trusted"] tr[data-address="${B_ENTRY.address}"]`).waitFor();
    expect(await page.locator('[data-group="Trusted"]').textContent()).toContain(B_ENTRY.comment);
    expect(await page.locator(`tr[data-address="${A_ENTRY.address}"]`).count()).toBe(0);

    // nothing of A's was on screen at any moment since the switch
    expect(await seen(page), "A's data shown while the console was on B").toEqual([]);

    // and back to A: A's groups, none of B's
    await open(page, 'servers');
    await page.locator('[data-testid="server-card"][data-profile-name="Relay A"]').getByRole('button', { name: 'Connect' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor();
    expect(await page.locator('.statusbar').textContent()).toMatch(/Relay A/);
    await open(page, 'groups');
    await page.locator(`[data-group="Trusted"] tr[data-address="${A_ENTRY.address}"]`).waitFor();
    expect(await page.locator(`tr[data-address="${B_ENTRY.address}"]`).count()).toBe(0);
    expect(unexpectedErrors(c.errors).filter((e) => !/Failed to load resource/.test(e))).toEqual([]);
  });
  it("an Undo left in a toast from relay A, clicked once the console is on B, is refused and sent nowhere", async () => {
    const { page } = c;
    // (the first test ends on A, with B up again)
    const ip = '127.0.0.33';
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    const smtp = await RawSmtp.connect(a.port, { localAddress: ip });
    try {
      await smtp.hello('laptop.sales.test');
      const send = async () => {
        const mail = await smtp.cmd('MAIL FROM:<sales@example.org>');
        if (mail.code !== 250) return mail;
        expect((await smtp.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
        return smtp.data('Subject: offer\r\n\r\nBuy now.\r\n');
      };
      expect((await send()).code).toBe(250);
      expect((await send()).code).toBe(450);
    } finally {
      smtp.destroy();
    }
    const row = page.locator(`.live-row[data-kind="rejected"][data-ip="${ip}"]`).first();
    await row.waitFor();
    await row.locator('[data-action="trust"]').hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.locator('[data-action="trust"]').click();
    const toast = page.locator('[data-testid="toast"]', { hasText: `Trusted ${ip}` });
    await toast.waitFor();
    expect(a.relay.config.current.groups['Trusted']?.some((e) => e.address === ip)).toBe(true);

    // the user moves to B; the toast of A's trust is still on screen (12 s with an Undo)
    await open(page, 'servers');
    await page.locator('[data-testid="server-card"][data-profile-name="Relay B"]').getByRole('button', { name: 'Connect' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor();
    expect(await page.locator('.statusbar').textContent()).toMatch(/Relay B/);
    await toast.getByRole('button', { name: 'Undo' }).click();
    const refused = page.locator('[data-testid="toast"]', { hasText: 'Nothing was sent' });
    await refused.waitFor();
    expect(await refused.textContent()).toMatch(/meant for "Relay A", but the console is now on another server/);
    // A keeps the entry (the Undo did not reach it) and B got no request (its audit log has no removal)
    expect(a.relay.config.current.groups['Trusted']?.some((e) => e.address === ip)).toBe(true);
    const bAudit = await c.core.connection.call('audit.list', { limit: 50 });
    expect(bAudit.entries.map((e) => e.method)).not.toContain('groups.removeEntry');
    expect(bAgain!.config.current.groups['Trusted']?.map((e) => e.address)).toEqual([B_ENTRY.address]);
  });
});
