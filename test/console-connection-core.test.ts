/**
 * The console's connection (main/core) against a real relay, on a fake clock so that no automatic retry can pass for
 * what a test looks at: saving new settings for the relay the console is on (or trying, or refused by) takes effect at
 * once, and the save's answer says what it did about the connection (the renderer's toast says it); a port where
 * something other than TLS answers (the relay's own SMTP port) stops with words that name the mistake instead of a raw
 * OpenSSL error retried forever; and no message carries a countdown that goes stale.
 */
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ConnectionState } from '../shared/console-api.ts';
import { withoutCountdown } from '../main/core/connection.ts';
import { firstLine, isNotTlsError, isSmtpGreeting } from '../main/core/pinned-socket.ts';
import type { RelayOptions } from '../relay/relay.ts';
import { ConsoleClock, consoleConnectionFixtures } from './helpers/console-connection.ts';
import { waitFor } from './helpers/wait.ts';
import { WssClient } from './helpers/wss-client.ts';

const { cleanups, ownRelay: relayWith, newCore } = consoleConnectionFixtures();
/** (the DNS checks off: nothing here needs DNS) */
const ownRelay = (extra: Partial<RelayOptions> = {}) => relayWith({ checks: { reverseDns: { mode: 'off' }, senderDomain: { mode: 'off' } } }, extra);

describe('saving the profile the console is on', () => {
  it('a refused token, then the right one pasted and saved: it connects at once, showing that it connects', async () => {
    const r = await ownRelay();
    const { core, clock, states, save, state } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: 'rwt_wrong' });
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState).status).toBe('auth-failed');
    // nothing is scheduled: without the save, the console would show the refusal for ever
    expect(clock.nextAt()).toBeNull();
    const mark = states.length;
    const saved = await save({ id: p.id, name: 'Edge relay', host: '127.0.0.1', port: r.port, token: r.token });
    // the save itself starts it, and says so: the state too, before the relay has answered
    expect(saved).toMatchObject({ id: p.id, name: 'Edge relay', hasToken: true, connection: 'reconnecting' });
    expect(states.slice(mark).map((s) => s.status)[0]).toBe('connecting');
    await waitFor(() => state().status === 'connected', 'connected with the saved token', 5000);
    expect(state()).toMatchObject({ profileId: p.id, role: 'admin' });
    // the time never moved: no retry timer did it
    expect(clock.now()).toBe(new ConsoleClock().now());
  });

  it('trying an address where nothing listens: the corrected port is used at once, not after the backoff', async () => {
    const r = await ownRelay();
    const closed = net.createServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', () => res()));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise((res) => closed.close(res));
    const { core, save, state } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: deadPort, token: r.token });
    expect(((await core.invoke('connection.connect', [p.id])) as ConnectionState).status).toBe('reconnecting');
    expect(state().message).toMatch(/nothing listens on 127\.0\.0\.1:\d+/);
    expect((await save({ id: p.id, name: 'Edge relay', host: '127.0.0.1', port: r.port })).connection).toBe('reconnecting');
    // the new address asks for its certificate: the prompt comes now, on the user's save
    await waitFor(() => state().status === 'fingerprint-unknown', 'the new address reached', 5000);
    expect(state().certificate?.fingerprint256).toBe(r.fp);
  });

  it('while connected: a new token takes effect at once; a changed name alone does not drop the session', async () => {
    const r = await ownRelay();
    const admin = await WssClient.connect(r.port, r.fp);
    cleanups.push(() => admin.close());
    await admin.call('auth.login', { token: r.token });
    const viewer = (await admin.call('tokens.create', { name: 'night-shift', role: 'viewer' })).token;
    const { core, states, save, state } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: r.token });
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState).role).toBe('admin');
    expect(p.connection).toBe('not-current');
    let mark = states.length;
    expect((await save({ id: p.id, name: 'Edge relay (HQ)', host: '127.0.0.1', port: r.port })).connection).toBe('unchanged');
    // the new name is shown at once (the status bar names the profile), on the same session: nothing reconnects
    expect(states.slice(mark)).toHaveLength(1);
    expect(states.slice(mark)[0]).toMatchObject({ status: 'connected', role: 'admin', profileName: 'Edge relay (HQ)' });
    expect(state().profileName).toBe('Edge relay (HQ)');
    mark = states.length;
    // saved again with the same name: nothing to tell
    expect((await save({ id: p.id, name: 'Edge relay (HQ)', host: '127.0.0.1', port: r.port })).connection).toBe('unchanged');
    expect(states.slice(mark)).toEqual([]);
    // the token it is connected with, pasted again: a working session is not dropped for it
    expect((await save({ id: p.id, name: 'Edge relay (HQ)', host: '127.0.0.1', port: r.port, token: r.token })).connection).toBe('unchanged');
    expect(states.slice(mark)).toEqual([]);
    mark = states.length;
    expect((await save({ id: p.id, name: 'Edge relay (HQ)', host: '127.0.0.1', port: r.port, token: viewer })).connection).toBe('reconnecting');
    await waitFor(() => state().status === 'connected' && state().role === 'viewer', 'the session with the new token', 5000);
    expect(states.slice(mark).map((s) => s.status)).toEqual(['connecting', 'authenticating', 'connected']);
    expect(state().tokenName).toBe('night-shift');
    expect(state().profileName).toBe('Edge relay (HQ)');
  });

  it('refused, then only renamed: the state names it at once and the relay is not asked again', async () => {
    const r = await ownRelay();
    const { core, clock, states, save, state } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: 'rwt_wrong' });
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState).status).toBe('auth-failed');
    const refused = state();
    const mark = states.length;
    expect((await save({ id: p.id, name: 'Edge relay (old token)', host: '127.0.0.1', port: r.port })).connection).toBe('unchanged');
    expect(states.slice(mark).map((s) => [s.status, s.profileName])).toEqual([['auth-failed', 'Edge relay (old token)']]);
    expect(state()).toMatchObject({ message: refused.message, profileId: p.id, since: refused.since });
    expect(clock.nextAt()).toBeNull();
  });

  it('locked out, then renamed with a new token: the waiting state carries the new name too', async () => {
    const r = await ownRelay({ manageLimits: { maxLoginFailures: 1, lockoutMs: 60_000 } });
    const { core, save, state } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: 'rwt_mistyped' });
    expect(((await core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState).status).toBe('reconnecting');
    expect((await save({ id: p.id, name: 'Edge relay (HQ)', host: '127.0.0.1', port: r.port, token: r.token })).connection).toBe('after-lockout');
    expect(state()).toMatchObject({ status: 'reconnecting', profileName: 'Edge relay (HQ)' });
    expect(state().message).toMatch(/The console tries the new token when the lockout ends\.$/);
  });

  it('a profile other than the current one: saving it leaves the connection alone', async () => {
    const r = await ownRelay();
    const { core, states, save } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: r.token });
    const other = await save({ name: 'Spare', host: 'spare.example.net', port: 8465, token: 'rwt_x' });
    await core.invoke('connection.acceptFingerprint', [p.id, r.fp]);
    const mark = states.length;
    expect((await save({ id: other.id, name: 'Spare', host: 'spare2.example.net', port: 8466, token: 'rwt_y' })).connection).toBe('not-current');
    // a profile added while connected to another one
    expect((await save({ name: 'Third', host: 'third.example.net', port: 8465, token: 'rwt_z' })).connection).toBe('not-current');
    expect(states.slice(mark)).toEqual([]);
    // disconnected: the console is on no profile, the one it was on included
    await core.invoke('connection.disconnect', []);
    const idle = states.length;
    expect((await save({ id: p.id, name: 'Edge relay', host: '127.0.0.1', port: r.port, token: 'rwt_other' })).connection).toBe('not-current');
    expect(states.slice(idle)).toEqual([]);
  });

  it('locked out by the relay: a new token waits for the lockout, and the words say so without a frozen countdown', async () => {
    const r = await ownRelay({ manageLimits: { maxLoginFailures: 1, lockoutMs: 60_000 } });
    const { core, clock, states, save, state } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: 'rwt_mistyped' });
    const first = (await core.invoke('connection.acceptFingerprint', [p.id, r.fp])) as ConnectionState;
    expect(first).toMatchObject({ status: 'reconnecting', retryAt: clock.now() + 60_000 });
    // the live countdown comes from retryAt; the sentence has no number of seconds in it to go stale
    expect(first.message).toBe('Too many failed logins from this address: the relay locked it out. The console tries again when the lockout ends.');
    const mark = states.length;
    expect((await save({ id: p.id, name: 'Edge relay', host: '127.0.0.1', port: r.port, token: r.token })).connection).toBe('after-lockout');
    expect(states.slice(mark).map((s) => s.status)).toEqual(['reconnecting']);
    expect(state()).toMatchObject({ retryAt: first.retryAt, attempt: first.attempt });
    expect(state().message).toMatch(/locked it out\. The console tries the new token when the lockout ends\.$/);

    // the lockout met at connect (the relay's close says "try again in N s"): its number is left to the countdown
    clock.advance(60_000);
    await waitFor(() => states.slice(mark).some((s) => s.status === 'reconnecting' && s.attempt > first.attempt), 'the retry meets the lockout', 5000);
    expect(state().message).toMatch(/^The relay refused this address: too many failed logins from 127\.0\.0\.1\. The console tries again when the lockout ends\.$/);
    expect(state().message).not.toMatch(/\d+ s\b/);
  });

  it('takes the relay\'s countdown out of its words, and nothing else', () => {
    expect(withoutCountdown('too many failed logins from 127.0.0.1; try again in 297 s')).toBe('too many failed logins from 127.0.0.1');
    expect(withoutCountdown('too many failed logins from ::1; try again in 3 s (auth.login was not run)')).toBe('too many failed logins from ::1 (auth.login was not run)');
    expect(withoutCountdown('the relay has too many management sessions (limit 64); try again later')).toBe('the relay has too many management sessions (limit 64); try again later');
  });

  it('a lost connection says what happened, with no "Retrying in N s" frozen in the sentence', async () => {
    const r = await ownRelay();
    const { core, save, state } = newCore();
    const p = await save({ name: 'Edge relay', host: '127.0.0.1', port: r.port, token: r.token });
    await core.invoke('connection.acceptFingerprint', [p.id, r.fp]);
    await r.relay().stop();
    await waitFor(() => state().status === 'reconnecting', 'the drop noticed', 5000);
    expect(state().message).not.toMatch(/Retrying|\d+ s\b/);
    expect(state().retryAt).not.toBeNull();
  });
});

describe('an address where something other than the relay answers', () => {
  it("the relay's SMTP port: stops with words naming the mistake, schedules no retry, and the corrected port connects", async () => {
    const r = await ownRelay();
    const smtpPort = r.relay().smtpAddress.port;
    const { core, clock, save, state } = newCore();
    const p = await save({ name: 'Oops SMTP port', host: '127.0.0.1', port: smtpPort, token: r.token });
    const st = (await core.invoke('connection.connect', [p.id])) as ConnectionState;
    expect(st.status).toBe('disconnected');
    // still about this profile (the views show it as stopped on it, with a way to connect again)
    expect(st.profileId).toBe(p.id);
    expect(st.message).toMatch(new RegExp(`^127\\.0\\.0\\.1:${smtpPort} is an SMTP port, not the relay's management port: it greeted "220 [^"]+" instead of speaking TLS\\.`));
    expect(st.message).toContain('The management port is manage.listen in config.json (8465 by default).');
    expect(st.message).toMatch(/stopped trying/);
    expect(st.message).not.toMatch(/SSL routines|openssl|0A00010B/);
    // no retry at all, however long one waits
    expect(clock.nextAt()).toBeNull();
    // the port corrected and saved: it connects now (the certificate prompt of the real management port), and says so
    expect((await save({ id: p.id, name: 'Oops SMTP port', host: '127.0.0.1', port: r.port })).connection).toBe('reconnecting');
    await waitFor(() => state().status === 'fingerprint-unknown', 'the management port reached', 5000);
  });

  it('a peer that does not speak TLS and says nothing first (a plain web server): the general words', async () => {
    const web = http.createServer((_q, s) => s.end('hello'));
    await new Promise<void>((res) => web.listen(0, '127.0.0.1', () => res()));
    cleanups.push(() => new Promise<void>((res) => web.close(() => res())));
    const port = (web.address() as net.AddressInfo).port;
    const { core, clock, save } = newCore();
    const p = await save({ name: 'Web', host: '127.0.0.1', port, token: 'rwt_x' });
    const st = (await core.invoke('connection.connect', [p.id])) as ConnectionState;
    expect(st).toMatchObject({ status: 'disconnected', profileId: p.id });
    expect(st.message).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} does not speak TLS: is it the relay's SMTP port\\? The management port is manage\\.listen in config\\.json \\(8465 by default\\)\\.`));
    expect(clock.nextAt()).toBeNull();
  });

  it('a plain-text service that greets "220" but is not SMTP (an FTP server): named as another service, quoting its line, and told nothing', async () => {
    const said: string[] = [];
    let hungUp!: () => void;
    const closed = new Promise<void>((res) => (hungUp = res));
    const ftp = net.createServer((s) => {
      s.write('220 ProFTPD 1.3.8 Server (ftp.example.test)\r\n');
      s.on('data', (d) => said.push(d.toString()));
      s.on('error', () => {});
      s.on('close', () => hungUp());
    });
    await new Promise<void>((res) => ftp.listen(0, '127.0.0.1', () => res()));
    cleanups.push(() => new Promise<void>((res) => ftp.close(() => res())));
    const port = (ftp.address() as net.AddressInfo).port;
    const { core, clock, save } = newCore();
    const p = await save({ name: 'FTP', host: '127.0.0.1', port, token: 'rwt_x' });
    const st = (await core.invoke('connection.connect', [p.id])) as ConnectionState;
    expect(st).toMatchObject({ status: 'disconnected', profileId: p.id });
    expect(st.message).toMatch(
      new RegExp(`^127\\.0\\.0\\.1:${port} does not speak TLS: another plain-text service answers there, not the relay; its first line was "220 ProFTPD 1\\.3\\.8 Server \\(ftp\\.example\\.test\\)"\\. The management port is manage\\.listen`),
    );
    expect(st.message).not.toMatch(/SMTP port/);
    expect(clock.nextAt()).toBeNull();
    // the probe hung up without a word (no QUIT to a protocol it does not know)
    await closed;
    expect(said.join('')).not.toContain('QUIT');
  });

  it('tells an SMTP greeting from another "220" greeting', () => {
    for (const smtp of ['220 relay.example.test ESMTP Relay Warden', '220 mx.google.com ESMTP a1-20020a.12 - gsmtp', '220-mail.example.net ESMTP Exim 4.96', '220 host Microsoft ESMTP MAIL Service ready', '220 smtp.example.net Simple Mail Transfer Service Ready', '220 mail.example.org SMTP ready']) {
      expect(isSmtpGreeting(smtp), smtp).toBe(true);
    }
    for (const other of ['220 ProFTPD 1.3.8 Server (ftp.example.test)', '220 (vsFTPd 3.0.5)', '220 Microsoft FTP Service', '220', '250 mx.example.test ESMTP', 'SSH-2.0-OpenSSH_9.6']) {
      expect(isSmtpGreeting(other), other).toBe(false);
    }
    expect(isSmtpGreeting(null)).toBe(false);
  });

  it('recognises "not TLS" in OpenSSL\'s words (Node) and in BoringSSL\'s (Electron), by code, reason or message', () => {
    // Node with OpenSSL 3
    expect(isNotTlsError({ code: 'ERR_SSL_WRONG_VERSION_NUMBER', reason: 'wrong version number', message: 'C0B7F2A1DF7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:354:\n' })).toBe(true);
    expect(isNotTlsError({ code: 'ERR_SSL_PACKET_LENGTH_TOO_LONG' })).toBe(true);
    expect(isNotTlsError({ message: 'error:0A0000C6:SSL routines::packet length too long' })).toBe(true);
    // Electron: BoringSSL's reason is the macro name
    expect(isNotTlsError({ code: 'ERR_SSL_WRONG_VERSION_NUMBER', reason: 'WRONG_VERSION_NUMBER', message: '140389787657856:error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:../../third_party/boringssl/src/ssl/tls_record.cc:242:\n' })).toBe(true);
    expect(isNotTlsError({ code: 'WRONG_VERSION_NUMBER' })).toBe(true);
    expect(isNotTlsError({ reason: 'WRONG_VERSION_NUMBER' })).toBe(true);
    expect(isNotTlsError({ code: 'ERR_SSL_HTTP_REQUEST' })).toBe(true);
    expect(isNotTlsError({ code: 'HTTPS_PROXY_REQUEST' })).toBe(true);
    // a write error carries the reason in its message only
    expect(isNotTlsError({ code: 'EPROTO', message: 'write EPROTO 769044072:error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:../../third_party/boringssl/src/ssl/tls_record.cc:242:' })).toBe(true);
    expect(isNotTlsError({ code: 'EPROTO', message: 'write EPROTO 140:error:1408F10B:SSL routines:ssl3_get_record:wrong version number:../ssl/record/ssl3_record.c:252:' })).toBe(true);
    // other failures are not "not TLS"
    expect(isNotTlsError({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:8465' })).toBe(false);
    expect(isNotTlsError({ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', reason: 'sslv3 alert handshake failure', message: 'error:0A000410:SSL routines::sslv3 alert handshake failure' })).toBe(false);
    expect(isNotTlsError({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', message: 'error:1000042e:SSL routines:OPENSSL_internal:TLSV1_ALERT_PROTOCOL_VERSION' })).toBe(false);
    expect(isNotTlsError({ message: 'the relay answered an http request with 400' })).toBe(false);
    expect(isNotTlsError({})).toBe(false);
  });

  it("reads an SMTP server's greeting (and tells it QUIT), and nothing from a peer that waits", async () => {
    const said: string[] = [];
    const smtp = net.createServer((s) => {
      s.write('220 mx.example.test ESMTP\r\n');
      s.on('data', (d) => {
        said.push(d.toString());
        s.end('221 bye\r\n');
      });
    });
    const quiet = net.createServer((s) => s.on('error', () => {}));
    for (const srv of [smtp, quiet]) {
      await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
      cleanups.push(() => {
        srv.close();
      });
    }
    expect(await firstLine('127.0.0.1', (smtp.address() as net.AddressInfo).port)).toBe('220 mx.example.test ESMTP');
    await waitFor(() => said.join('') === 'QUIT\r\n', 'the QUIT');
    expect(await firstLine('127.0.0.1', (quiet.address() as net.AddressInfo).port, 200)).toBeNull();
  });
});
