/**
 * The Content-Security-Policy of record is the <meta> of the built renderer (dist/renderer/index.html, what the app
 * loads with loadFile): it applies however the page is loaded, where the response header set in
 * main/electron/security.ts may not (Electron's webRequest and file:// loads; not verifiable without the Electron
 * binary). `npm test` builds the renderer before vitest; alone, run `npm run build:renderer` first.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const INDEX = path.resolve('dist/renderer/index.html');

/** the strict policy, literally: loosening any directive must fail here (and in electron-adapters' header test) */
const STRICT =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'none'; base-uri 'none'; form-action 'none'";

describe('the built renderer', () => {
  it('carries the strict CSP in its <meta>, and nothing inline that would need a weaker one', () => {
    expect(fs.existsSync(INDEX), `${INDEX} is missing: run "npm run build:renderer" first (npm test does)`).toBe(true);
    const html = fs.readFileSync(INDEX, 'utf8');
    const metas = [...html.matchAll(/<meta\b[^>]*http-equiv\s*=\s*"Content-Security-Policy"[^>]*>/gi)].map((m) => m[0]);
    expect(metas).toHaveLength(1);
    const content = /\bcontent\s*=\s*"([^"]*)"/i.exec(metas[0]!)?.[1];
    expect(content?.replace(/\s+/g, ' ').trim()).toBe(STRICT);
    // before any script or stylesheet, so that it governs all of them
    const at = html.indexOf(metas[0]!);
    for (const tag of [/<script\b/i, /<link\b[^>]*rel="stylesheet"/i, /<style\b/i]) {
      const m = tag.exec(html);
      if (m) expect(m.index, String(tag)).toBeGreaterThan(at);
    }
    // scripts only from files ('self'), no inline script, no inline event handlers
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/\bsrc="\.\/assets\/[^"]+\.js"/);
      expect(body!.trim()).toBe('');
    }
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/<style\b/i);
    expect(html).not.toMatch(/\bstyle\s*=/i);
    // no base, no frames, no remote URL anywhere
    expect(html).not.toMatch(/<base\b|<iframe\b|https?:\/\//i);
  });
});
