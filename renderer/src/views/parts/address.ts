/**
 * Inline validation of a trusted-group address as the admin types it: the shared parser's verdict, the canonical
 * form the relay will store, how many addresses it covers, whether the group already has it (and what replacing it
 * would change), and what a wide entry lets through in a group a rule uses. Also the check of a new group's name.
 * Pure (the current time is passed in), tested in Node (test/console-views-logic.test.ts, test/console-groups-logic.test.ts).
 */
import { GROUP_NAME, GROUP_NAME_RULE, relayCoverageExcess, type GroupEntry } from '../../../../shared/config.ts';
import { coversEverything, parseAddressSpec, toBig, type AddressSpec } from '../../../../shared/ip.ts';
import { expiryState } from './expiry.ts';

export type AddressCheck =
  | { state: 'empty' }
  | { state: 'invalid'; error: string }
  | {
      state: 'ok';
      text: string;
      covers: string;
      duplicate: boolean;
      /** the entry the group already has for this address (any spelling), when `existing` held entries */
      existingEntry: GroupEntry | null;
      spec: AddressSpec;
    };

function covers(spec: AddressSpec): string {
  if (spec.kind === 'single') return 'one address';
  if (spec.family === 4) {
    const n = spec.last - spec.first + 1;
    return n === 1 ? 'one address' : `${n.toLocaleString('en-US')} addresses`;
  }
  if (spec.kind === 'cidr') {
    const bits = 128 - (spec.prefix ?? 128);
    return bits === 0 ? 'one address' : bits <= 20 ? `${(2 ** bits).toLocaleString('en-US')} addresses` : `an IPv6 /${spec.prefix} network`;
  }
  return 'an IPv6 range';
}

const canon = (a: string) => {
  const x = parseAddressSpec(a);
  return x.ok ? x.spec.text : a.trim();
};

/** `existing`: what the group already has (the entries, or only their addresses as stored). */
export function checkAddress(input: string, existing: readonly (string | GroupEntry)[]): AddressCheck {
  if (input.trim() === '') return { state: 'empty' };
  const r = parseAddressSpec(input);
  if (!r.ok) return { state: 'invalid', error: r.error };
  const found = existing.find((a) => canon(typeof a === 'string' ? a : a.address) === r.spec.text);
  return {
    state: 'ok',
    text: r.spec.text,
    covers: covers(r.spec),
    duplicate: found !== undefined,
    existingEntry: found !== undefined && typeof found !== 'string' ? found : null,
    spec: r.spec,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Wide entries

/**
 * What counts as wide: more than 65,536 IPv4 addresses (anything wider than a /16), or an IPv6 network or range
 * wider than a /48 (the block one site, a whole office or data centre, is given). One office, one partner or one
 * provider's customer block fits inside these; an entry wider than that is more often a typo ("/8" for "/28") or a
 * whole provider than something meant. 0.0.0.0/0 and ::/0 (every address) are always wide.
 */
export const WIDE_IPV4_ADDRESSES = 65_536;
export const WIDE_IPV6_PREFIX = 48;

export function isWide(spec: AddressSpec): boolean {
  if (spec.family === 4) return spec.last - spec.first + 1 > WIDE_IPV4_ADDRESSES;
  return toBig(spec.last) - toBig(spec.first) + 1n > 1n << BigInt(128 - WIDE_IPV6_PREFIX);
}

/** "any of the 16,777,216 addresses in 10.0.0.0/8", "any IPv4 address on the internet (all 4,294,967,296)" */
export function whoMay(spec: AddressSpec): string {
  if (coversEverything(spec)) return spec.family === 4 ? 'any IPv4 address on the internet (all 4,294,967,296)' : 'any IPv6 address on the internet';
  if (spec.family === 4) return `any of the ${(spec.last - spec.first + 1).toLocaleString('en-US')} addresses in ${spec.text}`;
  return spec.kind === 'cidr' ? `any address in ${spec.text} (an IPv6 /${spec.prefix} network)` : `any address in ${spec.text} (an IPv6 range wider than a /${WIDE_IPV6_PREFIX})`;
}

/** What the group is used for: in relay.allowGroups, in limits.exemptGroups. */
export interface GroupRoles {
  relays: boolean;
  exempt: boolean;
}

export interface WideWarning {
  /** the hint under the address, before anything is sent */
  hint: string;
  /** the confirmation's title */
  title: string;
  /** the confirmation's sentences, one per consequence */
  consequences: string[];
  /** the confirmation's button */
  confirmLabel: string;
  /** may relay (the worse case: the hint and the dialog are in danger colours) */
  relays: boolean;
  /**
   * every address, in a group that may relay: the relay refuses it (shared/config.ts, no open relay), so the form
   * says why and offers no "anyway"; `refused` is the reason the Add button is disabled
   */
  refused: string | null;
}

const upper = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * The warning for adding `spec` to `group`, or null when it is not wide or the group is used by no rule (an entry
 * there changes nothing for mail). In a group that may relay, a wide entry lets that many addresses send mail to any
 * domain through this server (0.0.0.0/0 or ::/0 would be an open relay, which the relay refuses); in a group that is only exempt from limits, they
 * skip the per-IP limits.
 */
export function wideEntryWarning(spec: AddressSpec, group: string, roles: GroupRoles, relayed: readonly AddressSpec[] = []): WideWarning | null {
  if (!isWide(spec) || (!roles.relays && !roles.exempt)) return null;
  const who = whoMay(spec);
  const all = coversEverything(spec);
  const limits = 'the per-IP limits on messages, connections and unknown recipients';
  if (roles.relays) {
    const consequences = [
      `${upper(who)} may relay mail to any domain through this server, without logging in and without the DNS checks.`,
      all
        ? 'This makes the server an open relay: spammers find open relays within hours, and its address ends up on block lists.'
        : 'If one of them is a spammer or an infected machine, mail you did not send leaves from this server.',
    ];
    if (roles.exempt) consequences.push(`They also skip ${limits}, so nothing slows a flood down.`);
    consequences.push('If you meant one office or one partner, cancel and type its own network (e.g. 192.0.2.0/24).');
    if (all) {
      return {
        hint: `"${group}" may relay: ${who} would relay mail to any domain through this server (an open relay). The relay refuses it: let those clients log in (SMTP AUTH), or type their own networks.`,
        title: 'Make this server an open relay?',
        consequences,
        confirmLabel: `Add ${spec.text} anyway`,
        relays: true,
        refused: `The relay refuses ${spec.text} in "${group}": it would make the server an open relay.`,
      };
    }
    // the relay's own limit on all the relaying groups together (shared/config.ts), asked before the click
    const excess = relayCoverageExcess([...relayed, spec]);
    if (excess) {
      return {
        hint: `"${group}" may relay: with ${spec.text}, the groups that may relay would hold ${excess}, a large part of the internet (an open relay). The relay refuses it: let those clients log in (SMTP AUTH), or type their own networks.`,
        title: `Let ${spec.text} relay mail through this server?`,
        consequences,
        confirmLabel: `Add ${spec.text} anyway`,
        relays: true,
        refused: `The relay refuses ${spec.text} in "${group}": the groups that may relay would hold ${excess}.`,
      };
    }
    return {
      hint: `"${group}" may relay: ${who} may relay mail to any domain through this server.`,
      title: `Let ${spec.text} relay mail through this server?`,
      consequences,
      confirmLabel: `Add ${spec.text} anyway`,
      relays: true,
      refused: null,
    };
  }
  return {
    hint: `"${group}" is exempt from limits: ${who} would skip the per-IP limits.`,
    title: `Exempt ${spec.text} from the per-IP limits?`,
    consequences: [
      `${upper(who)} would skip ${limits}: a client there can send as much as it likes and is never blocked for unknown recipients.`,
      'If you meant one office or one partner, cancel and type its own network (e.g. 192.0.2.0/24).',
    ],
    confirmLabel: `Add ${spec.text} anyway`,
    relays: false,
    refused: null,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// An address already in the group

export interface ReplaceNote {
  /** "already in "Trusted" (expires in 57 min, comment "x"); Replace makes it: never expires, no comment" */
  text: string;
  /** false when the entry already has this comment and expiry: there is nothing to replace */
  changes: boolean;
}

const describe = (comment: string | null | undefined, expiresAt: string | null | undefined, now: number) =>
  `${expiryState(expiresAt, now).text}, ${comment ? `comment "${comment}"` : 'no comment'}`;

/**
 * What adding an address the group already has does: groups.addEntry replaces the entry's comment and expiry (its
 * "added by" and "added" stay). Says what the entry is now and what it becomes, so a 1-hour entry does not turn
 * permanent unnoticed.
 */
export function replaceNote(group: string, prev: GroupEntry, next: { comment: string | null; expiresAt: string | null } | null, now: number): ReplaceNote {
  // the expiry typed is not valid yet: what it becomes is not known
  if (next === null) return { text: `already in "${group}" (${describe(prev.comment, prev.expiresAt, now)}); Replace sets its comment and expiry to the ones here`, changes: true };
  const same = (prev.comment ?? null) === next.comment && (prev.expiresAt ?? null) === next.expiresAt;
  if (same) return { text: `already in "${group}" with this comment and expiry (${describe(prev.comment, prev.expiresAt, now)}): nothing to change`, changes: false };
  return {
    text: `already in "${group}" (${describe(prev.comment, prev.expiresAt, now)}); Replace makes it: ${describe(next.comment, next.expiresAt, now)}`,
    changes: true,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Group names


/**
 * A new group's name: an error (not a valid name, or taken) or a warning (another group differs only in case: group
 * names are case-sensitive, so "trusted" beside "Trusted" is a second group that no rule uses, and entries added to
 * it neither relay nor skip the limits).
 */
export function checkGroupName(input: string, existing: readonly string[]): { error: string | null; warning: string | null } {
  const name = input.trim();
  if (name === '') return { error: null, warning: null };
  if (!GROUP_NAME.test(name)) return { error: GROUP_NAME_RULE, warning: null };
  if (existing.includes(name)) return { error: 'a group with this name exists', warning: null };
  const twin = existing.find((g) => g.toLowerCase() === name.toLowerCase());
  if (twin !== undefined) {
    return {
      error: null,
      warning: `A group "${twin}" already exists. Group names are case-sensitive, so "${name}" would be a second group, used by no rule until you add it to one in Security options. To add addresses to "${twin}", use its card below.`,
    };
  }
  return { error: null, warning: null };
}

// ---------------------------------------------------------------------------------------------------------------
// When a view showing expiries refreshes its time

/** Within this long of the next deadline, the time is refreshed every second (a countdown in seconds must move). */
const LAST_MINUTE = 60_000;

/**
 * The moment to refresh a time shown at `rendered`: after `everyMs`, at the soonest of `deadlines` still ahead (so an
 * entry shows as expired the moment it expires, not up to `everyMs` later), and every second in the last minute before
 * that deadline ("expires in 19 s" counts down). useNow (hooks.ts) uses it; it is here, with the pure logic, so Node
 * tests it without the DOM.
 */
export function nextRefreshAt(rendered: number, deadlines: readonly number[], everyMs: number): number {
  let at = rendered + everyMs;
  let soonest = Infinity;
  for (const t of deadlines) if (t > rendered && t < soonest) soonest = t;
  if (soonest < at) at = soonest;
  if (soonest - rendered <= LAST_MINUTE) at = Math.min(at, rendered + 1000);
  return at;
}
