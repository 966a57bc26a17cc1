/**
 * Names every JavaScript object has by inheritance ("constructor", "toString", "hasOwnProperty") are looked up as
 * the config's own keys only. The reviewer found `user remove toString` reported success; the same `in` / `[name]`
 * lookups made `RCPT TO:<a@constructor>` answer 451 "internal server error" (the domains table's inherited
 * constructor taken for a local domain), a config naming group "toString" in relay.allowGroups crash its own
 * validation with a TypeError, and groups.removeEntry on group "toString" fail inside the relay.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../shared/config.ts';
import { classifyRecipient } from '../relay/policy/routing.ts';
import { ErrorCode } from '../shared/protocol.ts';
import { smtpClients } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});
const startManaged = manageRelayPerTest();
const INHERITED = ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__'];

describe('inherited names are no config keys', () => {
  it('routing: a recipient domain named like an inherited property is a remote domain', () => {
    const r = parseConfig({ domains: { 'example.com': { deliverTo: '127.0.0.1:9', recipients: '*' } } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    for (const name of INHERITED) expect(classifyRecipient(r.config, `a@${name}`)).toMatchObject({ kind: 'relay' });
  });

  it('config: a group list naming an inherited property is refused in words, not with a TypeError', () => {
    for (const g of ['toString', 'constructor', 'hasOwnProperty']) {
      const r = parseConfig({ limits: { exemptGroups: [g] }, relay: { allowGroups: [g] } });
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.issues.map((i) => i.message)).toEqual([
        `names group "${g}", which is not defined in "groups"`,
        `names group "${g}", which is not defined in "groups"`,
      ]);
    }
    // a group that is really called so is a group like any other
    const own = parseConfig({ groups: { Trusted: [], constructor: [{ address: '192.0.2.1' }] }, relay: { allowGroups: ['constructor'] } });
    expect(own.ok).toBe(true);
  });

  it('SMTP: RCPT TO:<a@constructor> from a client that may not relay is refused as relaying (554), not with 451', async () => {
    t = await startTestRelay();
    const c = await open(t.port);
    await c.hello();
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    for (const name of ['constructor', 'toString', 'valueOf']) {
      expect(await c.cmd(`RCPT TO:<a@${name}>`)).toMatchObject({ code: 554, text: expect.stringMatching(/^5\.7\.1 Relay access denied/) });
    }
  });

  it('management: groups.removeEntry on group "toString" is "no such group"; groups.addEntry makes a real group "constructor"', async () => {
    const m = await startManaged();
    const admin = await m.admin();
    const e = await admin.callError('groups.removeEntry', { group: 'toString', address: '192.0.2.1' });
    expect([e.code, e.message]).toEqual([ErrorCode.NotFound, 'there is no group "toString"']);
    const added = await admin.call('groups.addEntry', { group: 'constructor', address: '192.0.2.9' });
    expect(added).toMatchObject({ group: 'constructor', created: true });
    const g = await admin.call('config.get', {});
    expect(Object.hasOwn(g.config.groups, 'constructor')).toBe(true);
    expect(g.config.groups['constructor']).toMatchObject([{ address: '192.0.2.9' }]);
    const removed = await admin.call('groups.removeEntry', { group: 'constructor', address: '192.0.2.9' });
    expect(removed.removed).toMatchObject({ address: '192.0.2.9' });
  });
});
