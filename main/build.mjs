// Bundle the Electron main process and the preload (sandboxed preloads cannot load local modules), then write the
// packaged app's own package.json: dist/ is electron-builder's app directory (directories.app in
// electron-builder.yml), and its package.json names no dependencies, so nothing from node_modules is packed (the
// relay's smtp-server, better-sqlite3, tsx... are the root package.json's, and the bundles need none of them).
import fs from 'node:fs';
import { build } from 'esbuild';

const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, external: ['electron', 'bufferutil', 'utf-8-validate'], logLevel: 'warning' };
await build({ ...common, entryPoints: ['main/electron/main.ts'], outfile: 'dist/main/main.cjs' });
await build({ ...common, entryPoints: ['main/electron/preload.ts'], outfile: 'dist/main/preload.cjs' });

const root = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const app = {
  name: root.name,
  productName: 'Relay Warden',
  version: root.version,
  description: root.description,
  license: root.license,
  author: 'Relay Warden',
  private: true,
  // paths inside the app directory (dist/)
  main: 'main/main.cjs',
};
fs.writeFileSync('dist/package.json', `${JSON.stringify(app, null, 2)}\n`);
console.log('built dist/main/main.cjs and dist/main/preload.cjs; wrote dist/package.json (the packaged app\'s, no dependencies)');
