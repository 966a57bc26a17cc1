/**
 * Screenshots of the shell's views (Servers with the first-connection prompt, Servers, Dashboard, Live traffic), light
 * and dark (docs/screenshots/<view>-<scheme>.png, for the README; the admin views' screenshots come from
 * views-admin.test.ts), taken
 * from the real renderer in Chromium, connected to a real relay that has seen ~15 s of real SMTP traffic: accepted
 * mail delivered to the internal server (a real SMTP sink), a client over its hourly limit, relaying refused, unknown
 * recipients, a client without reverse DNS (monitor mode), a trusted entry and a few audited admin actions. (The
 * Dashboard's stuck-queue warning has its own pictures: test/e2e/queue-outage.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { startSink } from '../helpers/sink.ts';
import { RawSmtp, sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { VIEWS } from '../../renderer/src/views/registry.ts';
import { chromiumPath, consoleSuite, screenshotPath, unexpectedErrors, type ConsolePage } from './harness.ts';

const SCHEMES = ['light', 'dark'] as const;

async function traffic(relay: ManageRelay, ms: number): Promise<void> {
  const until = Date.now() + ms;
  let n = 0;
  const quiet = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch {
      // a refused or closed session is part of the picture
    }
  };
  while (Date.now() < until) {
    n++;
    const wave = Math.sin(n / 6) + 1.2;
    const jobs: Promise<unknown>[] = [];
    for (let k = 0; k < Math.round(wave * 3); k++) {
      const host = 2 + ((n + k) % 6);
      jobs.push(quiet(sendMail(relay.port, { from: `user${host}@example.org`, to: ['alice@example.com'], localAddress: `127.0.0.${host}` })));
    }
    if (n % 3 === 0) jobs.push(quiet(sendMail(relay.port, { from: 'promo@example.org', to: ['bob@example.com'], localAddress: '127.0.0.5' })));
    if (n % 5 === 0) jobs.push(quiet(sendMail(relay.port, { from: 'x@example.org', to: ['victim@elsewhere.example'], localAddress: '127.0.0.9' })));
    if (n % 7 === 0) jobs.push(quiet(sendMail(relay.port, { from: 'y@example.org', to: ['nobody@example.com'], localAddress: '127.0.0.11' })));
    if (n % 4 === 0) jobs.push(quiet(sendMail(relay.port, { from: 'z@example.org', to: ['alice@example.com'], localAddress: '127.0.0.50' })));
    await Promise.all(jobs);
    await new Promise((r) => setTimeout(r, 150));
  }
}

describe.skipIf(!chromiumPath)('console screenshots of the shell views, light and dark (Chromium)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;

  consoleSuite(
    {
      config: {
        smtp: { hostname: 'relay.example.com' },
        limits: { messagesPerHour: { mode: 'enforce', max: 40 } },
        checks: { reverseDns: { mode: 'monitor' } },
        groups: {
          Trusted: [{ address: '192.0.2.0/24', comment: 'office LAN', expiresAt: null }],
          Partners: [{ address: '198.51.100.10-198.51.100.20', comment: 'agency (trial)', expiresAt: '2026-01-01T00:00:00Z' }],
        },
      },
      page: { viewport: { width: 1200, height: 760 } },
    },
    (s) => {
      ({ relay, c } = s);
    },
  );

  const shoot = async (name: string) => {
    for (const scheme of SCHEMES) {
      await c.page.emulateMedia({ colorScheme: scheme });
      await c.page.waitForTimeout(250);
      await c.page.screenshot({ path: screenshotPath(name, scheme) });
    }
  };

  it('takes Servers, Dashboard and Live traffic in light and dark', async () => {
    const { page, core } = c;
    // Servers, with the first-connection prompt
    await page.locator('[data-testid="server-form"] input[name="name"]').fill('Edge relay');
    await page.locator('[data-testid="server-form"] input[name="host"]').fill('127.0.0.1');
    await page.locator('[data-testid="server-form"] input[name="port"]').fill(String(relay.managePort));
    await page.locator('[data-testid="server-form"] input[name="token"]').fill(relay.adminToken);
    await page.getByRole('button', { name: 'Save and connect' }).click();
    await page.locator('[data-testid="fingerprint-prompt"]').waitFor();
    await shoot('servers-first-connection');
    await page.getByRole('button', { name: 'Accept and connect' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor();

    // the internal mail server: mail for example.com is delivered, as on a healthy relay
    const sink = await startSink();
    try {
      const before = await core.connection.call('config.get', {});
      const domains = Object.fromEntries(Object.entries(before.config.domains).map(([d, v]) => [d, { ...v, deliverTo: sink.address }]));
      await core.connection.call('config.update', { baseRevision: before.revision, config: { ...before.config, domains } });
      await shootShell(relay, c, shoot);
      expect(sink.messages.length).toBeGreaterThan(0);
    } finally {
      await sink.close();
    }
    expect(unexpectedErrors(c.errors)).toEqual([]);
  }, 60_000);
});

/** Traffic, admin actions, then the pictures of Servers, Dashboard and Live traffic. */
async function shootShell(relay: ManageRelay, c: ConsolePage, shoot: (name: string) => Promise<void>): Promise<void> {
  const { page, core } = c;
  {

    // real traffic, and a few admin actions for the audit log
    await traffic(relay, 15_000);
    // the salesperson: over the hourly limit in one session
    const sales = await RawSmtp.connect(relay.port, { localAddress: '127.0.0.12' });
    await sales.hello('laptop.sales.test');
    for (let i = 0; i < 41; i++) {
      const m = await sales.cmd('MAIL FROM:<sales@example.org>');
      if (m.code !== 250) break;
      await sales.cmd('RCPT TO:<alice@example.com>');
      await sales.data('Subject: offer\r\n\r\nBuy now.\r\n');
    }
    await sales.quit();
    await core.connection.call('clients.trust', { ip: '127.0.0.7', comment: 'CRM server', expiresAt: new Date(Date.now() + 86_400_000).toISOString() });
    const cfg = await core.connection.call('config.get', {});
    await core.connection.call('config.update', {
      baseRevision: cfg.revision,
      config: { ...cfg.config, checks: { ...cfg.config.checks, maxRecipients: { mode: 'enforce', max: 50 } } },
    });
    await page.waitForTimeout(1200);

    for (const v of VIEWS.filter((x) => x.id === 'servers' || x.id === 'dashboard' || x.id === 'live')) {
      await page.keyboard.press(`Control+${v.key}`);
      await page.locator(`.view[data-view="${v.id}"]`).waitFor();
      if (v.id === 'live') {
        await page.locator('.live-row[data-kind="rejected"]').first().waitFor();
        await page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.12"]').first().hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
        await page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.12"]').first().click();
        await page.locator('[data-testid="session-panel"] .session-events li').nth(3).waitFor();
        await page.mouse.move(0, 0);
      }
      if (v.id === 'dashboard') await page.locator('.uplot').waitFor();
      await page.waitForLoadState('networkidle');
      await page.waitForTimeout(400);
      await shoot(v.id);
    }
  }
}
