/**
 * Saving the server the console is connected to, in Chromium against a real relay: the toast says what the save did
 * about the connection, as the core answered it (profiles.save's `connection`), not a guess from the state read after
 * it. A new token reconnects at once and the toast says so; a new name alone keeps the session and the toast says
 * that instead.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { ConnectionState } from '../../shared/console-api.ts';
import type { ManageRelay } from '../helpers/wss-client.ts';
import { addServerAndAccept, chromiumPath, consoleSuite, unexpectedErrors, type ConsolePage } from './harness.ts';

describe.skipIf(!chromiumPath)('console: saving the connected server says whether it reconnected (Chromium)', () => {
  let relay: ManageRelay;
  let c: ConsolePage;
  let page: Page;
  const states: ConnectionState[] = [];

  consoleSuite({}, async (s) => {
    ({ relay, c } = s);
    page = c.page;
    page.setDefaultTimeout(15_000);
    c.core.on('state', (st) => states.push(st as ConnectionState));
    await addServerAndAccept(page, relay, { name: 'Edge relay' });
  });

  const form = () => page.locator('[data-testid="server-form"]');
  const card = (name: string) => page.locator(`[data-testid="server-card"][data-profile-name="${name}"]`);
  const toast = (text: string) => page.getByTestId('toast').filter({ hasText: text });
  /** Servers, the card's Edit, and the form showing that server */
  const edit = async (name: string) => {
    await page.click('[data-view-id="servers"]');
    await card(name).getByRole('button', { name: 'Edit' }).click();
    await expect.poll(() => form().locator('input[name="name"]').inputValue(), { timeout: 15_000 }).toBe(name);
  };

  it('a new token for the connected server: it reconnects with it at once, and the toast says so', async () => {
    const laptop = relay.relay.tokens.create('laptop', 'admin');
    expect(c.core.connection.state.status).toBe('connected');
    expect(c.core.connection.state.tokenName).not.toBe('laptop');
    await edit('Edge relay');
    const mark = states.length;
    await form().locator('input[name="token"]').fill(laptop);
    await form().getByRole('button', { name: 'Save' }).click();
    await toast('Saved Edge relay; connecting again with the new settings…').waitFor();
    // what the toast says happened: the session was dropped and a new one logged in with the new token
    await expect.poll(() => c.core.connection.state.tokenName, { timeout: 15_000 }).toBe('laptop');
    expect(states.slice(mark).map((s) => s.status)).toEqual(['connecting', 'authenticating', 'connected']);
    await page.locator('.statusbar[data-status="connected"]').waitFor();
  });

  it('only a new name: the session goes on, and the toast says it was not reconnected', async () => {
    await edit('Edge relay');
    const mark = states.length;
    await form().locator('input[name="name"]').fill('Edge relay (HQ)');
    await form().getByRole('button', { name: 'Save' }).click();
    const saved = toast('Saved Edge relay (HQ). Its host, port and token are as before: the connection stays as it is.');
    await saved.waitFor();
    // the save answered before the toast showed; a reconnect would have started in it (the state says "connecting"
    // synchronously there): there was none, only the new name on the same session
    expect(states.slice(mark)).toEqual([expect.objectContaining({ status: 'connected', profileName: 'Edge relay (HQ)', tokenName: 'laptop' })]);
    // no toast on screen says the opposite (the earlier "connecting again" one, if still there, was replaced: same key)
    expect(await page.getByTestId('toast').filter({ hasText: 'connecting again' }).count()).toBe(0);
    await expect.poll(() => page.locator('.statusbar').textContent(), { timeout: 15_000 }).toMatch(/Edge relay \(HQ\)/);
    expect(unexpectedErrors(c.errors)).toEqual([]);
  });
});
