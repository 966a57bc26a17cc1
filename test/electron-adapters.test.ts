/**
 * The Electron adapters (main/electron) against a fake of Electron's own API (the true edge: the Electron
 * binary cannot run on these machines). What is checked is our wiring of Electron's security checklist:
 * the window's webPreferences, denied permissions and navigation, requests allowed only for the renderer's own files,
 * the CSP response header, the IPC sender check and allow-list, a preload that exposes exactly the two bridge
 * functions, and a second instance that quits without starting.
 */
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';

type Handler = (...args: unknown[]) => unknown;
const fake = vi.hoisted(() => {
  const state = {
    windows: [] as Array<{ opts: Record<string, unknown>; webContents: Record<string, unknown>; loaded?: string }>,
    ipcHandlers: new Map<string, Handler>(),
    appEvents: new Map<string, Handler>(),
    permissionRequest: null as Handler | null,
    permissionCheck: null as Handler | null,
    beforeRequest: null as Handler | null,
    headersReceived: null as Handler | null,
    singleInstanceLock: true,
    whenReadyCalls: 0,
    quitCalls: 0,
    exposed: new Map<string, Record<string, Handler>>(),
    rendererInvokes: [] as unknown[][],
    sandboxEnabled: false,
  };
  return state;
});

vi.mock('electron', () => {
  class BrowserWindow {
    webContents: Record<string, unknown>;
    constructor(public opts: Record<string, unknown>) {
      this.webContents = { send: vi.fn(), id: fake.windows.length + 1 };
      fake.windows.push(this as never);
    }
    once() {}
    loadFile(f: string) {
      (this as unknown as { loaded: string }).loaded = f;
      return Promise.resolve();
    }
    isDestroyed() {
      return false;
    }
    static getAllWindows() {
      return fake.windows;
    }
    focus() {}
  }
  return {
    app: {
      enableSandbox: () => (fake.sandboxEnabled = true),
      on: (ev: string, fn: Handler) => fake.appEvents.set(ev, fn),
      whenReady: () => {
        fake.whenReadyCalls++;
        return Promise.resolve();
      },
      requestSingleInstanceLock: () => fake.singleInstanceLock,
      getPath: () => path.join(os.tmpdir(), `rw-electron-fake-${process.pid}`),
      isPackaged: true,
      quit: () => fake.quitCalls++,
    },
    BrowserWindow,
    ipcMain: { handle: (ch: string, fn: Handler) => fake.ipcHandlers.set(ch, fn) },
    Menu: { setApplicationMenu: vi.fn(), buildFromTemplate: (t: unknown) => t },
    Notification: class {
      static isSupported() {
        return false;
      }
      show() {}
    },
    safeStorage: {
      isEncryptionAvailable: () => true,
      getSelectedStorageBackend: () => 'gnome_libsecret',
      encryptString: (s: string) => Buffer.from(s),
      decryptString: (b: Buffer) => b.toString(),
    },
    session: {
      defaultSession: {
        setPermissionRequestHandler: (fn: Handler) => (fake.permissionRequest = fn),
        setPermissionCheckHandler: (fn: Handler) => (fake.permissionCheck = fn),
        webRequest: {
          onHeadersReceived: (fn: Handler) => (fake.headersReceived = fn),
          onBeforeRequest: (fn: Handler) => (fake.beforeRequest = fn),
        },
      },
    },
    contextBridge: { exposeInMainWorld: (key: string, api: Record<string, Handler>) => fake.exposed.set(key, api) },
    ipcRenderer: {
      invoke: (...args: unknown[]) => {
        fake.rendererInvokes.push(args);
        return Promise.resolve('ok');
      },
      on: vi.fn(),
      removeListener: vi.fn(),
    },
  };
});

beforeAll(async () => {
  await import('../main/electron/main.ts');
  await import('../main/electron/preload.ts');
  // let app.whenReady().then(...) run
  await new Promise((r) => setTimeout(r, 20));
});

describe('Electron main process wiring', () => {
  it('creates the window with contextIsolation, sandbox, no nodeIntegration, and loads only our file', () => {
    expect(fake.sandboxEnabled).toBe(true);
    expect(fake.windows).toHaveLength(1);
    const prefs = fake.windows[0]!.opts.webPreferences as Record<string, unknown>;
    expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, allowRunningInsecureContent: false });
    expect(String(prefs.preload)).toMatch(/preload\.cjs$/);
    expect(fake.windows[0]!.loaded).toMatch(/renderer[/\\]index\.html$/);
  });

  it('denies every permission and every request that is not our own file', () => {
    let granted: boolean | null = null;
    fake.permissionRequest!({}, 'notifications', (ok: boolean) => (granted = ok));
    expect(granted).toBe(false);
    expect(fake.permissionCheck!({}, 'media')).toBe(false);
    const decide = (url: string) => {
      let cancel: boolean | null = null;
      fake.beforeRequest!({ url }, (r: { cancel: boolean }) => (cancel = r.cancel));
      return cancel;
    };
    const dir = path.dirname(String(fake.windows[0]!.loaded));
    const file = (p: string) => pathToFileURL(p).href;
    // our renderer's files: the page, its scripts, styles and assets
    expect(decide(file(path.join(dir, 'index.html')))).toBe(false);
    expect(decide(`${file(path.join(dir, 'index.html'))}#live`)).toBe(false);
    expect(decide(file(path.join(dir, 'assets', 'index-abc123.js')))).toBe(false);
    expect(decide('devtools://devtools/bundled/inspector.html')).toBe(false);
    // anything else: another scheme, any other file on the disk, a climb out of the directory, another host
    expect(decide('https://evil.example/x.js')).toBe(true);
    expect(decide('http://127.0.0.1:8465/')).toBe(true);
    expect(decide('data:text/html,<script>1</script>')).toBe(true);
    expect(decide('file:///etc/passwd')).toBe(true);
    expect(decide(file(path.join(os.homedir(), '.ssh', 'id_ed25519')))).toBe(true);
    expect(decide(file(path.dirname(dir)) + '/main/main.cjs')).toBe(true);
    expect(decide(`${file(dir)}/../main/preload.cjs`)).toBe(true);
    expect(decide(`${file(dir)}/%2e%2e/%2e%2e/secrets.json`)).toBe(true);
    expect(decide(`${file(dir)}/assets%2F..%2F..%2Fx`)).toBe(true);
    expect(decide(`${file(dir)}-evil/index.html`)).toBe(true);
    expect(decide(file(dir))).toBe(true);
    expect(decide(`file://evil.example${new URL(file(path.join(dir, 'index.html'))).pathname}`)).toBe(true);
    expect(decide('not a url')).toBe(true);
  });

  it('sets the strict CSP as a response header on what the session loads (frame-ancestors too, which a <meta> cannot carry)', () => {
    let out: { responseHeaders?: Record<string, string[]> } | null = null;
    fake.headersReceived!({ url: 'file:///x/index.html', responseHeaders: { 'X-Other': ['kept'] } }, (r: typeof out) => (out = r));
    expect(out).toEqual({
      responseHeaders: {
        'X-Other': ['kept'],
        'Content-Security-Policy': [
          "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ],
      },
    });
  });

  it('blocks navigation, redirects, webviews and new windows in every web contents', () => {
    const created = fake.appEvents.get('web-contents-created')!;
    const handlers = new Map<string, Handler>();
    let openHandler: Handler | null = null;
    created({}, { on: (ev: string, fn: Handler) => handlers.set(ev, fn), setWindowOpenHandler: (fn: Handler) => (openHandler = fn) });
    for (const ev of ['will-navigate', 'will-redirect', 'will-attach-webview']) {
      const e = { preventDefault: vi.fn() };
      handlers.get(ev)!(e);
      expect(e.preventDefault).toHaveBeenCalled();
    }
    expect(openHandler!({ url: 'https://example.com' })).toEqual({ action: 'deny' });
  });

  it('answers IPC only from its own window and page, and only for allow-listed operations', async () => {
    const invoke = fake.ipcHandlers.get('rw:invoke')!;
    const win = fake.windows[0]!;
    const ownUrl = `file://${String(win.loaded)}`;
    const frame = (url: string, parent: unknown = null) => ({ url, parent });
    await expect(invoke({ sender: { id: 99 }, senderFrame: frame(ownUrl) }, 'profiles.list')).rejects.toThrow(/unexpected sender/);
    await expect(invoke({ sender: win.webContents, senderFrame: frame('https://evil.example/') }, 'profiles.list')).rejects.toThrow(/unexpected sender/);
    await expect(invoke({ sender: win.webContents, senderFrame: frame(ownUrl, {}) }, 'profiles.list')).rejects.toThrow(/unexpected sender/);
    // our file's path on another host is not our file
    await expect(invoke({ sender: win.webContents, senderFrame: frame(`file://evil.example${String(win.loaded)}`) }, 'profiles.list')).rejects.toThrow(/unexpected sender/);
    // our own page with a fragment or query is still our page
    await expect(invoke({ sender: win.webContents, senderFrame: frame(`${ownUrl}#live`) }, 'profiles.list')).resolves.toEqual([]);
    await expect(invoke({ sender: win.webContents, senderFrame: frame(ownUrl) }, 'shell.openExternal', 'x')).rejects.toThrow(/unknown operation/);
    await expect(invoke({ sender: win.webContents, senderFrame: frame(ownUrl) }, 'profiles.list')).resolves.toEqual([]);
    // a failure crosses as JSON the renderer turns back into an ApiError
    const err = await (invoke({ sender: win.webContents, senderFrame: frame(ownUrl) }, 'call', 'config.get', {}) as Promise<unknown>).catch((e: Error) => e);
    expect(JSON.parse((err as Error).message)).toMatchObject({ code: 'closed' });
  });
});

describe('preload', () => {
  it('exposes exactly invoke and subscribe, each with an allow-list', async () => {
    expect([...fake.exposed.keys()]).toEqual(['rwBridge']);
    const bridge = fake.exposed.get('rwBridge')!;
    expect(Object.keys(bridge).sort()).toEqual(['invoke', 'subscribe']);
    await expect(bridge.invoke!('connection.state')).resolves.toBe('ok');
    expect(fake.rendererInvokes.at(-1)).toEqual(['rw:invoke', 'connection.state']);
    await expect(bridge.invoke!('require', 'child_process')).rejects.toThrow(/unknown operation/);
    expect(() => bridge.subscribe!('ipc-everything', () => {})).toThrow(/unknown channel/);
    expect(typeof bridge.subscribe!('events', () => {})).toBe('function');
  });
});

describe('single-instance lock', () => {
  it('the first instance holds the lock and starts; a second one quits without ever registering whenReady', async () => {
    // the first instance (imported above) took the lock: it registered whenReady once and did not quit
    expect(fake.whenReadyCalls).toBe(1);
    expect(fake.quitCalls).toBe(0);
    const windows = fake.windows.length;
    const handlers = fake.ipcHandlers.size;
    // a second start of the app: the lock is held elsewhere
    fake.singleInstanceLock = false;
    vi.resetModules();
    await import('../main/electron/main.ts');
    await new Promise((r) => setTimeout(r, 20));
    expect(fake.quitCalls).toBe(1);
    expect(fake.whenReadyCalls).toBe(1);
    expect(fake.windows).toHaveLength(windows);
    expect(fake.ipcHandlers.size).toBe(handlers);
  });
});
