/**
 * The security options form as data: one row per rule of SPEC section 1's table, the fields of each row, and the
 * pure functions the view needs (config -> form text, form text -> candidate config with per-field errors from the
 * shared ConfigSchema, what changed, and re-applying one's edits on top of a newer revision after a conflict).
 * No React and no DOM here, so it is tested in Node (test/console-security-model.test.ts).
 */
import { ConfigSchema, type Config } from '../../../../shared/config.ts';

export type FieldKind = 'mode' | 'int' | 'mib' | 'choice' | 'groups';

export interface FieldDef {
  /** the dotted config key, also the field's id in the form ("limits.messagesPerHour.max") */
  id: string;
  path: readonly string[];
  /** short label shown beside the input */
  label: string;
  kind: FieldKind;
  /** unit shown after a number ("messages", "minutes") */
  unit?: string;
  /** the unit after the number 1, when it differs ("message per hour") */
  unitOne?: string;
  /** for kind "choice" */
  choices?: readonly { value: string; label: string }[];
  /** one line under the input */
  help?: string;
}

export interface RuleDef {
  /** the rule's config key ("limits.messagesPerHour") */
  key: string;
  title: string;
  /** SPEC default, in words */
  defaults: string;
  /** what it does, in one or two sentences */
  behaviour: string;
  /** the SMTP reply a client gets ("450 4.7.1"), if any */
  reply?: string;
  fields: readonly FieldDef[];
}

export interface SectionDef {
  id: string;
  title: string;
  intro: string;
  rules: readonly RuleDef[];
}

const MIB = 1024 * 1024;

const mode = (ruleKey: string): FieldDef => ({
  id: `${ruleKey}.mode`,
  path: [...ruleKey.split('.'), 'mode'],
  label: 'Mode',
  kind: 'mode',
});
const num = (ruleKey: string, leaf: string, label: string, unit: string, unitOne?: string): FieldDef => ({
  id: `${ruleKey}.${leaf}`,
  path: [...ruleKey.split('.'), leaf],
  label,
  kind: 'int',
  unit,
  unitOne,
});

export const MODE_LABELS: Record<string, { label: string; help: string }> = {
  enforce: { label: 'Enforce', help: 'reject' },
  monitor: { label: 'Monitor', help: 'accept, but report "would have rejected"' },
  off: { label: 'Off', help: 'not checked' },
};

export const SECTIONS: readonly SectionDef[] = [
  {
    id: 'limits',
    title: 'Limits per client IP',
    intro:
      'Counted per client address (IPv6 per network prefix). Clients in an exempt group skip the three limits on messages, connections and unknown recipients.',
    rules: [
      {
        key: 'limits.messagesPerHour',
        title: 'Max messages per hour from one IP',
        defaults: 'enforce, 100',
        behaviour: 'Rolling window over the last 60 minutes, counting accepted messages; checked at MAIL FROM.',
        reply: '450 4.7.1',
        fields: [mode('limits.messagesPerHour'), num('limits.messagesPerHour', 'max', 'Limit', 'messages per hour', 'message per hour')],
      },
      {
        key: 'limits.concurrentConnections',
        title: 'Max concurrent SMTP connections from one IP',
        defaults: 'enforce, 10',
        behaviour: 'Checked at connect; the refused connection is closed.',
        reply: '421 4.7.0',
        fields: [mode('limits.concurrentConnections'), num('limits.concurrentConnections', 'max', 'Limit', 'connections at once', 'connection at once')],
      },
      {
        key: 'limits.unknownRecipients',
        title: 'Max unknown recipients from one IP',
        defaults: 'enforce, 10 per hour, block 60 minutes',
        behaviour: 'On reaching it the session is closed and the IP is blocked: its new connections get the reply and are closed.',
        reply: '421 4.7.0',
        fields: [
          mode('limits.unknownRecipients'),
          num('limits.unknownRecipients', 'max', 'Limit', 'unknown recipients per hour', 'unknown recipient per hour'),
          num('limits.unknownRecipients', 'blockMinutes', 'Then block for', 'minutes', 'minute'),
        ],
      },
      {
        key: 'limits.authFailures',
        title: 'Failed AUTH attempts from one IP',
        defaults: 'enforce, 10 per 10 minutes, block 15 minutes',
        behaviour: 'Anti-hammering: a blocked IP\'s connections get the reply and are closed.',
        reply: '421 4.7.0',
        fields: [
          mode('limits.authFailures'),
          num('limits.authFailures', 'max', 'Limit', 'failed logins', 'failed login'),
          num('limits.authFailures', 'windowMinutes', 'Within', 'minutes', 'minute'),
          num('limits.authFailures', 'blockMinutes', 'Then block for', 'minutes', 'minute'),
        ],
      },
      {
        key: 'limits.exemptGroups',
        title: 'Exempt groups',
        defaults: 'Trusted',
        behaviour: 'IPs in these trusted groups skip the limits on messages per hour, concurrent connections and unknown recipients. "Trust this IP" adds to the first one.',
        fields: [{ id: 'limits.exemptGroups', path: ['limits', 'exemptGroups'], label: 'Groups', kind: 'groups' }],
      },
      {
        key: 'limits.ipv6Prefix',
        title: 'IPv6 clients are counted per',
        defaults: '/64',
        behaviour: 'One IPv6 customer usually holds a whole /64; counting per address would let them dodge every limit. A change starts the IPv6 counters afresh under the new prefix.',
        fields: [{ id: 'limits.ipv6Prefix', path: ['limits', 'ipv6Prefix'], label: 'Prefix length', kind: 'int', unit: 'bits (32-128)' }],
      },
    ],
  },
  {
    id: 'dns',
    title: 'DNS checks',
    intro: 'Skipped for clients that logged in with SMTP AUTH and for clients in the relay-allowed groups. A DNS timeout is a temporary refusal.',
    rules: [
      {
        key: 'checks.senderDomain',
        title: 'Sender domain not in DNS',
        defaults: 'enforce',
        behaviour: 'MAIL FROM domain with no MX and no A/AAAA record, or a null MX.',
        reply: '550 5.1.8 (451 4.4.3 on DNS failure)',
        fields: [mode('checks.senderDomain')],
      },
      {
        key: 'checks.reverseDns',
        title: 'Client IP without reverse DNS',
        defaults: 'enforce',
        behaviour: 'No PTR record for the client IP; decided at MAIL FROM, so a roaming user can log in first.',
        reply: '550 5.7.25 (450 4.7.25 on DNS timeout)',
        fields: [mode('checks.reverseDns')],
      },
    ],
  },
  {
    id: 'session',
    title: 'Per message and session',
    intro: 'Checks on what one client does inside one SMTP session.',
    rules: [
      {
        key: 'checks.maxRecipients',
        title: 'Max recipients in a message',
        defaults: 'enforce, 100',
        behaviour: 'The recipient over the limit is refused; earlier ones stand.',
        reply: '452 4.5.3',
        fields: [mode('checks.maxRecipients'), num('checks.maxRecipients', 'max', 'Limit', 'recipients', 'recipient')],
      },
      {
        key: 'checks.maxFailedCommands',
        title: 'Max failed commands in a session',
        defaults: 'enforce, 10',
        behaviour: 'Any reply of 400 or more counts; at the limit the relay says why and closes the session.',
        reply: '421 4.7.0',
        fields: [mode('checks.maxFailedCommands'), num('checks.maxFailedCommands', 'max', 'Limit', 'failed commands', 'failed command')],
      },
      {
        key: 'checks.maxMessageSize',
        title: 'Max incoming message size',
        defaults: 'enforce, 25 MiB',
        behaviour: 'Advertised in EHLO SIZE; a larger MAIL SIZE= is refused at once, a larger body after DATA.',
        reply: '552 5.3.4',
        fields: [
          mode('checks.maxMessageSize'),
          {
            id: 'checks.maxMessageSize.maxBytes',
            path: ['checks', 'maxMessageSize', 'maxBytes'],
            label: 'Limit',
            kind: 'mib',
            unit: 'MiB',
            help: '1 MiB = 1,048,576 bytes; stored in bytes',
          },
        ],
      },
      {
        key: 'smtp.bareLineEndings',
        title: 'Bare CR or LF in message data',
        defaults: 'normalize',
        behaviour: 'Normalize rewrites them to CRLF; Reject refuses the message (a defence against SMTP smuggling).',
        reply: '550 5.5.2 (when rejecting)',
        fields: [
          {
            id: 'smtp.bareLineEndings',
            path: ['smtp', 'bareLineEndings'],
            label: 'Action',
            kind: 'choice',
            choices: [
              { value: 'normalize', label: 'Normalize' },
              { value: 'reject', label: 'Reject' },
            ],
          },
        ],
      },
      {
        key: 'smtp.greetingDelayMs',
        title: 'Greeting delay',
        defaults: '0 (no delay)',
        behaviour: 'Wait this long before the 220 greeting; clients that talk before it are early talkers (usually spam software).',
        fields: [{ id: 'smtp.greetingDelayMs', path: ['smtp', 'greetingDelayMs'], label: 'Delay', kind: 'int', unit: 'ms (0-60000)' }],
      },
    ],
  },
  {
    id: 'delivery',
    title: 'Delivery',
    intro: 'How the relay talks to the next mail server.',
    rules: [
      {
        key: 'delivery.tls',
        title: 'Delivery TLS',
        defaults: 'opportunistic',
        behaviour:
          'Opportunistic: STARTTLS when offered, plain text if the handshake fails. Required: no TLS, no delivery (the message waits in the queue). Off: never TLS.',
        fields: [
          {
            id: 'delivery.tls',
            path: ['delivery', 'tls'],
            label: 'TLS',
            kind: 'choice',
            choices: [
              { value: 'opportunistic', label: 'Opportunistic' },
              { value: 'required', label: 'Required' },
              { value: 'off', label: 'Off' },
            ],
          },
        ],
      },
    ],
  },
];

export const FIELDS: readonly FieldDef[] = SECTIONS.flatMap((s) => s.rules.flatMap((r) => r.fields));
const RULE_OF_FIELD = new Map<string, RuleDef>(SECTIONS.flatMap((s) => s.rules.flatMap((r) => r.fields.map((f) => [f.id, r] as const))));

export function ruleOfField(id: string): RuleDef | undefined {
  return RULE_OF_FIELD.get(id);
}

/** Text values of every field (numbers as typed, group lists as arrays). */
export type FormValues = Record<string, string | string[]>;

export function getPath(obj: unknown, path: readonly (string | number)[]): unknown {
  let cur: unknown = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k as string];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    if (next === null || typeof next !== 'object') cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Bytes as MiB for the input: whole numbers as is, else up to 3 decimals. */
export function bytesToMibText(bytes: number): string {
  const mib = bytes / MIB;
  return Number.isInteger(mib) ? String(mib) : String(Number(mib.toFixed(3)));
}

function fieldText(f: FieldDef, v: unknown): string | string[] {
  switch (f.kind) {
    case 'groups':
      return Array.isArray(v) ? v.map(String) : [];
    case 'mib':
      return typeof v === 'number' ? bytesToMibText(v) : '';
    case 'int':
      return typeof v === 'number' ? String(v) : '';
    default:
      return typeof v === 'string' ? v : '';
  }
}

export function formFromConfig(c: Config): FormValues {
  const out: FormValues = {};
  for (const f of FIELDS) out[f.id] = fieldText(f, getPath(c, f.path));
  return out;
}

const sameText = (a: string | string[] | undefined, b: string | string[] | undefined) => JSON.stringify(a) === JSON.stringify(b);

/** Field ids whose text differs from what the config shows. */
export function editedFields(base: Config, form: FormValues): string[] {
  const shown = formFromConfig(base);
  return FIELDS.filter((f) => !sameText(form[f.id], shown[f.id])).map((f) => f.id);
}

export interface Candidate {
  /** the whole config that Apply would send (valid only when `ok`) */
  config: Config;
  ok: boolean;
  /** per field id: what is wrong, in words */
  fieldErrors: Record<string, string>;
  /** problems the form cannot point at (e.g. in parts of the config this form does not show) */
  otherErrors: string[];
}

interface ZodIssueLike {
  path: PropertyKey[];
  message: string;
  code: string;
  minimum?: number | bigint;
  maximum?: number | bigint;
}

const group3 = (n: number) => n.toLocaleString('en-US');

/** The field an issue path points at (the longest field path that is a prefix of it). */
export function fieldForPath(path: readonly PropertyKey[]): FieldDef | undefined {
  let best: FieldDef | undefined;
  for (const f of FIELDS) {
    if (f.path.length <= path.length && f.path.every((k, i) => String(path[i]) === k)) {
      if (!best || f.path.length > best.path.length) best = f;
    }
  }
  return best;
}

/** A zod issue in words for the field it is about (numbers in the unit the form shows). */
export function issueMessage(f: FieldDef | undefined, iss: ZodIssueLike): string {
  const scale = f?.kind === 'mib' ? (n: number) => `${bytesToMibText(n)} MiB` : (n: number) => group3(n);
  if (iss.code === 'too_big' && iss.maximum !== undefined) return `must be at most ${scale(Number(iss.maximum))}`;
  if (iss.code === 'too_small' && iss.minimum !== undefined) {
    const min = Number(iss.minimum);
    return min === 1 && f?.kind !== 'mib' ? 'must be at least 1' : `must be at least ${scale(min)}`;
  }
  if (iss.code === 'invalid_type') return f?.kind === 'int' || f?.kind === 'mib' ? 'enter a number' : iss.message;
  if (f?.kind === 'groups' && /names group/.test(iss.message)) return iss.message.replace(/^names group/, 'group');
  return iss.message;
}

/** Map zod-like issues (from ConfigSchema, or from the relay's -32602/4022 data) onto the form's fields. */
export function mapIssues(issues: readonly ZodIssueLike[], pathPrefix: readonly PropertyKey[] = []): { fieldErrors: Record<string, string>; otherErrors: string[] } {
  const fieldErrors: Record<string, string> = {};
  const otherErrors: string[] = [];
  for (const iss of issues) {
    const path = pathPrefix.length && pathPrefix.every((k, i) => iss.path[i] === k) ? iss.path.slice(pathPrefix.length) : iss.path;
    const f = fieldForPath(path);
    if (f) {
      if (!fieldErrors[f.id]) fieldErrors[f.id] = issueMessage(f, iss);
    } else {
      otherErrors.push(`${path.map(String).join('.') || 'config'}: ${iss.message}`);
    }
  }
  return { fieldErrors, otherErrors };
}

/**
 * The config Apply would send: the base with every edited field put in, validated by the shared schema. Fields the
 * user did not touch keep the base's exact value (so a size of 26,214,401 bytes never becomes 25 MiB by accident).
 */
export function buildCandidate(base: Config, form: FormValues): Candidate {
  const draft = structuredClone(base) as unknown as Record<string, unknown>;
  const fieldErrors: Record<string, string> = {};
  for (const id of editedFields(base, form)) {
    const f = FIELDS.find((x) => x.id === id)!;
    const raw = form[id];
    if (f.kind === 'groups') {
      setPath(draft, f.path, Array.isArray(raw) ? [...raw] : []);
      continue;
    }
    const text = typeof raw === 'string' ? raw.trim() : '';
    if (f.kind === 'int') {
      // a sign is let through to the schema, so "-1" gets the field's own bound ("must be at least 1"), not a
      // complaint about the format
      const digits = text.replace(/[,_\s]/g, '').replace(/^[\u2212\u2013]/, '-');
      if (text === '') fieldErrors[id] = 'enter a number';
      else if (!/^[-+]?\d+$/.test(digits)) fieldErrors[id] = 'enter a whole number, e.g. 100';
      else setPath(draft, f.path, Number(digits) || 0);
    } else if (f.kind === 'mib') {
      const t = text.replace(/,/g, '.');
      if (t === '') fieldErrors[id] = 'enter a size in MiB';
      else if (!/^\d+(\.\d+)?$/.test(t)) fieldErrors[id] = 'enter a size in MiB, e.g. 25 or 0.5';
      else {
        const bytes = Math.round(Number(t) * MIB);
        if (bytes < 1) fieldErrors[id] = 'must be more than 0 MiB';
        else setPath(draft, f.path, bytes);
      }
    } else {
      setPath(draft, f.path, text);
    }
  }
  const r = ConfigSchema.safeParse(draft);
  let otherErrors: string[] = [];
  if (!r.success) {
    const mapped = mapIssues(r.error.issues as ZodIssueLike[]);
    for (const [k, v] of Object.entries(mapped.fieldErrors)) fieldErrors[k] ??= v;
    otherErrors = mapped.otherErrors;
  }
  const ok = Object.keys(fieldErrors).length === 0 && otherErrors.length === 0 && r.success;
  return { config: (r.success ? r.data : draft) as Config, ok, fieldErrors, otherErrors };
}

export interface FieldChange {
  id: string;
  rule: string;
  label: string;
  before: string;
  after: string;
}

/** " messages per hour" (or " message per hour" after 1; ranges in brackets left out); "" without a unit. */
function unitAfter(f: FieldDef, n: number): string {
  if (!f.unit) return '';
  return ` ${(n === 1 && f.unitOne ? f.unitOne : f.unit).replace(/ \(.*\)$/, '')}`;
}

/** A value as a person reads it, in the form's units. */
export function displayValue(f: FieldDef, v: unknown): string {
  if (v === undefined || v === null) return '(not set)';
  switch (f.kind) {
    case 'mode':
      return MODE_LABELS[String(v)]?.label ?? String(v);
    case 'choice':
      return f.choices?.find((c) => c.value === v)?.label ?? String(v);
    case 'groups':
      return Array.isArray(v) && v.length ? v.join(', ') : '(none)';
    case 'mib':
      return typeof v === 'number' ? `${bytesToMibText(v)} MiB` : String(v);
    case 'int':
      return typeof v === 'number' ? `${group3(v)}${unitAfter(f, v)}` : String(v);
  }
}

/** What Apply would change, field by field, in words (only fields of this form). */
export function formChanges(base: Config, candidate: Config): FieldChange[] {
  const out: FieldChange[] = [];
  for (const f of FIELDS) {
    const a = getPath(base, f.path);
    const b = getPath(candidate, f.path);
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    const rule = ruleOfField(f.id);
    out.push({ id: f.id, rule: rule?.title ?? f.id, label: f.kind === 'groups' || rule?.fields.length === 1 ? '' : f.label, before: displayValue(f, a), after: displayValue(f, b) });
  }
  return out;
}

/** Form text as a person reads it (labels for modes and choices, the unit after numbers). */
export function textForDisplay(f: FieldDef, t: string | string[] | undefined): string {
  if (Array.isArray(t)) return t.join(', ') || '(none)';
  const v = (t ?? '').trim();
  if (v === '') return '(empty)';
  if (f.kind === 'mode') return MODE_LABELS[v]?.label ?? v;
  if (f.kind === 'choice') return f.choices?.find((c) => c.value === v)?.label ?? v;
  return `${v}${unitAfter(f, Number(v))}`;
}

export interface Rebased {
  /** the form for the newer revision with the user's edits on top */
  form: FormValues;
  /** fields the user had edited (carried over) */
  mine: string[];
  /** fields the other change touched */
  theirs: string[];
  /** fields both touched, to different values: the user's value wins in `form`; show both */
  conflicts: { id: string; base: string; theirs: string; mine: string }[];
}

/**
 * After a 4009: carry the user's edits (relative to the revision they loaded) over to the newer revision.
 * A field the other admin changed and the user did not keeps the other admin's value.
 */
export function rebase(oldBase: Config, form: FormValues, latest: Config): Rebased {
  const baseForm = formFromConfig(oldBase);
  const latestForm = formFromConfig(latest);
  const mine = editedFields(oldBase, form);
  const theirs = FIELDS.filter((f) => JSON.stringify(getPath(oldBase, f.path)) !== JSON.stringify(getPath(latest, f.path))).map((f) => f.id);
  const next: FormValues = { ...latestForm };
  const conflicts: Rebased['conflicts'] = [];
  for (const id of mine) {
    next[id] = form[id]!;
    if (theirs.includes(id) && !sameText(form[id], latestForm[id])) {
      const f = FIELDS.find((x) => x.id === id)!;
      const show = (t: string | string[] | undefined) => textForDisplay(f, t);
      conflicts.push({ id, base: show(baseForm[id]), theirs: show(latestForm[id]), mine: show(form[id]) });
    }
  }
  return { form: next, mine, theirs, conflicts };
}
