/**
 * The routing decision alone (relay/policy/routing.ts), table-driven: every case the SMTP tests reach through a real
 * session, plus the boundaries they do not (a reviewer found the pure policy layer had no tests of its own). The
 * README's "Routing and delivery" and "Decisions where the spec is silent" sections are what these pin.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../shared/config.ts';
import { classifyRecipient, normalizeDomain, senderDomainOf, splitAddress } from '../relay/policy/routing.ts';

function config(domains: Record<string, { deliverTo: string; recipients: '*' | string[] }>): Config {
  const r = parseConfig({ domains });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

const C = config({
  'example.com': { deliverTo: '10.0.0.5:25', recipients: ['alice', 'Bob@Example.com', 'sales.team'] },
  'any.example': { deliverTo: '10.0.0.6', recipients: '*' },
  'xn--bcher-kva.test': { deliverTo: '10.0.0.7', recipients: ['*'] },
  'none.example': { deliverTo: '10.0.0.8', recipients: [] },
});

describe('classifyRecipient', () => {
  const cases: Array<[string, ReturnType<typeof classifyRecipient>]> = [
    // local domains: known and unknown recipients, any case, a trailing dot
    ['alice@example.com', { kind: 'local', domain: 'example.com', address: 'alice@example.com', known: true }],
    ['ALICE@EXAMPLE.COM', { kind: 'local', domain: 'example.com', address: 'ALICE@example.com', known: true }],
    ['bob@example.com.', { kind: 'local', domain: 'example.com', address: 'bob@example.com', known: true }],
    ['sales.team@example.com', { kind: 'local', domain: 'example.com', address: 'sales.team@example.com', known: true }],
    ['carol@example.com', { kind: 'local', domain: 'example.com', address: 'carol@example.com', known: false }],
    // an entry "bob@example.com" does not make bob known in another local domain
    ['bob@none.example', { kind: 'local', domain: 'none.example', address: 'bob@none.example', known: false }],
    ['anyone@any.example', { kind: 'local', domain: 'any.example', address: 'anyone@any.example', known: true }],
    // postmaster: in every local domain, any case; bare, to the first local domain
    ['PostMaster@none.example', { kind: 'local', domain: 'none.example', address: 'PostMaster@none.example', known: true }],
    ['postmaster', { kind: 'local', domain: 'example.com', address: 'postmaster@example.com', known: true }],
    // a quoted local part that needs no quotes is the plain mailbox; one that does stays quoted
    ['"alice"@example.com', { kind: 'local', domain: 'example.com', address: 'alice@example.com', known: true }],
    ['"alice smith"@example.com', { kind: 'local', domain: 'example.com', address: '"alice smith"@example.com', known: false }],
    // an internationalised local domain in either form is the A-label the config names
    ['u@bücher.test', { kind: 'local', domain: 'xn--bcher-kva.test', address: 'u@xn--bcher-kva.test', known: true }],
    ['u@XN--BCHER-KVA.test', { kind: 'local', domain: 'xn--bcher-kva.test', address: 'u@xn--bcher-kva.test', known: true }],
    // relaying: another domain, a sub- or super-domain of a local one, an address literal (even of a local host)
    ['x@example.org', { kind: 'relay', domain: 'example.org', address: 'x@example.org' }],
    ['x@mail.example.com', { kind: 'relay', domain: 'mail.example.com', address: 'x@mail.example.com' }],
    ['x@com', { kind: 'relay', domain: 'com', address: 'x@com' }],
    ['x@[10.0.0.5]', { kind: 'relay', domain: '[10.0.0.5]', address: 'x@[10.0.0.5]' }],
    ['x@[IPv6:2001:db8::1]', { kind: 'relay', domain: '[ipv6:2001:db8::1]', address: 'x@[ipv6:2001:db8::1]' }],
    // the open-relay tricks, aimed at a local domain
    ['victim%remote.example@example.com', { kind: 'trick', domain: 'example.com', address: 'victim%remote.example@example.com', why: 'a "%" in the local part (percent hack)' }],
    ['remote.example!victim@example.com', { kind: 'trick', domain: 'example.com', address: 'remote.example!victim@example.com', why: 'a "!" in the local part (bang path)' }],
    ['"victim@remote.example"@example.com', { kind: 'trick', domain: 'example.com', address: '"victim@remote.example"@example.com', why: 'an "@" in the local part' }],
    ['"a%b"@any.example', { kind: 'trick', domain: 'any.example', address: 'a%b@any.example', why: 'a "%" in the local part (percent hack)' }],
    // not addresses
    ['alice', { kind: 'invalid', why: '"alice" is not an address' }],
    ['@example.com', { kind: 'invalid', why: '"@example.com" is not an address' }],
    ['alice@', { kind: 'invalid', why: '"alice@" is not an address' }],
    ['alice@...', { kind: 'invalid', why: '"..." is not a domain' }],
    ['alice@a..example', { kind: 'invalid', why: '"a..example" is not a domain' }],
  ];
  for (const [address, route] of cases) {
    it(`${JSON.stringify(address)} -> ${route.kind}${route.kind === 'local' ? (route.known ? ' (known)' : ' (unknown)') : ''}`, () => {
      expect(classifyRecipient(C, address)).toEqual(route);
    });
  }

  it('a relay with no local domain: a bare postmaster is invalid, everything else relays', () => {
    const none = config({});
    expect(classifyRecipient(none, 'postmaster')).toEqual({ kind: 'invalid', why: 'this relay has no local domain for postmaster' });
    expect(classifyRecipient(none, 'a@example.com')).toMatchObject({ kind: 'relay' });
  });
});

describe('the helpers', () => {
  it('normalizeDomain, splitAddress, senderDomainOf', () => {
    expect(normalizeDomain('Example.COM..')).toBe('example.com');
    expect(normalizeDomain('BÜCHER.test')).toBe('xn--bcher-kva.test');
    expect(splitAddress('a@b@c.example')).toEqual({ local: 'a@b', domain: 'c.example' });
    expect(splitAddress('nodomain')).toBeNull();
    expect(senderDomainOf('')).toBeNull();
    expect(senderDomainOf('a@Example.ORG.')).toBe('example.org');
    expect(senderDomainOf('a@')).toBeNull();
  });
});
