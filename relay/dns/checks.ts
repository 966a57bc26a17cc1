// DNS facts for the SMTP policy: does the sender's domain exist for mail, does the client IP have reverse DNS.
// The policy turns these facts into verdicts; nothing here decides a reply code.
import { isIPv4, isIPv6 } from 'node:net';
import { normalizeIp } from '../../shared/ip.ts';
import type { DnsAnswer, DnsResolver } from './resolver.ts';

export type SenderDomainFact = { result: 'ok' } | { result: 'nullmx' } | { result: 'nodomain' } | { result: 'temperror'; reason: string; brief?: string };

/** `confirmed` (asked for with checkReverseDns's `confirm`): the name confirmedName() gives, null when none points back */
export type ReverseDnsFact = { result: 'ok'; names: string[]; confirmed?: string | null } | { result: 'none' } | { result: 'temperror'; reason: string; brief?: string };

/** "[192.0.2.1]" and "[IPv6:2001:db8::1]" (RFC 5321 address literals): true if valid, false if malformed, null if not a literal. */
function addressLiteral(domain: string): boolean | null {
  if (!domain.startsWith('[') || !domain.endsWith(']')) return null;
  const inner = domain.slice(1, -1);
  if (/^ipv6:/i.test(inner)) return isIPv6(inner.slice(5));
  return isIPv4(inner);
}

/**
 * Can the MAIL FROM domain receive mail (bounces)? MX first (RFC 5321 5.1):
 * a single "." MX is a null MX (RFC 7505: the domain accepts no mail); other MX records: ok;
 * NXDOMAIN: nodomain; no MX: an A or AAAA record makes it ok (implicit MX), neither: nodomain.
 * A DNS failure on the path that decides is a temperror (the client should retry later).
 * An address literal ("[192.0.2.1]") is ok without any lookup; a malformed one is nodomain.
 * A name that cannot be a DNS name is nodomain (the resolver answers nxdomain without asking).
 */
export async function checkSenderDomain(r: DnsResolver, domain: string): Promise<SenderDomainFact> {
  const literal = addressLiteral(domain);
  if (literal !== null) return literal ? { result: 'ok' } : { result: 'nodomain' };

  const mx = await r.mx(domain);
  switch (mx.status) {
    case 'ok':
      return mx.records.length === 1 && mx.records[0]?.exchange === '' ? { result: 'nullmx' } : { result: 'ok' };
    case 'nxdomain':
      return { result: 'nodomain' };
    case 'temperror':
      return { result: 'temperror', reason: mx.reason, ...(mx.brief ? { brief: mx.brief } : {}) };
    case 'nodata':
      break;
  }
  // No MX: the domain's address records stand in for it (implicit MX). Ask for both at once;
  // the first "ok" settles it, without waiting for the other to time out.
  const lookups = [r.a(domain), r.aaaa(domain)];
  const anyOk = await new Promise<boolean>((resolve) => {
    let pending = lookups.length;
    for (const lookup of lookups) {
      void lookup.then((answer) => {
        if (answer.status === 'ok') resolve(true);
        else if (--pending === 0) resolve(false);
      });
    }
  });
  if (anyOk) return { result: 'ok' };
  const failed = (await Promise.all(lookups)).find((answer): answer is Extract<DnsAnswer<string>, { status: 'temperror' }> => answer.status === 'temperror');
  if (failed) return { result: 'temperror', reason: failed.reason, ...(failed.brief ? { brief: failed.brief } : {}) };
  return { result: 'nodomain' };
}

/**
 * Does the client IP have reverse DNS (a PTR record)? Rejects with a TypeError if ip is not an IP address. With
 * `confirm`, an answer also says which of its names points back to the client (confirmedName), in the same call.
 */
export async function checkReverseDns(r: DnsResolver, ip: string, confirm = false): Promise<ReverseDnsFact> {
  const ptr = await r.ptr(ip);
  switch (ptr.status) {
    case 'ok':
      return confirm ? { result: 'ok', names: ptr.records, confirmed: await confirmedName(r, ip, ptr.records) } : { result: 'ok', names: ptr.records };
    case 'nxdomain':
    case 'nodata':
      return { result: 'none' };
    case 'temperror':
      return { result: 'temperror', reason: ptr.reason, ...(ptr.brief ? { brief: ptr.brief } : {}) };
  }
}

/**
 * The client's name as the Received header gives it: the first of its PTR names (at most 3 asked) whose A or AAAA
 * records hold the client's address, forward-confirmed as Postfix does; null ("unknown") when none does or a lookup
 * fails. Whoever runs the reverse zone of an address can put any name in its PTR record (the victim's own MX,
 * mail.google.com): written unconfirmed, the relay's one trace header vouched for it.
 */
export async function confirmedName(r: DnsResolver, ip: string, names: readonly string[], waitMs = CONFIRM_WAIT_MS): Promise<string | null> {
  const v6 = isIPv6(ip);
  // (one spelling of an address: a DNS answer and the socket may write an IPv6 address differently)
  const want = normalizeIp(ip);
  const asked = names.slice(0, 3);
  // asked side by side, and waited for at most waitMs: the MAIL reply waits for this, and a PTR name in a zone that
  // does not answer (not cached: each MAIL would ask again) held it for a DNS timeout per name, one after another
  // (a review: up to 9 s with the default dns.timeoutMs), for a header, not a verdict
  // the first name that points back settles it (one in a dead zone beside it does not make the client unknown)
  return new Promise<string | null>((resolve) => {
    let left = asked.length;
    const timer = setTimeout(() => resolve(null), waitMs);
    const done = (name: string | null) => {
      if (name === null && --left > 0) return;
      clearTimeout(timer);
      resolve(name);
    };
    if (left === 0) done(null);
    for (const name of asked) {
      void (v6 ? r.aaaa(name) : r.a(name)).then((a) => done(a.status === 'ok' && a.records.some((x) => normalizeIp(x) === want) ? name : null));
    }
  });
}

/** How long the Received header's name may hold up a MAIL reply; past it the client is "unknown" there. */
export const CONFIRM_WAIT_MS = 1000;

