/**
 * The connection's states in Chromium against a real relay, as a tired admin meets them: a refused token fixed from
 * the banner's Edit button (it connects at once), the relay's SMTP port typed for its management port (stopped, with
 * words naming the mistake, not an OpenSSL error retried for ever), a lockout (one live countdown, the full words on
 * the Servers card, "Retry now"), and buttons that say what they do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { ErrorCode } from '../../shared/protocol.ts';
import type { ConnectionState } from '../../shared/console-api.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { startManageRelay } from '../helpers/wss-client.ts';
import { RealClock, chromiumPath, launchChromium, openConsole, screenshotPath, serveDist, unexpectedErrors, type ConsolePage } from './harness.ts';

describe.skipIf(!chromiumPath)('console: connection states (Chromium)', () => {
  let relay: ManageRelay;
  let browser: Browser;
  let site: Awaited<ReturnType<typeof serveDist>>;
  let c: ConsolePage;
  let page: Page;
  const states: ConnectionState[] = [];

  beforeAll(async () => {
    [relay, browser, site] = await Promise.all([
      // two failed logins lock an address out (for the relay's default five minutes)
      startManageRelay({}, { clock: new RealClock(), relay: { manageLimits: { maxLoginFailures: 2 } } }),
      launchChromium(),
      serveDist(),
    ]);
    c = await openConsole(browser, site.url);
    page = c.page;
    c.core.on('state', (s) => states.push(s as ConnectionState));
  });
  afterAll(async () => {
    await c?.close();
    await browser?.close();
    await site?.close();
    await relay?.stop();
  });

  const bar = () => page.locator('.statusbar');
  const card = (name: string) => page.locator(`[data-testid="server-card"][data-profile-name="${name}"]`);
  const form = () => page.locator('[data-testid="server-form"]');

  it('a refused token: the card says "Dismiss", not "Disconnect"; pasting the right token from the banner connects at once', async () => {
    await form().locator('input[name="name"]').fill('Edge relay');
    await form().locator('input[name="host"]').fill('127.0.0.1');
    await form().locator('input[name="port"]').fill(String(relay.managePort));
    await form().locator('input[name="token"]').fill('rwt_not_the_token');
    await form().getByRole('button', { name: 'Save and connect' }).click();
    const prompt = page.locator('[data-testid="fingerprint-prompt"]');
    await prompt.waitFor();
    // the status bar's line says what to do; the fingerprint itself is on the page, and in the line's title
    const line = bar().locator('.status-message');
    expect(await line.textContent()).toMatch(/^First connection: compare the certificate fingerprint/);
    expect(await line.getAttribute('title')).toContain(relay.fingerprint);
    // on the Servers page, the status bar does not offer to open it
    expect(await bar().getByRole('button', { name: 'Open Servers' }).count()).toBe(0);
    await prompt.getByRole('button', { name: 'Accept and connect' }).click();
    await page.locator('.statusbar[data-status="auth-failed"]').waitFor();

    const edge = card('Edge relay');
    expect(await edge.getByRole('button').allTextContents()).toEqual(['Dismiss', 'Edit', 'Remove']);
    expect(await bar().getByRole('button', { name: 'Open Servers' }).count()).toBe(0);
    // elsewhere it does
    await page.keyboard.press('Control+2');
    await bar().getByRole('button', { name: 'Open Servers' }).click();
    await page.locator('[data-testid="servers-view"]').waitFor();
    await page.screenshot({ path: screenshotPath('connection-token-refused', 'light') });

    // the banner's Edit, the right token, Save: the relay is asked again, now
    const mark = states.length;
    await page.locator('.error-box').getByRole('button', { name: 'Edit the server and paste a token' }).click();
    await expect.poll(() => form().locator('input[name="name"]').inputValue()).toBe('Edge relay');
    await form().locator('input[name="token"]').fill(relay.adminToken);
    await form().getByRole('button', { name: 'Save' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor({ timeout: 10_000 });
    expect(states.slice(mark).map((s) => s.status)).toEqual(['connecting', 'authenticating', 'connected']);
    expect(await bar().textContent()).toMatch(/admin/);
  });

  it("the relay's SMTP port typed for the management port: stopped, in words that name the mistake; the corrected port connects", async () => {
    await page.keyboard.press('Control+1');
    await form().locator('input[name="name"]').fill('Oops SMTP port');
    await form().locator('input[name="host"]').fill('127.0.0.1');
    await form().locator('input[name="port"]').fill(String(relay.port));
    await form().locator('input[name="token"]').fill(relay.adminToken);
    await form().getByRole('button', { name: 'Save and connect' }).click();
    await page.locator('.statusbar[data-stopped="true"]').waitFor({ timeout: 10_000 });
    expect(await bar().locator('.status-label').textContent()).toBe('Stopped');
    const words = `127.0.0.1:${relay.port} is an SMTP port, not the relay's management port: it greeted "220 `;
    // the line starts with what matters; the whole sentence is its title and, in full, on the Servers page
    expect(await bar().locator('.status-message').textContent()).toMatch(new RegExp(`^${words.replace(/[.()]/g, '\\$&')}`));
    const full = await page.locator('[data-testid="stopped-message"]').textContent();
    expect(full).toContain(words);
    expect(full).toContain('The management port is manage.listen in config.json (8465 by default).');
    expect(await bar().locator('.status-message').getAttribute('title')).toBe(full);
    expect(await page.locator('body').textContent()).not.toMatch(/SSL routines|openssl/);
    // it does not go on trying: nothing but Connect on its card
    const oops = card('Oops SMTP port');
    expect(await oops.getByRole('button').allTextContents()).toEqual(['Connect', 'Edit', 'Remove']);
    await page.screenshot({ path: screenshotPath('connection-smtp-port', 'light') });
    expect(c.core.connection.state).toMatchObject({ status: 'disconnected', retryAt: null });

    await page.locator('.error-box').getByRole('button', { name: 'Edit the server' }).click();
    await expect.poll(() => form().locator('input[name="port"]').inputValue()).toBe(String(relay.port));
    await form().locator('input[name="port"]').fill(String(relay.managePort));
    await form().getByRole('button', { name: 'Save' }).click();
    // the same address as "Edge relay": its certificate is known, so it logs in straight away
    await page.locator('.statusbar[data-status="connected"]').waitFor({ timeout: 10_000 });
    expect(c.core.connection.state.profileName).toBe('Oops SMTP port');
  });

  it('locked out: one live countdown, the full words on the Servers card, "Stop trying" and "Retry now"', async () => {
    // another client of this address guesses tokens until the relay locks the address out
    for (let i = 0; i < 5; i++) {
      const guesser = await relay.connect();
      const err = await guesser.callError('auth.login', { token: 'rwt_guess' });
      await guesser.close();
      if (err.code === ErrorCode.RateLimited) break;
    }
    await page.keyboard.press('Control+1');
    const edge = card('Edge relay');
    await edge.getByRole('button', { name: 'Connect' }).click();
    await page.locator('.statusbar[data-status="reconnecting"]').waitFor({ timeout: 10_000 });

    // the status bar: one countdown (its own), none frozen in the relay's words
    const text = (await bar().textContent()) ?? '';
    expect(text.match(/\d+ min(?: \d+ s)?\b|\d+ s\b/g)).toHaveLength(1);
    expect(text).toMatch(/retry in (?:\d+ min(?: \d+ s)?|\d+ s) \(attempt 2\)/);
    expect(text).not.toMatch(/try again in \d+/);
    // the card: the whole message, the countdown, and what the buttons do
    const note = edge.locator('[data-testid="server-card-status"]');
    expect(await note.textContent()).toMatch(/^(The relay refused this address: too many failed logins from 127\.0\.0\.1\.|Too many failed logins from this address: the relay locked it out\.) The console tries again when the lockout ends\.Trying again in (?:\d+ min(?: \d+ s)?|\d+ s) \(attempt 2\)\.$/);
    expect(await edge.getByRole('button').allTextContents()).toEqual(['Retry now', 'Stop trying', 'Edit', 'Remove']);
    await page.screenshot({ path: screenshotPath('connection-lockout', 'light') });

    // a placeholder page counts down too, live
    await page.keyboard.press('Control+4');
    const countdown = page.locator('[data-testid="retry-countdown"]');
    // "in 4 min 57 s", "in 5 min" or "in 57 s", as seconds
    const seconds = async () => {
      const m = /\bin (?:(\d+) min)? ?(?:(\d+) s)?/.exec((await countdown.textContent()) ?? '');
      return m && (m[1] || m[2]) ? Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) : NaN;
    };
    const first = await seconds();
    expect(first).toBeGreaterThan(0);
    await expect.poll(seconds, { timeout: 5000 }).toBeLessThan(first);
    expect(await page.locator('[data-testid="not-connected-message"]').textContent()).not.toMatch(/\d+ s\b|\d+ min\b|Retrying/);

    // "Retry now" tries at once, not at the end of the relay's five minutes (and meets the lockout again)
    const retryAt = c.core.connection.state.retryAt!;
    const mark = states.length;
    await page.locator('.view').getByRole('button', { name: 'Retry now' }).click();
    await expect.poll(() => states.slice(mark).map((s) => s.status).join(' ')).toMatch(/^connecting .*reconnecting$/);
    expect(states[mark]!.since).toBeLessThan(retryAt - 60_000);

    // "Stop trying" stops
    await page.keyboard.press('Control+1');
    await edge.getByRole('button', { name: 'Stop trying' }).click();
    await page.locator('.statusbar[data-status="disconnected"]').waitFor();
    expect(c.core.connection.state.retryAt).toBeNull();
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
