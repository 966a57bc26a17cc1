/**
 * Review 5 (9a0e238, 2d81fd4): the per-destination state (Queue.dests: lastError, down, probing, connWaiting) gets
 * an entry for every destination key a job ever went to (learn() calls dest(key) for every job, a failure does too)
 * and nothing ever removes one. A relay that relays to many domains (mx:DOMAIN keys) grows it without bound, for
 * messages long delivered. (The key cache next to it is bounded at 100,000 domains; this map is not.)
 *
 * Private state is read on purpose (no public accessor shows it). Failed before the fix (pruneDests in spool.ts).
 */
import { describe, expect, it } from 'vitest';
import { deliveryFixtures } from './helpers/delivery-fixtures.ts';
import type { MxResolver } from '../relay/queue/spool.ts';

const { sink, harness } = deliveryFixtures();

describe('per-destination state', () => {
  it('does not keep an entry for every domain ever delivered to', async () => {
    const s = await sink();
    // every domain's MX is the sink on loopback
    const resolver: MxResolver = {
      mx: async () => ({ status: 'ok', records: [{ exchange: '127.0.0.1', priority: 10 }], ttl: 300 }),
      a: async (name) => (name === '127.0.0.1' ? { status: 'ok', records: ['127.0.0.1'], ttl: 300 } : { status: 'nodata' }),
      aaaa: async () => ({ status: 'nodata' }),
    };
    const h = await harness({ smtp: { hostname: 'relay.test' }, delivery: { tls: 'off' }, relay: { allowGroups: [] } }, { resolver, mxPort: s.port });
    await h.queue.start();
    const N = 300;
    for (let i = 0; i < N; i++) await h.submit('alice@sender.test', [`bob@d${i}.test`]);
    await s.waitFor(N);
    await expect.poll(() => h.queue.size, { timeout: 20_000 }).toBe(0);
    const dests = (h.queue as unknown as { dests: Map<string, unknown> }).dests;
    // nothing is queued, nothing is down: nothing needs remembering (a few recent ones would be fine)
    expect(dests.size).toBeLessThan(N / 10);
  }, 30_000);
});
