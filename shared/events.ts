/**
 * Events: what the relay tells consoles and its own history. One schema per kind; the relay emits them,
 * the management channel streams them, the console renders them.
 */
import { z } from 'zod';

const base = {
  id: z.int().nonnegative(),
  at: z.number().describe('milliseconds since the epoch'),
  sessionId: z.string().nullable(),
  ip: z.string().nullable(),
};

export const RULES = [
  'limits.messagesPerHour',
  'limits.concurrentConnections',
  'limits.unknownRecipients',
  'limits.authFailures',
  'checks.senderDomain',
  'checks.reverseDns',
  'checks.maxRecipients',
  'checks.maxFailedCommands',
  'checks.maxMessageSize',
  'smtp.bareLineEndings',
  'smtp.greetingDelayMs',
  'smtp.maxConnections',
  'relay.access',
  'recipient.unknown',
  'protocol',
  'storage',
] as const;
export const Rule = z.enum(RULES);
export type Rule = z.infer<typeof Rule>;

export const STAGES = ['connect', 'helo', 'auth', 'mail', 'rcpt', 'data', 'command'] as const;
export const Stage = z.enum(STAGES);
export type Stage = z.infer<typeof Stage>;

export const RelayEvent = z.discriminatedUnion('kind', [
  z.object({ ...base, kind: z.literal('connect'), hostname: z.string().nullable().optional(), port: z.int().optional() }),
  z.object({ ...base, kind: z.literal('disconnect'), messages: z.int().nonnegative().optional() }),
  z.object({ ...base, kind: z.literal('helo'), name: z.string() }),
  z.object({ ...base, kind: z.literal('auth'), user: z.string(), success: z.boolean(), method: z.string().optional() }),
  z.object({
    ...base,
    kind: z.literal('mail'),
    from: z.string(),
    /** the SIZE= the client declared at MAIL FROM (null: none); absent from events recorded before the relay kept it */
    declaredSize: z.number().nonnegative().nullable().optional(),
  }),
  z.object({ ...base, kind: z.literal('rcpt'), to: z.string(), local: z.boolean() }),
  z.object({ ...base, kind: z.literal('accepted'), queueId: z.string(), size: z.int().nonnegative(), from: z.string(), to: z.array(z.string()) }),
  z.object({
    ...base,
    kind: z.literal('rejected'),
    stage: Stage,
    rule: Rule,
    code: z.int(),
    text: z.string(),
    enforced: z.boolean().describe('false: monitor mode, the relay accepted but would have rejected'),
    /** stage rcpt: the refused recipient, as a passing one is recorded in its rcpt event (policy.simulate replays it) */
    to: z.string().optional(),
    /** stage mail: the SIZE= the client declared (null: none), as the mail event records it for a passing MAIL FROM */
    declaredSize: z.number().nonnegative().nullable().optional(),
    /** stage mail: a DNS check's temporary failure as the relay saw it (its servers, what each did): for the admin; the reply to the client leaves the relay's servers out */
    dns: z.string().optional(),
    /** refused by a block an earlier refusal of `rule` set (at connect, or at the next AUTH/MAIL/RCPT of a session already open), not by the rule's limit itself */
    blocked: z.literal(true).optional(),
  }),
  z.object({ ...base, kind: z.literal('delivered'), queueId: z.string(), to: z.array(z.string()), host: z.string(), tls: z.boolean(), tlsProtocol: z.string().nullable().optional(), tlsCipher: z.string().nullable().optional(), response: z.string() }),
  z.object({ ...base, kind: z.literal('deferred'), queueId: z.string(), to: z.array(z.string()), reason: z.string(), nextAttemptAt: z.number() }),
  z.object({ ...base, kind: z.literal('bounced'), queueId: z.string(), to: z.array(z.string()), reason: z.string() }),
  /**
   * a message an administrator deleted from the queue without a bounce (queue.delete): `to` the recipients that will
   * not get it (none when the attempt under way at the delete delivered them all), `by` the token's name (null: not
   * known). A return to the sender (bounce: true) is reported as `bounced` instead
   */
  z.object({ ...base, kind: z.literal('deleted'), queueId: z.string(), to: z.array(z.string()), by: z.string().nullable() }),
  z.object({ ...base, kind: z.literal('config-changed'), revision: z.int(), by: z.string(), source: z.string() }),
  z.object({ ...base, kind: z.literal('trusted'), address: z.string(), group: z.string(), by: z.string() }),
]);
export type RelayEvent = z.infer<typeof RelayEvent>;
export type EventKind = RelayEvent['kind'];
export const EVENT_KINDS = RelayEvent.options.map((o) => o.shape.kind.value) as EventKind[];

/** What emitters pass in: everything but the id and time, which the bus assigns. */
export type EventInput = RelayEvent extends infer E ? (E extends RelayEvent ? Omit<E, 'id' | 'at'> : never) : never;
