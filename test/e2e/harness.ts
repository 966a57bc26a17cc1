/**
 * End-to-end harness for the console's renderer: a real relay with its management channel (in this process, free
 * loopback ports, temp data dir, real clock), the console's real core (main/core/console-core.ts) with a test secret
 * store and files in a temp dir, the real renderer build (dist/renderer) served on loopback, and Debian's Chromium
 * driven by playwright-core. The page gets window.rwBridge exactly as the preload gives it in the app: invoke(op,
 * ...args) -> core.invoke (page.exposeBinding), subscribe(channel, cb) fed by core.on(channel) (page.evaluate).
 *
 * Chromium must be at /usr/bin/chromium (Debian's chromium package; CI installs it). When it is absent, `chromiumPath` is null and the suites skip
 * with a loud message; CI installs it.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import type { BridgeChannel } from '../../shared/bridge.ts';
import type { ConfigInput } from '../../shared/config.ts';
import { ConsoleCore } from '../../main/core/console-core.ts';
import type { SecretStore } from '../../main/core/ports.ts';
import { FakeClock } from '../helpers/relay-harness.ts';
import { startManageRelay, type ManageRelay } from '../helpers/wss-client.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const chromiumPath: string | null = fs.existsSync(CHROMIUM) ? CHROMIUM : null;
if (!chromiumPath) {
  console.warn(
    '\n' +
      '*************************************************************************************\n' +
      '*  SKIPPING the console end-to-end tests: /usr/bin/chromium is not installed.        *\n' +
      '*  Install it (apt-get install -y chromium); CI does, and there they must run.       *\n' +
      '*************************************************************************************\n',
  );
}

export const DIST = path.resolve(import.meta.dirname, '../../dist/renderer');
/**
 * Screenshots are taken on every run (the views must render); they replace the committed pictures in
 * docs/screenshots only with UPDATE_SCREENSHOTS=1, so a test run leaves the work tree clean.
 */
export const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1'
  ? path.resolve(import.meta.dirname, '../../docs/screenshots')
  : path.join(os.tmpdir(), 'relay-warden-screenshots');

/** A clock that is the real one: the dashboard's per-second series and expiries need time to pass. */
export class RealClock extends FakeClock {
  override now = (): number => Date.now();
  override advance(): void {
    throw new Error('RealClock cannot be advanced');
  }
}

/** A secret store for tests: "encrypts" by reversing base64 (the core only needs a round trip). */
export function testSecretStore(backend = 'gnome_libsecret'): SecretStore {
  return {
    isEncryptionAvailable: () => true,
    backend: () => backend,
    encrypt: (plain) => Buffer.from(`enc:${Buffer.from(plain).toString('base64')}`),
    decrypt: (data) => {
      const s = data.toString();
      if (!s.startsWith('enc:')) throw new Error('not ours');
      return Buffer.from(s.slice(4), 'base64').toString();
    },
  };
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/**
 * dist/renderer over http on 127.0.0.1: Chromium refuses the renderer's module scripts from file://. The app itself
 * loads the same files from file:// (main.ts: loadFile), where Electron gives file:// pages the privileges to load
 * them; that file:// loading is not exercised by these tests (the Electron binary cannot run here).
 */
export async function serveDist(dir = DIST): Promise<{ url: string; close(): Promise<void> }> {
  if (!fs.existsSync(path.join(dir, 'index.html'))) throw new Error(`${dir}/index.html is missing: run "npm run build:renderer" first (npm test does)`);
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const rel = decodeURIComponent(u.pathname === '/' ? '/index.html' : u.pathname);
    const file = path.resolve(dir, `.${rel}`);
    if (!file.startsWith(dir + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/index.html`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  if (!chromiumPath) throw new Error('no chromium');
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: [...LAUNCH_ARGS, ...extraArgs], timeout: 30_000 });
}

/** The page's side of the bridge: what the preload exposes in the app, backed by two functions the test provides. */
const BRIDGE_INIT = () => {
  const subs: Record<string, Set<(p: unknown) => void>> = {};
  const w = globalThis as unknown as {
    __rwInvoke: (op: string, args: unknown[]) => Promise<unknown>;
    __rwPush: (channel: string, payload: unknown) => void;
    rwBridge: unknown;
  };
  w.__rwPush = (channel, payload) => {
    for (const cb of subs[channel] ?? []) {
      try {
        cb(payload);
      } catch (err) {
        console.error(err);
      }
    }
  };
  w.rwBridge = {
    invoke: (op: string, ...args: unknown[]) => w.__rwInvoke(op, args),
    subscribe(channel: string, cb: (p: unknown) => void) {
      (subs[channel] ??= new Set()).add(cb);
      return () => subs[channel]!.delete(cb);
    },
  };
};

export interface ConsolePage {
  page: Page;
  context: BrowserContext;
  core: ConsoleCore;
  /** desktop notifications the page asked for */
  notifications: { title: string; body: string }[];
  /** console errors and page errors seen */
  errors: string[];
  /** push a payload into the page's subscription callbacks (as the core would) */
  push(channel: BridgeChannel, payload: unknown): Promise<void>;
  close(): Promise<void>;
}

/** A page with the app loaded, its bridge bound to a fresh ConsoleCore (own temp data dir). */
export async function openConsole(
  browser: Browser,
  url: string,
  opts: { colorScheme?: 'light' | 'dark'; viewport?: { width: number; height: number }; secrets?: SecretStore } = {},
): Promise<ConsolePage> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-console-'));
  const notifications: { title: string; body: string }[] = [];
  const core = new ConsoleCore({
    secrets: opts.secrets ?? testSecretStore(),
    dataDir,
    notify: (title, body) => notifications.push({ title, body }),
    connection: { backoffBaseMs: 200, backoffMaxMs: 2000 },
  });
  const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1280, height: 800 }, colorScheme: opts.colorScheme ?? 'light' });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`http ${r.status()}: ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.exposeBinding('__rwInvoke', async (_src, op: string, args: unknown[]) => {
    try {
      return await core.invoke(op, args);
    } catch (err) {
      const payload = (err as { payload?: unknown }).payload ?? { code: 'error', message: (err as Error).message };
      throw new Error(JSON.stringify(payload));
    }
  });
  await page.addInitScript(BRIDGE_INIT);
  let closed = false;
  // forward every push channel, in order
  let chain = Promise.resolve();
  const push = (channel: BridgeChannel, payload: unknown): Promise<void> => {
    chain = chain.then(async () => {
      if (closed) return;
      await page.evaluate(([c, p]) => (globalThis as unknown as { __rwPush: (c: string, p: unknown) => void }).__rwPush(c as string, p), [channel, payload] as const).catch(() => {});
    });
    return chain;
  };
  const offs = (['state', 'events', 'stats', 'config'] as const).map((ch) => core.on(ch, (p) => void push(ch, p)));
  await page.goto(url);
  await page.waitForSelector('.app');
  return {
    page,
    context,
    core,
    notifications,
    errors,
    push,
    async close() {
      closed = true;
      for (const off of offs) off();
      await core.connection.disconnect().catch(() => {});
      await context.close().catch(() => {});
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Page errors other than known browser notices: Chromium ignores frame-ancestors in a <meta> policy and says so. (The
 * renderer's <meta> no longer carries it, so the notice should not come; the filter stays harmless.) These pages are
 * served over http with no CSP header: the <meta> is the policy they run under, as in the app.
 */
export function unexpectedErrors(errors: string[]): string[] {
  return errors.filter((e) => !/frame-ancestors' is ignored when delivered via a <meta> element/.test(e));
}

/** A relay with its management channel on free loopback ports, on the real clock. */
export function startRelay(config: ConfigInput = {}): Promise<ManageRelay> {
  return startManageRelay(config, { clock: new RealClock() });
}

export interface ConsoleSuite {
  relay: ManageRelay;
  browser: Browser;
  site: Awaited<ReturnType<typeof serveDist>>;
  c: ConsolePage;
}

/**
 * The beforeAll/afterAll every console suite shares, registered in the describe block it is called in: a relay
 * (startRelay(config)), Chromium and dist/renderer started together, a console page opened on the site, then `ready`
 * with all four (the suite keeps what it needs and, usually, adds the server). At the end: the page, the browser,
 * the site, then the relay, by `stopRelay` when the suite stopped or replaced it itself.
 */
export function consoleSuite(
  opts: { config?: ConfigInput; page?: Parameters<typeof openConsole>[2]; stopRelay?: (relay: ManageRelay) => Promise<void> },
  ready: (s: ConsoleSuite) => void | Promise<void>,
): void {
  const s: Partial<ConsoleSuite> = {};
  beforeAll(async () => {
    [s.relay, s.browser, s.site] = await Promise.all([startRelay(opts.config), launchChromium(), serveDist()]);
    s.c = await openConsole(s.browser, s.site.url, opts.page);
    await ready(s as ConsoleSuite);
  });
  afterAll(async () => {
    await s.c?.close();
    await s.browser?.close();
    await s.site?.close();
    if (s.relay) await (opts.stopRelay ?? ((r) => r.stop()))(s.relay);
  });
}

/**
 * On the Servers view, fill the form for this relay (name, 127.0.0.1, its management port, a token) and press Save and
 * connect; returns the fingerprint prompt that a first contact shows (waited for), before it is answered.
 */
export async function saveServerAndConnect(page: Page, relay: ManageRelay, opts: { name?: string; token?: string } = {}): Promise<Locator> {
  await page.click('[data-view-id="servers"]');
  const form = page.locator('[data-testid="server-form"]');
  await form.locator('input[name="name"]').fill(opts.name ?? 'Test relay');
  await form.locator('input[name="host"]').fill('127.0.0.1');
  await form.locator('input[name="port"]').fill(String(relay.managePort));
  await form.locator('input[name="token"]').fill(opts.token ?? relay.adminToken);
  await form.getByRole('button', { name: 'Save and connect' }).click();
  const prompt = page.locator('[data-testid="fingerprint-prompt"]');
  await prompt.waitFor({ timeout: 10_000 });
  return prompt;
}

/** Fill the Servers form for this relay and save (connecting), then accept the fingerprint the prompt shows. */
export async function addServerAndAccept(page: Page, relay: ManageRelay, opts: { name?: string; token?: string } = {}): Promise<void> {
  const prompt = await saveServerAndConnect(page, relay, opts);
  await prompt.getByRole('button', { name: 'Accept and connect' }).click();
  await page.locator('.statusbar[data-status="connected"]').waitFor({ timeout: 10_000 });
}

/** An attribute of every element a locator matches (typed without the DOM lib). */
export function attrs(locator: Locator, name: string): Promise<(string | null)[]> {
  return locator.evaluateAll((els, n) => els.map((e) => (e as unknown as { getAttribute(a: string): string | null }).getAttribute(n)), name);
}

export function screenshotPath(name: string, scheme: 'light' | 'dark'): string {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  return path.join(SCREENSHOTS, `${name}-${scheme}.png`);
}
