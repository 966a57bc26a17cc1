/**
 * Electron's security checklist, applied once for the whole app: no navigation, no new windows, no
 * webviews, every permission request denied, no request but for the app's own renderer files, and a strict CSP.
 *
 * The CSP of record is the <meta> in renderer/index.html (RENDERER_CSP, checked against the built
 * dist/renderer/index.html by test/console-s13-renderer-csp.test.ts): it applies however the page is loaded. The
 * same policy is also set as a response header (CSP, plus frame-ancestors, which a <meta> cannot carry) for whatever
 * passes through the session's webRequest; whether Electron runs onHeadersReceived for file:// loads is not verified
 * here (the Electron binary cannot run in these tests), so nothing relies on the header.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, session, type WebContents } from 'electron';

/** the policy of the renderer's <meta http-equiv="Content-Security-Policy"> */
export const RENDERER_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'none'; base-uri 'none'; form-action 'none'";

/** the response header: the same policy, plus frame-ancestors (ignored in a <meta>) */
export const CSP = `${RENDERER_CSP}; frame-ancestors 'none'`;

/**
 * Whether the renderer may load `url`: a file under the app's own renderer directory (rendererDir, absolute), or the
 * DevTools (only in the menu of an unpackaged app). Any other file (file:///etc/passwd, a file URL naming another
 * host, a path that climbs out with "..") and every other scheme are refused.
 */
export function allowedUrl(url: string, rendererDir: string): boolean {
  if (url.startsWith('devtools://')) return true;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol !== 'file:' || (u.host !== '' && u.host !== 'localhost')) return false;
  let file: string;
  try {
    // refuses an encoded separator (%2F), which could hide a climb out of the directory
    file = path.resolve(fileURLToPath(u));
  } catch {
    return false;
  }
  const root = path.resolve(rendererDir);
  return file.startsWith(root + path.sep);
}

export function hardenSession(rendererDir: string): void {
  const s = session.defaultSession;
  s.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  s.setPermissionCheckHandler(() => false);
  s.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CSP] } });
  });
  // the renderer only ever loads our own files: refuse anything else outright
  s.webRequest.onBeforeRequest((details, callback) => {
    callback({ cancel: !allowedUrl(details.url, rendererDir) });
  });
}

export function hardenContents(): void {
  app.on('web-contents-created', (_event, contents: WebContents) => {
    contents.on('will-navigate', (e) => e.preventDefault());
    contents.on('will-redirect', (e) => e.preventDefault());
    contents.on('will-attach-webview', (e) => e.preventDefault());
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  });
}
