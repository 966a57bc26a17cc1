/**
 * The salesperson story in the console, end to end: a client at 127.0.0.5 exceeds the hourly limit, the rejected
 * row appears in Live traffic, one click on "Trust this IP" (for a day, chosen before a trip to another view), the
 * next message from 127.0.0.5 in the same SMTP session is accepted, the audit log view shows who did it, and Undo in
 * the toast removes the entry again.
 * (Trusting also clears the IP's counters, so after the Undo the hourly limit counts from zero.)
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RawSmtp } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, unexpectedErrors, type ConsolePage } from './harness.ts';

describe.skipIf(!chromiumPath)('console: the salesperson story (Chromium)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let smtp: RawSmtp | null = null;

  consoleSuite({ config: { limits: { messagesPerHour: { mode: 'enforce', max: 3 } } } }, async (s) => {
    ({ relay, c } = s);
    await addServerAndAccept(c.page, relay);
  });
  // registered after consoleSuite's, so it runs before the console and the relay are closed
  afterAll(() => {
    smtp?.destroy();
  });

  const send = async (s: RawSmtp, n: number) => {
    const mail = await s.cmd('MAIL FROM:<sales@example.org>');
    if (mail.code !== 250) return mail;
    expect((await s.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
    return s.data(`Subject: offer ${n}\r\n\r\nBuy now.\r\n`);
  };

  it('rejected -> one click on Trust this IP -> the next message is accepted -> audited -> Undo removes it', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    const lasts = page.locator('select[aria-label="How long Trust this IP lasts"]');
    await lasts.selectOption('1d');
    // the choice holds for the session: a look at the dashboard and back does not reset it to "forever"
    await page.keyboard.press('Control+2');
    await page.locator('[data-testid="dashboard"]').waitFor();
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    expect(await lasts.inputValue()).toBe('1d');

    smtp = await RawSmtp.connect(relay.port, { localAddress: '127.0.0.5' });
    await smtp.hello('laptop.sales.test');
    for (let i = 1; i <= 3; i++) expect((await send(smtp, i)).code).toBe(250);
    const refused = await send(smtp, 4);
    expect(refused.code).toBe(450);
    expect(refused.text).toMatch(/^4\.7\.1 Too much mail from 127\.0\.0\.5/);

    // the rejected row appears, saying which rule and what the client was told
    const row = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.5"]').first();
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toMatch(/Messages per hour.*450.*Too much mail from 127\.0\.0\.5/);

    // one click
    const before = Date.now();
    await row.locator('[data-action="trust"]').hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.locator('[data-action="trust"]').click();
    const toast = page.locator('[data-testid="toast"]', { hasText: 'Trusted 127.0.0.5' });
    await toast.waitFor({ timeout: 10_000 });
    const entry = relay.relay.config.current.groups['Trusted']?.find((e) => e.address === '127.0.0.5');
    expect(entry).toBeTruthy();
    const expires = Date.parse(entry!.expiresAt!);
    expect(expires).toBeGreaterThanOrEqual(before + 86_400_000 - 60_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 86_400_000 + 60_000);

    // the very next message of the same SMTP session goes through, and the console shows it
    expect((await send(smtp, 5)).code).toBe(250);
    await page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.5"]').first().waitFor({ timeout: 10_000 });

    // Undo in the toast takes it back: the entry is gone and the limit applies again
    await toast.getByRole('button', { name: 'Undo' }).click();
    await page.locator('[data-testid="toast"]', { hasText: '127.0.0.5 is no longer trusted' }).waitFor({ timeout: 10_000 });
    expect(relay.relay.config.current.groups['Trusted']?.some((e) => e.address === '127.0.0.5') ?? false).toBe(false);
    // (trusting cleared its counters, so the limit counts from zero again)
    const cl = await c.core.connection.call('clients.list', { ip: '127.0.0.5' });
    expect(cl.clients[0]).toMatchObject({ ip: '127.0.0.5', trusted: false });
    // ... and applies again in the same session. The message sent while trusted counts (a counter counts whatever the
    // client's exemption, README "Security options"): two more pass, the next is the 4th in the hour and is refused
    for (let i = 6; i <= 7; i++) expect([i, (await send(smtp, i)).code]).toEqual([i, 250]);
    expect((await send(smtp, 8)).text).toMatch(/^4\.7\.1 Too much mail from 127\.0\.0\.5: 3 messages in the last hour \(limit 3\)/);
    await smtp.quit();
    smtp = null;

    // the audit log view shows who trusted it, and the undo
    await page.keyboard.press('Control+8');
    const trustEntry = page.locator('.audit-entry[data-method="clients.trust"]').first();
    await trustEntry.waitFor({ timeout: 10_000 });
    expect(await trustEntry.textContent()).toMatch(/admin.*127\.0\.0\.5/s);
    await page.locator('.audit-entry[data-method="groups.removeEntry"]').first().waitFor({ timeout: 10_000 });
    const audit = await c.core.connection.call('audit.list', { limit: 10 });
    expect(audit.entries.map((e) => e.method)).toEqual(expect.arrayContaining(['clients.trust', 'groups.removeEntry']));
    expect(audit.entries.find((e) => e.method === 'clients.trust')).toMatchObject({ by: 'admin', ok: true, params: expect.objectContaining({ ip: '127.0.0.5' }) });
    // the dashboard counts the rejections under their rule (the one before the trust, the one after Undo: 2; the
    // count lags up to a stats tick, so it is polled until it is 2, which a stale 1 never matches) and the accepted messages
    await page.keyboard.press('Control+2');
    await page.locator('.uplot canvas').first().waitFor({ timeout: 10_000 });
    await expect.poll(async () => (await page.locator('[data-testid="rejections-by-rule"]').textContent()) ?? '', { timeout: 10_000 }).toMatch(/Messages per hour\s*2\b/);
    expect(await page.locator('[data-testid="kpi-accepted"]').textContent()).toMatch(/[4-9] since the relay started/);
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
