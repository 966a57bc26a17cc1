/**
 * Electron main process: thin adapters over the Electron-free core (main/core). Windows, the allow-listed
 * IPC bridge with sender validation, safeStorage, desktop notifications, the menu. Everything with logic
 * lives in the core and is tested in plain Node.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, ipcMain, Menu, Notification, type IpcMainInvokeEvent } from 'electron';
import { BRIDGE_CHANNELS, BRIDGE_OPS } from '../../shared/console-api.ts';
import { BridgeFailure, ConsoleCore, toBridgeError } from '../core/console-core.ts';
import { safeStorageSecrets } from './secret-store.ts';
import { hardenContents, hardenSession } from './security.ts';

const RENDERER = path.join(__dirname, '..', 'renderer', 'index.html');

let win: BrowserWindow | null = null;
let core: ConsoleCore | null = null;

function createWindow(): BrowserWindow {
  const w = new BrowserWindow({
    width: 1280,
    height: 820,
    minWidth: 900,
    minHeight: 600,
    title: 'Relay Warden',
    show: false,
    webPreferences: {
      preload: path.join(__dirname, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      spellcheck: false,
    },
  });
  w.once('ready-to-show', () => w.show());
  void w.loadFile(RENDERER);
  return w;
}

/** Only our own window, showing our own page (the top frame, loaded from our file), may use the bridge. */
function validSender(e: IpcMainInvokeEvent): boolean {
  if (!win || e.sender !== win.webContents || !e.senderFrame || e.senderFrame.parent !== null) return false;
  try {
    const u = new URL(e.senderFrame.url);
    // fileURLToPath refuses a file URL naming another host (file://server/...) rather than dropping the host
    return u.protocol === 'file:' && path.resolve(fileURLToPath(u)) === path.resolve(RENDERER);
  } catch {
    return false;
  }
}

function wireIpc(c: ConsoleCore): void {
  ipcMain.handle('rw:invoke', async (e, op: unknown, ...args: unknown[]) => {
    if (!validSender(e)) throw new Error(JSON.stringify({ code: 'forbidden', message: 'IPC from an unexpected sender' }));
    if (typeof op !== 'string' || !(BRIDGE_OPS as readonly string[]).includes(op)) {
      throw new Error(JSON.stringify({ code: 'invalid', message: `unknown operation ${String(op)}` }));
    }
    try {
      return await c.invoke(op, args);
    } catch (err) {
      // Electron passes only the message across; the renderer parses this JSON back into an ApiError
      throw new Error(JSON.stringify(err instanceof BridgeFailure ? err.payload : toBridgeError(err)));
    }
  });
  for (const channel of BRIDGE_CHANNELS) {
    c.on(channel, (payload) => {
      if (win && !win.isDestroyed()) win.webContents.send('rw:push', channel, payload);
    });
  }
}

function buildMenu(): void {
  const isMac = process.platform === 'darwin';
  Menu.setApplicationMenu(
    Menu.buildFromTemplate([
      ...(isMac ? [{ role: 'appMenu' as const }] : []),
      { role: 'fileMenu' },
      { role: 'editMenu' },
      {
        label: 'View',
        submenu: [
          { label: 'Views: Ctrl/Cmd+1 … 8; filter: Ctrl/Cmd+F; pause live: Space', enabled: false },
          { type: 'separator' },
          { role: 'resetZoom' },
          { role: 'zoomIn' },
          { role: 'zoomOut' },
          { type: 'separator' },
          { role: 'togglefullscreen' },
          ...(app.isPackaged ? [] : [{ role: 'toggleDevTools' as const }]),
        ],
      },
      { role: 'windowMenu' },
    ]),
  );
}

app.enableSandbox();
hardenContents();
// a second instance hands over to the first (its 'second-instance' focuses the window) and quits: it must not reach
// whenReady, where it would open a window and a ConsoleCore writing the same profiles.json
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.whenReady().then(() => {
    hardenSession(path.dirname(RENDERER));
    core = new ConsoleCore({
      secrets: safeStorageSecrets,
      dataDir: app.getPath('userData'),
      notify: (title, body) => {
        if (Notification.isSupported()) new Notification({ title, body }).show();
      },
    });
    wireIpc(core);
    buildMenu();
    win = createWindow();
    app.on('second-instance', () => win?.focus());
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) win = createWindow();
    });
  });

  app.on('window-all-closed', () => {
    void core?.connection.disconnect();
    if (process.platform !== 'darwin') app.quit();
  });
}
