/**
 * A client's failed TLS handshake is the client's, not a fault of the relay. Regression (the protocol tryout of
 * session 9): `STARTTLS` then bytes that are not a ClientHello printed two OpenSSL lines to stdout per connection
 * ("smtp: ...:error:0A00010B:SSL routines:ssl3_get_record:wrong version number..."), with no client address: any
 * client could fill the relay's log, which is meant for start-up, reloads and faults.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('a client that breaks its TLS handshake', () => {
  it('is not logged, and the relay goes on serving the next client', async () => {
    t = await startTestRelay({});
    const printed: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void printed.push(args.join(' ')));
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void printed.push(args.join(' ')));
    for (const garbage of ['GARBAGE\r\n', // a handshake record holding an empty ClientHello
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00])]) {
      const c = await open(t.port, '127.0.0.61');
      await c.hello();
      expect((await c.cmd('STARTTLS')).code).toBe(220);
      c.write(garbage);
      // the server ends the connection (its handshake failed); give its error path the same time
      await waitFor(() => t!.relay.front.connectionCount === 0, 'the connection to close', 10_000);
    }
    expect(printed.filter((l) => /SSL|smtp:/.test(l))).toEqual([]);
    const ok = await open(t.port, '127.0.0.62');
    expect((await ok.hello()).code).toBe(250);
  });
});
