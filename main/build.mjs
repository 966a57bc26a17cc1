// Bundle the Electron main process and the preload (sandboxed preloads cannot load local modules).
import { build } from 'esbuild';

const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, external: ['electron', 'bufferutil', 'utf-8-validate'], logLevel: 'warning' };
await build({ ...common, entryPoints: ['main/electron/main.ts'], outfile: 'dist/main/main.cjs' });
await build({ ...common, entryPoints: ['main/electron/preload.ts'], outfile: 'dist/main/preload.cjs' });
console.log('built dist/main/main.cjs and dist/main/preload.cjs');
