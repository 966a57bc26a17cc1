/**
 * A second process writing a data directory's config.json or tokens.json the way the command line does (its own
 * ConfigStore / TokenStore, one change at a time): `store-writer.ts DIR config|tokens N PREFIX`. For the lock test.
 */
import { ConfigStore } from '../../relay/store/config-store.ts';
import { TokenStore } from '../../relay/store/tokens.ts';

const [dir, what, n, prefix] = process.argv.slice(2) as [string, string, string, string];
for (let i = 0; i < Number(n); i++) {
  if (what === 'config') {
    ConfigStore.open(dir).store.modify((d) => void (d.users[`${prefix}${i}`] = { passwordHash: 'scrypt$x' }), { by: 'cli', source: 'user set' });
  } else {
    TokenStore.open(dir).create(`${prefix}${i}`, 'viewer');
  }
}
process.stdout.write('done\n');
