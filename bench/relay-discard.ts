/**
 * Bench only, for issue 2's first goal read as "what the security options cost": the relay started as `npm run relay`
 * starts it, every option enforced and every event recorded in the history, but each message discarded once it has
 * passed its checks, as the bare smtp-server baseline does, instead of being stored (fsync) and delivered. This is not
 * a mode of the product: the spool's begin() is replaced in this bench process only.
 * Usage: tsx bench/relay-discard.ts --data-dir DIR
 */
import { Relay } from '../relay/relay.ts';
import type { SpoolWriter } from '../relay/queue/spool.ts';

const dataDir = process.argv[process.argv.indexOf('--data-dir') + 1]!;
const relay = await Relay.start({ dataDir, log: () => {} });
let n = 0;
(relay.queue as { begin: () => SpoolWriter }).begin = () => {
  let size = 0;
  return {
    write(chunk) {
      size += chunk.length;
    },
    async commit() {
      return { id: `DISCARDED${String(++n).padStart(8, '0')}`, size };
    },
    async abort() {},
  };
};
console.log(`relay (messages discarded after their checks) listening on ${relay.smtpAddress.host}:${relay.smtpAddress.port}`);
process.on('SIGTERM', () => {
  void relay.stop().then(() => process.exit(0));
});
