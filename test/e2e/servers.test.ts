/**
 * The console in Chromium against a real relay: add a server (inline validation first), accept its fingerprint,
 * watch real SMTP traffic arrive in Live traffic, the hard stop when the certificate changed, and a relay restarted
 * with a fresh history (its event ids start again) replacing what Live traffic held.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Relay } from '../../relay/relay.ts';
import { RawSmtp, sendMail } from '../helpers/smtp-client.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import {
  addServerAndAccept,
  attrs,
  chromiumPath,
  consoleSuite,
  testSecretStore,
  unexpectedErrors,
  openConsole,
  startRelay,
  type ConsolePage,
  type ConsoleSuite,
} from './harness.ts';

describe.skipIf(!chromiumPath)('console: servers and live traffic (Chromium)', () => {
  let relay: ManageRelay;
  let browser: Browser;
  let site: ConsoleSuite['site'];
  let c: ConsolePage;
  let relayStopped = false;

  consoleSuite(
    {
      stopRelay: async (r) => {
        if (!relayStopped) await r.stop();
      },
    },
    (s) => {
      ({ relay, browser, site, c } = s);
    },
  );

  it('shows inline errors for a bad profile, then adds the server and pins its fingerprint after the user accepts it', async () => {
    const { page } = c;
    await page.locator('.statusbar[data-status="disconnected"]').waitFor();
    const form = page.locator('[data-testid="server-form"]');
    await form.locator('input[name="host"]').fill('not a host!');
    await form.locator('input[name="port"]').fill('70000');
    await form.getByRole('button', { name: 'Save and connect' }).click();
    await expect(form.locator('.field-error').allTextContents()).resolves.toEqual(
      expect.arrayContaining(['give the server a name', 'not a host name or IP address', 'ports are 1-65535', expect.stringContaining('paste the token')]),
    );
    expect(await form.locator('input[name="host"]').getAttribute('aria-invalid')).toBe('true');
    expect(c.core.profiles.list()).toEqual([]);

    // fill it properly: the prompt shows the relay's real fingerprint before anything is sent
    await form.locator('input[name="name"]').fill('Edge relay');
    await form.locator('input[name="host"]').fill('127.0.0.1');
    await form.locator('input[name="port"]').fill(String(relay.managePort));
    await form.locator('input[name="token"]').fill(relay.adminToken);
    await form.getByRole('button', { name: 'Save and connect' }).click();
    const prompt = page.locator('[data-testid="fingerprint-prompt"]');
    await prompt.waitFor();
    expect(await prompt.locator('[data-testid="fingerprint"]').first().textContent()).toBe(relay.fingerprint);
    expect(await prompt.textContent()).toMatch(/Subject/);
    expect(await page.locator('.statusbar').getAttribute('data-status')).toBe('fingerprint-unknown');
    await prompt.getByRole('button', { name: 'Accept and connect' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor();
    expect(await page.locator('.statusbar').textContent()).toMatch(/admin/);
    // the shell moves to the dashboard once connected; the pin is stored
    await page.locator('[data-testid="dashboard"]').waitFor();
    expect(c.core.profiles.list()[0]).toMatchObject({ name: 'Edge relay', fingerprint256: relay.fingerprint, hasToken: true });
  });

  it('shows real SMTP traffic as it arrives (Ctrl+3 opens Live traffic)', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    const r = await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.7' });
    expect(r.data?.code).toBe(250);
    const row = page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.7"]');
    await row.first().waitFor({ timeout: 10_000 });
    expect(await row.first().textContent()).toMatch(/accepted .*alice@example\.org.*bob@example\.com/);
    // a click opens the session: every event of that SMTP session, in order
    await row.first().hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.first().click();
    const panel = page.locator('[data-testid="session-panel"]');
    await panel.waitFor();
    await expect.poll(async () => (await panel.locator('.session-events li').allTextContents()).join(' | '), { timeout: 5000 }).toMatch(
      /connect.*mail.*alice@example\.org.*rcpt.*accepted.*disconnect/s,
    );
    // the keyboard: arrows move the selection, Escape closes the detail
    const before = await page.locator('.live-row.selected').getAttribute('data-event-id');
    await page.locator('[data-testid="live-scroll"]').focus();
    await page.keyboard.press('ArrowDown');
    await expect.poll(() => page.locator('.live-row.selected').getAttribute('data-event-id')).not.toBe(before);
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
    // filters: IP and kind
    await page.locator('input[aria-label="Filter by IP address"]').fill('127.0.0.99');
    await page.locator('.live-empty').waitFor();
    await page.locator('input[aria-label="Filter by IP address"]').fill('127.0.0.0/24');
    await page.locator('.live-row').first().waitFor();
    await page.locator('select[aria-label="Filter by kind"]').selectOption('mail');
    await expect.poll(async () => new Set(await attrs(page.locator('.live-row'), 'data-kind')).size).toBe(1);
    await page.getByRole('button', { name: 'Clear filters' }).click();
  });

  it('the detail of a session still under way shows its next commands as they happen', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    const smtp = await RawSmtp.connect(relay.port, { localAddress: '127.0.0.8' });
    try {
      await smtp.hello('open.test');
      expect((await smtp.cmd('MAIL FROM:<carol@example.org>')).code).toBe(250);
      const row = page.locator('.live-row[data-kind="mail"][data-ip="127.0.0.8"]', { hasText: 'carol@example.org' });
      await row.first().waitFor({ timeout: 10_000 });
      // the pointer on the rows first, as a person's is: that holds them still. A click straight from elsewhere can
      // land on another row when a new event (here the earlier test's deferral) pushes the rows down between
      // Playwright finding the row and pressing (seen once in a full run: the detail of the 127.0.0.7 session opened)
      await row.first().hover();
      await row.first().click();
      const panel = page.locator('[data-testid="session-panel"]');
      await panel.waitFor();
      const listed = async () => (await panel.locator('.session-events li').allTextContents()).join(' | ');
      await expect.poll(listed, { timeout: 15_000 }).toMatch(/mail.*carol@example\.org/s);
      expect(await listed()).not.toMatch(/rcpt/);
      // the session goes on while its detail is open: the detail follows it
      expect((await smtp.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
      await expect.poll(listed, { timeout: 15_000 }).toMatch(/mail.*carol@example\.org.*rcpt.*alice@example\.com/s);
      await page.keyboard.press('Escape');
      await panel.waitFor({ state: 'detached' });
    } finally {
      smtp.destroy();
    }
  });

  it('a DNS check that could not be done: the client got the brief reply; the detail shows what the relay\'s DNS servers did', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    const smtp = await RawSmtp.connect(relay.port, { localAddress: '127.0.0.11' });
    try {
      await smtp.hello('dns.test');
      const r = await smtp.cmd('MAIL FROM:<a@broken.example>');
      expect(r.code).toBe(451);
      expect(r.text).not.toMatch(/127\.0\.0\.1:\d+/);
    } finally {
      smtp.destroy();
    }
    const row = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.11"]');
    await row.first().waitFor({ timeout: 10_000 });
    await row.first().hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.first().click();
    const panel = page.locator('[data-testid="session-panel"]');
    await panel.waitFor();
    expect(await panel.locator('.reject-box').textContent()).toContain('(DNS MX lookup for broken.example failed)');
    expect(await panel.locator('[data-testid="reject-dns"]').textContent()).toMatch(
      /^Resolver: DNS MX lookup for broken\.example failed: 127\.0\.0\.1:\d+ answered SERVFAIL/,
    );
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
    // a rejection that involved no DNS has no such line
    const other = await RawSmtp.connect(relay.port, { localAddress: '127.0.0.12' });
    try {
      await other.hello('dns.test');
      expect((await other.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
      expect((await other.cmd('RCPT TO:<nobody@example.com>')).code).toBe(550);
    } finally {
      other.destroy();
    }
    const unknown = page.locator('.live-row[data-kind="rejected"][data-ip="127.0.0.12"]');
    await unknown.first().waitFor({ timeout: 10_000 });
    await unknown.first().click();
    await panel.waitFor();
    expect(await panel.locator('.reject-box').textContent()).toContain('nobody@example.com');
    expect(await panel.locator('[data-testid="reject-dns"]').count()).toBe(0);
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
  });

  it('ArrowDown moves from the selected row to the next older one even after newer traffic pushed it out of view', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    expect((await sendMail(relay.port, { from: 'dave@example.org', to: ['bob@example.com'], localAddress: '127.0.0.9' })).data?.code).toBe(250);
    const row = page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.9"]');
    await row.first().waitFor({ timeout: 10_000 });
    await row.first().hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await row.first().click();
    const picked = Number(await page.locator('.live-row.selected').getAttribute('data-event-id'));
    // with it selected (its detail open), 20 more sessions push it far below the drawn rows
    for (let i = 0; i < 20; i++) {
      expect((await sendMail(relay.port, { from: 'eve@example.org', to: ['bob@example.com'], localAddress: '127.0.0.10' })).data?.code).toBe(250);
    }
    await expect.poll(() => page.locator('.live-row[data-kind="disconnect"][data-ip="127.0.0.10"]').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    await page.locator('[data-testid="live-scroll"]').focus();
    await page.keyboard.press('ArrowDown');
    const now = Number(await page.locator('.live-row.selected').getAttribute('data-event-id'));
    // the next older event, not the newest row at the top
    expect(now).toBeLessThan(picked);
    expect(now).toBeGreaterThan(picked - 10);
    await page.keyboard.press('Escape');
  });

  it('Ctrl+F focuses the live filter; a rejection spike raises one desktop notification', async () => {
    const { page, core } = c;
    await page.keyboard.press('Control+2');
    await page.keyboard.press('Control+f');
    await page.locator('[data-testid="live-view"]').waitFor();
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { getAttribute(n: string): string | null } | null } }).document.activeElement?.getAttribute('aria-label'))).toBe('Filter by text');
    await page.keyboard.press('Escape');

    // stats ticks as the core forwards them: a quiet minute, then a burst of rejections
    const { series: _series, ...stats } = await core.connection.call('stats.get', {});
    const t0 = Date.now() + 3600_000;
    const tick = (i: number, rejected: number) => ({
      ...stats,
      perSecond: { ...stats.perSecond, at: t0 + i * 1000, rejected },
      rejectedByRule15m: rejected ? { 'limits.messagesPerHour': rejected } : {},
    });
    for (let i = 0; i < 15; i++) await c.push('stats', tick(i, 1));
    await c.push('stats', tick(15, 120));
    await c.push('stats', tick(16, 130));
    await expect.poll(() => c.notifications.length, { timeout: 5000 }).toBe(1);
    expect(c.notifications[0]!.title).toMatch(/Rejection spike/);
    expect(c.notifications[0]!.body).toMatch(/120 rejections in the last second.*Messages per hour/);
  });

  it('stops hard when the certificate changed, showing both fingerprints and sending nothing', async () => {
    const { page, core } = c;
    const fake = 'AA:'.repeat(31) + 'AA';
    const manage = relay.relay.manage!;
    await core.connection.disconnect();
    // the relay has seen the console's session end: from here, any login would show in its count
    await expect.poll(() => manage.authenticatedCount(), { timeout: 5000 }).toBe(0);
    // what reaches the relay's management server past the TLS handshake: an HTTP request or a WebSocket upgrade
    // (the first bytes the console would send, before any token)
    const server = (manage as unknown as { https: import('node:https').Server }).https;
    const reached: string[] = [];
    const onUpgrade = (req: import('node:http').IncomingMessage) => reached.push(`upgrade ${req.url}`);
    const onRequest = (req: import('node:http').IncomingMessage) => reached.push(`request ${req.method} ${req.url}`);
    server.on('upgrade', onUpgrade).on('request', onRequest);
    let dialled = 0;
    const onTcp = () => dialled++;
    server.on('connection', onTcp);
    core.knownHosts.forget('127.0.0.1', relay.managePort);
    core.knownHosts.accept('127.0.0.1', relay.managePort, fake, 'CN=old');
    await page.keyboard.press('Control+1');
    await page.locator('[data-testid="server-card"]').getByRole('button', { name: 'Connect' }).click();
    const stop = page.locator('[data-testid="fingerprint-mismatch"]');
    await stop.waitFor();
    // sending nothing: the console did reach the relay (to read its certificate in the TLS handshake), and stopped there
    await new Promise((r) => setTimeout(r, 300));
    expect(dialled).toBeGreaterThan(0);
    expect(reached).toEqual([]);
    expect(manage.authenticatedCount()).toBe(0);
    server.off('upgrade', onUpgrade).off('request', onRequest).off('connection', onTcp);
    const fps = await stop.locator('[data-testid="fingerprint"]').allTextContents();
    expect(fps).toContain(fake);
    expect(fps).toContain(relay.fingerprint);
    expect(await stop.textContent()).toMatch(/What to do/);
    expect(await page.locator('.statusbar').getAttribute('data-status')).toBe('fingerprint-mismatch');
    // the user forgets the old pin on purpose, and is asked again
    await stop.getByRole('button', { name: /Forget the old fingerprint/ }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Forget and reconnect' }).click();
    await page.locator('[data-testid="fingerprint-prompt"]').waitFor();
    await page.locator('[data-testid="fingerprint-prompt"]').getByRole('button', { name: 'Accept and connect' }).click();
    await page.locator('.statusbar[data-status="connected"]').waitFor();
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
  it('edits and removes a profile; warns when tokens cannot be stored safely', async () => {
    const { page } = c;
    await page.keyboard.press('Control+1');
    const card = page.locator('[data-testid="server-card"]').first();
    await card.getByRole('button', { name: 'Edit' }).click();
    const form = page.locator('[data-testid="server-form"]');
    await expect.poll(() => form.locator('input[name="name"]').inputValue()).toBe('Edge relay');
    expect(await form.textContent()).toMatch(/Leave empty to keep the stored token/);
    await form.locator('input[name="name"]').fill('Edge relay (HQ)');
    await form.getByRole('button', { name: 'Save' }).click();
    await page.locator('[data-testid="server-card"][data-profile-name="Edge relay (HQ)"]').waitFor();
    expect(c.core.profiles.list()[0]).toMatchObject({ name: 'Edge relay (HQ)', hasToken: true });

    // a second profile, saved without connecting, then removed after the confirmation
    await form.locator('input[name="name"]').fill('Spare');
    await form.locator('input[name="host"]').fill('spare.example.net');
    await form.locator('input[name="port"]').fill('8465');
    await form.locator('input[name="token"]').fill('not-a-real-token');
    await form.getByRole('button', { name: 'Save only' }).click();
    const spare = page.locator('[data-testid="server-card"][data-profile-name="Spare"]');
    await spare.waitFor();
    await spare.getByRole('button', { name: 'Remove' }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Remove' }).click();
    await spare.waitFor({ state: 'detached' });
    expect(c.core.profiles.list().map((p) => p.name)).toEqual(['Edge relay (HQ)']);
    expect(await page.locator('.statusbar').getAttribute('data-status')).toBe('connected');

    // on a machine with only the plain-text secret backend, the Servers view says so
    const plain = await openConsole(browser, site.url, { secrets: testSecretStore('basic_text') });
    try {
      const w = plain.page.locator('[data-testid="storage-warning"]');
      await w.waitFor();
      expect(await w.textContent()).toMatch(/not stored safely.*No keyring/);
    } finally {
      await plain.close();
    }
  });

  it('shows the reconnect countdown in words when the relay goes away', async () => {
    const { page } = c;
    await relay.stop();
    relayStopped = true;
    const bar = page.locator('.statusbar[data-status="reconnecting"], .statusbar[data-status="connecting"]');
    await bar.first().waitFor({ timeout: 10_000 });
    await expect.poll(async () => (await page.locator('.statusbar').textContent()) ?? '', { timeout: 10_000 }).toMatch(/Reconnecting.*retry in \d+ s \(attempt \d+\)/);
    expect(await page.locator('.statusbar').textContent()).toMatch(/shutting down|lost|Cannot reach/);
  });
});

describe.skipIf(!chromiumPath)('console: a relay restarted with a fresh history (Chromium)', () => {
  let relay: ManageRelay;
  let restarted: Relay | null = null;
  let c: ConsolePage;

  consoleSuite(
    {
      stopRelay: async (r) => {
        if (!restarted) return r.stop();
        // the first relay was stopped by the test: stop the second, then what the harness started around them
        await restarted.stop();
        await r.dns.close();
        fs.rmSync(r.dir, { recursive: true, force: true });
      },
    },
    async (s) => {
      ({ relay, c } = s);
      await addServerAndAccept(c.page, relay);
    },
  );

  it('Live traffic starts over when the relay comes back with event ids it already used, newest first', async () => {
    const { page } = c;
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    for (let i = 0; i < 3; i++) {
      expect((await sendMail(relay.port, { from: 'alice@example.org', to: ['bob@example.com'], localAddress: '127.0.0.11' })).data?.code).toBe(250);
    }
    await expect.poll(() => page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.11"]').count(), { timeout: 10_000 }).toBe(3);
    const oldIds = (await attrs(page.locator('.live-row'), 'data-event-id')).map(Number);
    expect(Math.max(...oldIds)).toBeGreaterThan(10);
    // a session of the old relay is open in the detail
    await page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.11"]').first().hover(); // the pointer on the rows holds them still (LiveView): a new event cannot move another row under the click
    await page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.11"]').first().click();
    await page.locator('[data-testid="session-panel"]').waitFor();
    await page.mouse.move(1, 1);

    // the relay restarts on the same address and certificate, but with its history gone: its ids start at 1 again
    await relay.relay.stop();
    for (const f of fs.readdirSync(relay.dir)) if (f.startsWith('history.sqlite')) fs.rmSync(path.join(relay.dir, f));
    restarted = await Relay.start({ dataDir: relay.dir, smtpListen: '127.0.0.1:0', manageListen: `127.0.0.1:${relay.managePort}`, log: () => {}, history: { flushMs: 20 } });
    await page.locator('.statusbar[data-status="connected"]').waitFor({ timeout: 15_000 });
    expect((await sendMail(restarted.smtpAddress.port, { from: 'carol@example.org', to: ['alice@example.com'], localAddress: '127.0.0.12' })).data?.code).toBe(250);
    await page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.12"]').waitFor({ timeout: 10_000 });
    await page.locator('.live-row[data-kind="disconnect"][data-ip="127.0.0.12"]').waitFor({ timeout: 10_000 });

    // the old session's detail is closed (its ids belong to the old stream), and only the new relay's events are
    // listed, newest first: exactly what the restarted relay itself holds (its history, asked through the console's
    // connection). Not "only 127.0.0.12": the spool survived the restart, so the new relay goes on delivering the
    // three messages the old one accepted from 127.0.0.11, and its queue events for them (deferred here: the test
    // DNS has no MX) carry that client's address. They are events of the new stream, with new ids, and belong in
    // Live traffic; whether they come before the rows are read is timing.
    await page.locator('[data-testid="session-panel"]').waitFor({ state: 'detached', timeout: 5000 });
    type El = { getAttribute(a: string): string | null };
    const shown = () => page.locator('.live-row').evaluateAll((rs) => rs.map((r) => ['data-event-id', 'data-kind', 'data-ip'].map((a) => (r as unknown as El).getAttribute(a)).join(' ')));
    const relayHolds = async () => (await c.core.connection.call('events.query', { order: 'desc', limit: 1000 })).events.map((e) => `${e.id} ${e.kind} ${e.ip ?? ''}`);
    await expect
      .poll(async () => {
        const [rows, relayRows] = [await shown(), await relayHolds()];
        return rows.join('\n') === relayRows.join('\n') ? 'the same' : `shown:\n${rows.join('\n')}\nrestarted relay:\n${relayRows.join('\n')}`;
      }, { timeout: 5000 })
      .toBe('the same');
    // nothing of the old relay's SMTP sessions is left; 127.0.0.11 appears only on queue events of its messages
    const rows = (await shown()).map((r) => r.split(' '));
    expect(rows.filter(([, , ip]) => ip === '127.0.0.11').map(([, kind]) => kind).filter((k) => !['deferred', 'delivered', 'bounced'].includes(k!))).toEqual([]);
    expect(new Set(rows.filter(([, kind]) => ['connect', 'helo', 'mail', 'rcpt', 'accepted', 'disconnect'].includes(kind!)).map(([, , ip]) => ip))).toEqual(new Set(['127.0.0.12']));
    const ids = (await attrs(page.locator('.live-row'), 'data-event-id')).map(Number);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[ids.length - 1]).toBe(1);
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});

describe.skipIf(!chromiumPath)('console: switching to another relay while events stream (Chromium)', () => {
  let a: ManageRelay;
  let b: ManageRelay | null = null;
  let c: ConsolePage;

  consoleSuite({}, async (s) => {
    ({ relay: a, c } = s);
    await addServerAndAccept(c.page, a, { name: 'Relay A' });
  });
  // registered after consoleSuite's, so it runs before the console and relay a are closed
  afterAll(async () => {
    await b?.stop();
  });

  it("Live traffic then lists exactly the new relay's events (its backlog too), none of the old one's", async () => {
    const { page } = c;
    b = await startRelay();
    // b logged events before the console ever saw it: its ids overlap a's
    expect((await sendMail(b.port, { from: 'bea@example.org', to: ['bob@example.com'], localAddress: '127.0.0.36' })).data?.code).toBe(250);
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    expect((await sendMail(a.port, { from: 'ann@example.org', to: ['bob@example.com'], localAddress: '127.0.0.35' })).data?.code).toBe(250);
    await page.locator('.live-row[data-kind="accepted"][data-ip="127.0.0.35"]').first().waitFor({ timeout: 10_000 });

    // a keeps streaming while the user adds b and switches to it
    let streaming = true;
    const stream = (async () => {
      while (streaming) await sendMail(a.port, { from: 'ann@example.org', to: ['bob@example.com'], localAddress: '127.0.0.35' }).catch(() => {});
    })();
    try {
      await addServerAndAccept(page, b, { name: 'Relay B' });
    } finally {
      streaming = false;
      await stream;
    }
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    expect((await sendMail(b.port, { from: 'bea@example.org', to: ['bob@example.com'], localAddress: '127.0.0.37' })).data?.code).toBe(250);
    await page.locator('.live-row[data-kind="disconnect"][data-ip="127.0.0.37"]').waitFor({ timeout: 10_000 });

    // the rows are what b itself holds, newest first (asked through the console's connection, now on b)
    type El = { getAttribute(a: string): string | null };
    const shown = () => page.locator('.live-row').evaluateAll((rs) => rs.map((r) => ['data-event-id', 'data-kind', 'data-ip'].map((x) => (r as unknown as El).getAttribute(x)).join(' ')));
    const relayHolds = async () => (await c.core.connection.call('events.query', { order: 'desc', limit: 1000 })).events.map((e) => `${e.id} ${e.kind} ${e.ip ?? ''}`);
    await expect
      .poll(async () => {
        const [rows, held] = [await shown(), await relayHolds()];
        return rows.join('\n') === held.join('\n') ? 'the same' : `shown:\n${rows.join('\n')}\nrelay b:\n${held.join('\n')}`;
      }, { timeout: 5000 })
      .toBe('the same');
    const ips = new Set((await shown()).map((r) => r.split(' ')[2]));
    expect(ips.has('127.0.0.36')).toBe(true);
    expect(ips.has('127.0.0.35')).toBe(false);
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
