/**
 * Fixtures shared by the delivery tests: sinks and queue harnesses that are closed after each test, and a config
 * whose local domains deliver to given sinks. Call deliveryFixtures() at the top of a test file.
 */
import { afterEach } from 'vitest';
import type { ConfigInput } from '../../shared/config.ts';
import { queueHarness, type Harness } from './queue-harness.ts';
import { startSink, type Sink } from './sink.ts';

export function deliveryFixtures() {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const sink = async (opts: Parameters<typeof startSink>[0] = {}): Promise<Sink> => {
    const s = await startSink(opts);
    cleanups.push(() => s.close());
    return s;
  };
  return {
    sink,
    /** A sink that holds its answer to the end of DATA until release(); `arrived` resolves when the first message is there. */
    async heldSink(opts: Parameters<typeof startSink>[0] = {}) {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let arrive!: () => void;
      const arrived = new Promise<void>((r) => (arrive = r));
      const s = await sink({
        ...opts,
        holdData: () => {
          arrive();
          return released;
        },
      });
      return { sink: s, arrived, release };
    },
    /** A sink that answers 451 to every recipient: its messages are deferred (and copied out of their segment). */
    refusingSink: (): Promise<Sink> => sink({ onRcpt: () => ({ code: 451, message: '4.3.0 not now' }) }),
    async harness(config: ConfigInput, opts: Parameters<typeof queueHarness>[1] = {}): Promise<Harness> {
      const h = await queueHarness(config, opts);
      cleanups.push(() => h.close());
      return h;
    },
  };
}

/** localDomains delivering in plain text: the spool tests' config (their sinks offer no TLS). */
export const plainLocalDomains = (domains: Record<string, Sink>): ConfigInput => localDomains(domains, { tls: 'off' });

/** A config whose local domains ("example.test" -> sink) accept any recipient and deliver to their sink. */
export function localDomains(domains: Record<string, Sink>, delivery: ConfigInput['delivery'] = {}): ConfigInput {
  return {
    smtp: { hostname: 'relay.test' },
    domains: Object.fromEntries(Object.entries(domains).map(([d, s]) => [d, { deliverTo: s.address, recipients: '*' }])),
    delivery,
  };
}
