/**
 * Live traffic's "Trust this IP" in Chromium against a real relay (default config: the trust group "Trusted" is in
 * relay.allowGroups too): a "Relay access denied" row names the refused recipient and asks before trusting, saying
 * that the address will be able to relay to any domain, with a bounded expiry; the toast says relaying was granted;
 * the address's rows then say "trusted"; a rate-limit rejection stays one click, with the consequence said in the
 * panel before it and in the toast after it; the panel does not contradict the rejection after the trust reset the
 * counters; connect events make no claim about reverse DNS.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RawSmtp, sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, screenshotPath, unexpectedErrors, type ConsolePage } from './harness.ts';

describe.skipIf(!chromiumPath)('console: trusting from Live traffic says what it grants (Chromium, real relay)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let smtp: RawSmtp | null = null;

  consoleSuite({ config: { limits: { messagesPerHour: { mode: 'enforce', max: 2 } } }, page: { viewport: { width: 1440, height: 900 } } }, async (s) => {
    ({ relay, c } = s);
    c.page.setDefaultTimeout(10_000);
    await addServerAndAccept(c.page, relay);
  });
  afterAll(() => {
    smtp?.destroy();
  });

  const entry = (ip: string) => relay.relay.config.current.groups['Trusted']?.find((e) => e.address === ip);

  it('a relay-access rejection: the recipient is shown, and trusting asks first, naming the relaying, for a day by default', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    const r = await sendMail(relay.port, { from: 'me@example.org', to: ['someone@elsewhere.test'], localAddress: '127.0.0.4' });
    expect(r.rcpts[0]!.code).toBe(554);

    const row = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.4"]').first();
    await row.waitFor();
    expect(await row.textContent()).toMatch(/Relay access denied · to <someone@elsewhere\.test> · 554/);
    // the button says it asks, and its tooltip says what trusting does
    const button = row.locator('[data-action="trust"]');
    expect(await button.textContent()).toBe('Trust this IP…');
    expect(await button.getAttribute('title')).toMatch(/may send mail through this relay to any domain/);

    // the detail: the refused recipient, and the consequence before any click
    await row.hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.click();
    const panel = page.locator('[data-testid="session-panel"]');
    expect(await panel.locator('[data-testid="reject-to"]').textContent()).toBe('Refused recipient: someone@elsewhere.test');
    expect(await panel.locator('[data-testid="trust-effect"]').textContent()).toMatch(
      /Trusting adds 127\.0\.0\.4 to "Trusted": it skips the per-IP limits.*"Trusted" is also allowed to relay \(relay\.allowGroups\), so 127\.0\.0\.4 may send mail through this relay to any domain, and the reverse DNS and sender domain checks no longer apply to it\. You will be asked to confirm\./,
    );
    // no claim about reverse DNS the relay never checked at connect
    await panel.locator('.session-events li').nth(2).waitFor();
    const evs = (await panel.locator('.session-events').textContent()) ?? '';
    expect(evs).toMatch(/connect\s*connected/);
    expect(evs).not.toMatch(/reverse DNS/);

    // the click asks first; nothing is trusted yet
    await button.click();
    const dlg = page.getByRole('alertdialog', { name: 'Let 127.0.0.4 relay mail to any domain?' });
    await dlg.waitFor();
    expect(await dlg.textContent()).toMatch(/refused someone@elsewhere\.test because 127\.0\.0\.4 may not relay.*will be able to send mail through this relay to any domain/s);
    // bounded by default, whatever "Trust lasts" says (forever); the user could pick forever here
    expect(await page.locator('select[aria-label="How long Trust this IP lasts"]').inputValue()).toBe('forever');
    expect(await dlg.getByLabel('How long to trust this address').inputValue()).toBe('1d');
    expect(entry('127.0.0.4')).toBeUndefined();
    await page.screenshot({ path: screenshotPath('live-trust-relay-confirm', 'light') });
    // Cancel leaves it as it was
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    await dlg.waitFor({ state: 'detached' });
    expect(entry('127.0.0.4')).toBeUndefined();

    await button.click();
    const before = Date.now();
    await page.getByRole('alertdialog', { name: 'Let 127.0.0.4 relay mail to any domain?' }).getByRole('button', { name: 'Trust and allow relaying' }).click();
    const toast = page.getByTestId('toast').filter({ hasText: 'Trusted 127.0.0.4' });
    await toast.waitFor();
    expect(await toast.textContent()).toMatch(/skips the per-IP limits and may relay mail to any domain \("Trusted" is in relay\.allowGroups\)/);
    const e = entry('127.0.0.4')!;
    expect(Date.parse(e.expiresAt!)).toBeGreaterThanOrEqual(before + 86_400_000 - 60_000);
    expect(Date.parse(e.expiresAt!)).toBeLessThanOrEqual(Date.now() + 86_400_000 + 60_000);
    // which is true: it may relay now
    expect((await sendMail(relay.port, { from: 'me@example.org', to: ['someone@elsewhere.test'], localAddress: '127.0.0.4' })).rcpts[0]!.code).toBe(250);

    // its rejected rows say "trusted" instead of offering the trust again
    await expect.poll(() => row.locator('[data-testid="row-trusted"]').count()).toBe(1);
    expect(await row.locator('[data-action="trust"]').count()).toBe(0);
    expect(await panel.locator('[data-testid="panel-trusted"]').textContent()).toMatch(/trusted\s*in "Trusted" until \d{4}-/);
  });

  it('a rate-limit rejection stays one click; the panel after it does not contradict the rejection', async () => {
    const { page } = c;
    smtp = await RawSmtp.connect(relay.port, { localAddress: '127.0.0.6' });
    await smtp.hello('laptop.sales.test');
    for (let i = 0; i < 2; i++) {
      expect((await smtp.cmd('MAIL FROM:<sales@example.org>')).code).toBe(250);
      expect((await smtp.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
      expect((await smtp.data('Subject: hi\r\n\r\nhello\r\n')).code).toBe(250);
    }
    expect((await smtp.cmd('MAIL FROM:<sales@example.org>')).code).toBe(450);

    const row = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.6"]').first();
    await row.waitFor();
    await row.hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.click();
    const panel = page.locator('[data-testid="session-panel"]');
    await expect.poll(() => panel.locator('[data-testid="trust-effect"]').textContent()).toMatch(/127\.0\.0\.6 may send mail through this relay to any domain/);
    expect(await panel.locator('[data-testid="trust-effect"]').textContent()).not.toMatch(/confirm/);
    await expect.poll(() => panel.locator('[data-testid="client-info"]').textContent()).toMatch(/^127\.0\.0\.6 now: 2 messages in the last hour, 1 open connection/);

    // one click, no dialog
    await panel.locator('[data-action="trust"]').click();
    const toast = page.getByTestId('toast').filter({ hasText: 'Trusted 127.0.0.6' });
    await toast.waitFor();
    expect(await page.getByRole('alertdialog').count()).toBe(0);
    expect(await toast.textContent()).toMatch(/with no expiry: from its next command it skips the per-IP limits and may relay mail to any domain.*Its counters were reset\./);
    expect(entry('127.0.0.6')).toMatchObject({ expiresAt: null });
    // the counters were reset by the trust: the panel says so rather than "0 messages" under a rejection that said 2
    await expect.poll(() => panel.locator('[data-testid="client-info"]').textContent()).toMatch(
      /^127\.0\.0\.6 now: 0 messages in the last hour \(counted since it was trusted at \d\d:\d\d:\d\d: trusting resets the counters\)/,
    );
    expect((await smtp.cmd('MAIL FROM:<sales@example.org>')).code).toBe(250);
    await smtp.quit();
    smtp = null;
    await page.screenshot({ path: screenshotPath('live-trust-after', 'light') });
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
