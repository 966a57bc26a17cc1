/**
 * Packaging: electron-builder packs the console (--dir, Linux) exactly as `npm run dist` would, but offline, against a
 * stand-in Electron (electronDist: a directory holding a fake `electron` executable that carries Electron's fuse wire,
 * so that electronFuses can be flipped in it and read back). The Electron binary is never downloaded: any download
 * would go to a proxy address where nothing listens, and fail the build.
 *
 * What is checked: app.asar holds the app's own package.json (no dependencies), dist/main and dist/renderer, and not
 * one file from node_modules (electron-builder 26 would otherwise pack the relay's production dependencies:
 * smtp-server, better-sqlite3 built for Node, tsx...); no .map file; and the fuses electron-builder.yml asks for.
 * It builds the main process first (main/build.mjs, which also writes dist/package.json); the renderer must be built
 * (`npm test` builds it; alone: `npm run build:renderer`).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const ROOT = path.resolve('.');
const CLI = path.join(ROOT, 'node_modules/electron-builder/cli.js');
const canRun = fs.existsSync(CLI) && fs.existsSync(path.join(ROOT, 'node_modules/@electron/asar')) && fs.existsSync(path.join(ROOT, 'node_modules/@electron/fuses'));
if (!canRun) {
  console.warn('\n*** SKIPPED: electron-builder, @electron/asar or @electron/fuses is not installed: the packaging test (what app.asar holds) did not run ***\n');
}

const SENTINEL = 'dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-pack-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe.skipIf(!canRun)('packaging (electron-builder --dir, offline, stand-in Electron)', () => {
  it('app.asar holds package.json, main and renderer only: no node_modules, no source maps; the fuses are set', { timeout: 60_000 }, async () => {
    expect(fs.existsSync(path.join(ROOT, 'dist/renderer/index.html')), 'dist/renderer is missing: run "npm run build:renderer" first (npm test does)').toBe(true);
    await run(process.execPath, ['main/build.mjs'], { cwd: ROOT });
    // a stand-in Electron: an executable holding the fuse wire (version 1, 8 fuses, every one on, as in Electron)
    const electronDist = path.join(work, 'electron-dist');
    fs.mkdirSync(electronDist);
    fs.writeFileSync(path.join(electronDist, 'electron'), Buffer.concat([Buffer.from('#!/bin/sh\nexit 1\n'), Buffer.from(SENTINEL), Buffer.from([1, 8]), Buffer.from('11111111\n')]), { mode: 0o755 });
    const out = path.join(work, 'release');
    const noNetwork = { HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9', NO_PROXY: '', no_proxy: '' };
    await run(process.execPath, [CLI, '--linux', '--dir', '--x64', `-c.electronDist=${electronDist}`, `-c.directories.output=${out}`], {
      cwd: ROOT,
      env: { ...process.env, ...noNetwork, CI: 'true' },
      timeout: 55_000,
    }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`electron-builder failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
    });
    // (a download would have failed the run above)

    const unpacked = path.join(out, 'linux-unpacked');
    const archive = path.join(unpacked, 'resources', 'app.asar');
    const asar = require('@electron/asar') as { listPackage(p: string, o: object): string[]; extractFile(p: string, f: string): Buffer };
    const files = asar.listPackage(archive, { isPack: false }).map((f) => f.split(path.sep).join('/'));
    // nothing beside app.asar (an app.asar.unpacked would be native modules)
    expect(fs.readdirSync(path.join(unpacked, 'resources'))).toEqual(['app.asar']);
    expect(files.filter((f) => /node_modules/.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    const top = [...new Set(files.map((f) => f.split('/')[1]))].sort();
    expect(top).toEqual(['main', 'package.json', 'renderer']);
    expect(files).toEqual(expect.arrayContaining(['/main/main.cjs', '/main/preload.cjs', '/renderer/index.html']));
    expect(files.filter((f) => f.startsWith('/main/'))).toEqual(['/main/main.cjs', '/main/preload.cjs']);
    const pkg = JSON.parse(asar.extractFile(archive, 'package.json').toString()) as Record<string, unknown>;
    expect(pkg.main).toBe('main/main.cjs');
    expect(pkg).not.toHaveProperty('dependencies');
    expect(pkg).not.toHaveProperty('devDependencies');
    // the size says the same: a few MB at most (with the relay's dependencies it was over 25 MB)
    expect(fs.statSync(archive).size).toBeLessThan(5 * 1024 * 1024);

    // the fuses of electron-builder.yml, flipped in the stand-in binary: 0 RunAsNode, 2 NODE_OPTIONS, 3 --inspect off;
    // 4 embedded asar integrity, 5 only load app from asar on; the others (1 cookie encryption, 6 V8 snapshot, 7 file://
    // privileges) as Electron ships them
    const fuses = require('@electron/fuses') as { getCurrentFuseWire(p: string): Promise<Record<string, number | string>> };
    const wire = await fuses.getCurrentFuseWire(path.join(unpacked, 'relay-warden'));
    const on = 49;
    const off = 48;
    expect(wire).toEqual({ version: '1', 0: off, 1: on, 2: off, 3: off, 4: on, 5: on, 6: on, 7: on });
  });
});
