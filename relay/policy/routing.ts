/**
 * Who may send what where: classify one recipient against the local domains, and refuse the classic
 * open-relay tricks. Pure.
 *
 * smtp-server has already parsed "RCPT TO:<...>" (it drops a source route "@a,@b:" as RFC 5321 says, so
 * "<@local:user@remote>" arrives here as "user@remote" and is judged as relaying to remote, and it refuses
 * a local part holding a second "@", quoted or not, with 501).
 */
import { domainToASCII } from 'node:url';
import type { Config, DomainConfig } from '../../shared/config.ts';

export type Route =
  | { kind: 'local'; domain: string; address: string; known: boolean }
  | { kind: 'relay'; domain: string; address: string }
  /** an address form used to sneak mail through a relay: %-hack, bang path, an @ in the local part */
  | { kind: 'trick'; domain: string; address: string; why: string }
  | { kind: 'invalid'; why: string };

/** RFC 5322 dot-atom: a local part that needs no quotes. */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/**
 * A domain as the config and DNS name it: lower case, no trailing dot, and an internationalised domain as its A-label
 * (xn--...). smtp-server hands an A-label on as its U-label (bücher.test for xn--bcher-kva.test), and the config only
 * takes A-labels. A name that is not a valid IDN stays as written (lower case), so it names no local domain.
 */
export function normalizeDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/\.+$/, '');
  if (/^[\x00-\x7f]*$/.test(d)) return d;
  return domainToASCII(d) || d;
}

export function splitAddress(address: string): { local: string; domain: string } | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

function isKnown(dc: DomainConfig, local: string, domain: string): boolean {
  const r = dc.recipients;
  if (r === '*') return true;
  const lp = local.toLowerCase();
  // RFC 5321 4.5.1: every domain the server accepts mail for MUST accept postmaster (any case)
  if (lp === 'postmaster') return true;
  const full = `${lp}@${domain}`;
  for (const entry of r) {
    if (entry === '*') return true;
    const e = entry.toLowerCase();
    if (e === lp || e === full) return true;
  }
  return false;
}

export function classifyRecipient(config: Config, rawAddress: string): Route {
  if (rawAddress.toLowerCase() === 'postmaster') {
    // RFC 5321 4.1.1.3: the domainless postmaster must be accepted; it goes to the first local domain
    const first = Object.keys(config.domains)[0];
    return first
      ? { kind: 'local', domain: first, address: `postmaster@${first}`, known: true }
      : { kind: 'invalid', why: 'this relay has no local domain for postmaster' };
  }
  const parts = splitAddress(rawAddress);
  if (!parts) return { kind: 'invalid', why: `"${rawAddress}" is not an address` };
  const domain = normalizeDomain(parts.domain);
  if (domain === '' || domain.includes('..')) return { kind: 'invalid', why: `"${parts.domain}" is not a domain` };
  const quoted = parts.local.length >= 2 && parts.local.startsWith('"') && parts.local.endsWith('"');
  const inner = quoted ? parts.local.slice(1, -1) : parts.local;
  // RFC 5321 4.1.2: a quoted local part that needs no quoting ("bob") is the same mailbox as bob
  const local = quoted && DOT_ATOM.test(inner) ? inner : parts.local;
  const address = `${local}@${domain}`;
  // percent hack (user%remote@local), bang path (remote!user@local), @ inside a quoted local part
  if (/[%!@]/.test(inner)) {
    const why = inner.includes('%') ? 'a "%" in the local part (percent hack)' : inner.includes('!') ? 'a "!" in the local part (bang path)' : 'an "@" in the local part';
    return { kind: 'trick', domain, address, why };
  }
  if (domain.startsWith('[')) {
    // an address literal never names a local domain here: mail to [IP] is relaying
    return { kind: 'relay', domain, address };
  }
  // (own keys only: a domain named "constructor" or "__proto__" is no local domain, though every object has one)
  const dc = Object.hasOwn(config.domains, domain) ? config.domains[domain] : undefined;
  if (dc) return { kind: 'local', domain, address, known: isKnown(dc, local, domain) };
  return { kind: 'relay', domain, address };
}

/** The sender's domain for the DNS check, or null (null sender, address literal, postmaster). */
export function senderDomainOf(address: string): string | null {
  if (!address) return null;
  const parts = splitAddress(address);
  if (!parts) return null;
  const d = normalizeDomain(parts.domain);
  return d === '' ? null : d;
}
