/**
 * The last admin token is not revoked over the management channel. A tryout (s13 #14) had admin2 revoke "admin" and
 * then itself: the reply was {closedSessions: 1}, and from then on nobody could change the relay from a console; only
 * the command line on the relay's host could make another admin token. Now tokens.revoke of the only admin token is
 * refused (4022, naming it and saying to create another admin token first), and nothing changes: the token still
 * logs in, its session stays open. With a second admin token, either may be revoked; viewers are never the question.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../shared/protocol.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';
import { TokenStore } from '../relay/store/tokens.ts';

const startRelay = manageRelayPerTest();

describe('tokens.revoke and the last admin token', () => {
  it('an admin revokes the other admins, then itself: the last one is refused, with what to do instead', async () => {
    const t = await startRelay();
    const admin = await t.admin(); // the "admin" token the relay made at its first start
    const { client: admin2, name: name2 } = await t.clientWithRole('admin', 'admin2');
    const viewer = await t.clientWithRole('viewer', 'viewer1');

    // admin2 revokes "admin": another admin (itself) is left, so that is fine
    expect(await admin2.call('tokens.revoke', { name: 'admin' })).toEqual({ closedSessions: 1 });
    await admin.closed;

    // then itself: refused
    const e = await admin2.callError('tokens.revoke', { name: name2 });
    expect(e.code).toBe(ErrorCode.InvalidConfig);
    expect(e.message).toBe(
      `"admin2" is the last admin token: without it nobody could change the relay from a console. Create another admin token first (tokens.create with role "admin", or \`token create --name NAME --role admin\` on the relay's host), log in with it, then revoke this one`,
    );
    expect(e.data).toEqual({ issues: [{ path: ['name'], message: 'is the last admin token; create another admin token first', code: 'custom' }] });

    // nothing changed: the token is there, its session still works, a new login with it works
    expect(t.relay.tokens.list().map((x) => [x.name, x.role])).toEqual([
      ['admin2', 'admin'],
      ['viewer1', 'viewer'],
    ]);
    expect(admin2.closeInfo).toBeNull();
    expect((await admin2.call('tokens.list', {})).tokens.map((x) => x.name)).toEqual(['admin2', 'viewer1']);
    // the refusal is audited as a failed admin call
    const line = t.auditLines().filter((a) => a.method === 'tokens.revoke').at(-1)!;
    expect(line).toMatchObject({ by: 'admin2', ok: false, error: { code: ErrorCode.InvalidConfig } });

    // a viewer token may still go (it is not an admin)
    expect(await admin2.call('tokens.revoke', { name: viewer.name })).toEqual({ closedSessions: 1 });

    // the way out the message gives: create another admin token, then the old one may be revoked
    const made = await admin2.call('tokens.create', { name: 'admin3', role: 'admin' });
    const admin3 = await t.connect();
    expect((await admin3.login(made.token)).role).toBe('admin');
    expect(await admin3.call('tokens.revoke', { name: name2 })).toEqual({ closedSessions: 1 });
    await admin2.closed;
    expect((await admin3.callError('tokens.revoke', { name: 'admin3' })).code).toBe(ErrorCode.InvalidConfig);
    // an unknown name is still 4004
    expect((await admin3.callError('tokens.revoke', { name: 'nobody' })).code).toBe(ErrorCode.NotFound);
  });

  it('judged on tokens.json as it is: the other admin token revoked by the command line (its SIGHUP not handled yet) counts', async () => {
    const t = await startRelay();
    const { client: admin2 } = await t.clientWithRole('admin', 'admin2');
    // `token revoke admin` on the relay's host: its file write, not yet its SIGHUP
    expect(TokenStore.open(t.dir).revoke('admin')).toBe(true);
    const e = await admin2.callError('tokens.revoke', { name: 'admin2' });
    expect(e.code).toBe(ErrorCode.InvalidConfig);
    expect(TokenStore.open(t.dir).list().map((x) => x.name)).toEqual(['admin2']);
  });
});
