// The relay's own DNS resolver: asks the configured servers (not the system's getaddrinfo), within one
// time budget per lookup, with a TTL-honouring cache and one shared query for identical concurrent lookups.
// It never throws for DNS failures: every lookup ends in a DnsAnswer.
import { setMaxListeners } from 'node:events';
import type * as dnsPacket from 'dns-packet';
import { TtlCache } from './cache.ts';
import { normalizeName, replyName, reverseName } from './names.ts';
import { parseDnsServers, type DnsServerAddress } from './servers.ts';
import { tcpExchange, udpExchange, type DnsReply, type ExchangeOutcome, type QueryType, type Question } from './transport.ts';

export type DnsAnswer<T> =
  | { status: 'ok'; records: T[]; ttl: number } // ttl: min TTL of the answer RRs, seconds (what is left of it on a cache hit)
  | { status: 'nxdomain' } // the name does not exist (RCODE 3)
  | { status: 'nodata' } // the name exists, no RR of that type (NOERROR, empty answer)
  // timeout, SERVFAIL, REFUSED, network error, malformed reply, in words naming the servers asked (for the admin); `brief`,
  // when set, says the same without the relay's own servers, for a reply to a remote client
  | { status: 'temperror'; reason: string; brief?: string };

/** exchange: lower case, no trailing dot; "" for the null MX "." (RFC 7505). */
export interface MxRecord {
  exchange: string;
  priority: number;
}

export interface ResolverOptions {
  servers: string[]; // "host", "host:port", "[v6]:port" or a bare IPv6; empty = the system's resolvers
  timeoutMs: number; // total budget for one lookup, all servers and retries included
  now?: () => number; // clock for the cache (ms); default Date.now
  cacheMax?: number; // entries; default 10,000; 0 disables the cache
}

export interface ResolverStats {
  queries: number; // lookups that went to the network (one per lookup, whatever the retries)
  cacheHits: number; // lookups answered from the cache
  deduplicated: number; // lookups that joined an identical query already in flight
}

interface RecordOf {
  MX: MxRecord;
  A: string;
  AAAA: string;
  PTR: string;
}

type Answer = DnsAnswer<MxRecord> | DnsAnswer<string>;

/** One query of a lookup to one server; `controller` ends it (its socket and timer) when the lookup no longer needs it. */
interface Attempt {
  server: DnsServerAddress;
  transport: 'udp' | 'tcp';
  controller: AbortController;
}

type Interpreted = { answer: Answer; cacheTtl: number } | { failure: string; giveUpOnServer: boolean };

const MAX_POSITIVE_TTL = 86_400; // 1 day
const MAX_NEGATIVE_TTL = 3_600; // 1 hour
const DEFAULT_NEGATIVE_TTL = 60; // no SOA in the authority section
const MAX_CNAME_HOPS = 8;
const NXDOMAIN: Answer = Object.freeze({ status: 'nxdomain' });
const NODATA: Answer = Object.freeze({ status: 'nodata' });

function validateTimeout(timeoutMs: number): number {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new Error(`Invalid DNS timeoutMs ${JSON.stringify(timeoutMs)}: expected a positive number of milliseconds, e.g. 3000.`);
  }
  return timeoutMs;
}

function temperror(reason: string, brief?: string): { status: 'temperror'; reason: string; brief?: string } {
  return brief === undefined ? { status: 'temperror', reason } : { status: 'temperror', reason, brief };
}

/** RFC 2308: a negative answer lives for min(SOA TTL, SOA MINIMUM) from the authority section. */
function negativeTtl(reply: DnsReply): number {
  const soa = (reply.authorities ?? []).find((rr): rr is dnsPacket.SoaAnswer => rr.type === 'SOA');
  if (!soa) return DEFAULT_NEGATIVE_TTL;
  const ttl = Math.min(soa.ttl ?? 0, soa.data.minimum ?? DEFAULT_NEGATIVE_TTL);
  return Math.max(0, Math.min(ttl, MAX_NEGATIVE_TTL));
}

function sameName(a: string, b: string): boolean {
  return replyName(a) === b;
}

/** The records of the asked type for the name, following a CNAME chain inside the answer section. */
function extract(reply: DnsReply, q: Question): { answer: Answer; cacheTtl: number } {
  const answers = reply.answers ?? [];
  let target = q.name;
  let ttl = Number.POSITIVE_INFINITY;
  for (let hop = 0; hop <= MAX_CNAME_HOPS; hop++) {
    const rrs = answers.filter((rr) => rr.type === q.type && ((rr as { class?: string }).class ?? 'IN') === 'IN' && sameName(rr.name, target));
    if (rrs.length > 0) {
      for (const rr of rrs) ttl = Math.min(ttl, (rr as { ttl?: number }).ttl ?? 0);
      let records: MxRecord[] | string[];
      if (q.type === 'MX') {
        records = (rrs as dnsPacket.MxAnswer[])
          .map((rr) => Object.freeze({ exchange: replyName(rr.data.exchange), priority: rr.data.preference ?? 0 }))
          .sort((x, y) => x.priority - y.priority || (x.exchange < y.exchange ? -1 : x.exchange > y.exchange ? 1 : 0));
      } else if (q.type === 'PTR') {
        records = (rrs as dnsPacket.StringAnswer[]).map((rr) => replyName(rr.data));
      } else {
        records = (rrs as dnsPacket.StringAnswer[]).map((rr) => rr.data.toLowerCase());
      }
      Object.freeze(records);
      const answer = { status: 'ok', records, ttl } as Answer;
      return { answer, cacheTtl: Math.min(ttl, MAX_POSITIVE_TTL) };
    }
    const cname = answers.find((rr): rr is dnsPacket.StringAnswer => rr.type === 'CNAME' && sameName(rr.name, target));
    if (!cname) break;
    ttl = Math.min(ttl, cname.ttl ?? 0);
    target = replyName(cname.data);
  }
  return { answer: NODATA, cacheTtl: negativeTtl(reply) };
}

function interpret(outcome: ExchangeOutcome, q: Question): Interpreted {
  if (outcome.kind === 'timeout') {
    return { failure: outcome.malformed ? `sent a ${outcome.malformed}` : 'timed out', giveUpOnServer: false };
  }
  if (outcome.kind === 'error') return { failure: outcome.reason, giveUpOnServer: true };
  const reply = outcome.reply;
  if (reply.opcode !== undefined && reply.opcode !== 'QUERY') {
    return { failure: `sent a malformed reply (opcode ${reply.opcode})`, giveUpOnServer: true };
  }
  switch (reply.rcode) {
    case 'NOERROR':
      return extract(reply, q);
    case 'NXDOMAIN':
      return { answer: NXDOMAIN, cacheTtl: negativeTtl(reply) };
    case 'SERVFAIL':
      return { failure: 'answered SERVFAIL (it could not get an answer from the authoritative servers)', giveUpOnServer: true };
    case 'REFUSED':
      return { failure: 'answered REFUSED (it will not resolve for this host: check its access rules)', giveUpOnServer: true };
    default:
      return { failure: `answered ${reply.rcode ?? 'an unknown error code'}`, giveUpOnServer: true };
  }
}

export class DnsResolver {
  readonly stats: ResolverStats = { queries: 0, cacheHits: 0, deduplicated: 0 };
  private servers: DnsServerAddress[];
  private timeoutMs: number;
  private readonly cache: TtlCache<Answer>;
  private readonly inflight = new Map<string, Promise<Answer>>();
  private readonly closing = new AbortController();
  private generation = 0; // bumped by reconfigure(): answers from older queries are not cached
  private closed = false;

  constructor(opts: ResolverOptions) {
    // every lookup in flight listens on this one signal (each removes its listener when done): more than 10 at once is
    // the normal case on a busy relay, not a leak, and Node's "MaxListenersExceededWarning ... memory leak" on stderr
    // alarmed an admin reading the journal (a tryout)
    setMaxListeners(0, this.closing.signal);
    this.servers = parseDnsServers(opts.servers);
    this.timeoutMs = validateTimeout(opts.timeoutMs);
    const cacheMax = opts.cacheMax ?? 10_000;
    if (!Number.isInteger(cacheMax) || cacheMax < 0) {
      throw new Error(`Invalid DNS cacheMax ${JSON.stringify(opts.cacheMax)}: expected a whole number of entries, 0 or more.`);
    }
    this.cache = new TtlCache<Answer>(cacheMax, opts.now ?? Date.now);
  }

  mx(name: string): Promise<DnsAnswer<MxRecord>> {
    return this.lookup('MX', normalizeName(name));
  }

  a(name: string): Promise<DnsAnswer<string>> {
    return this.lookup('A', normalizeName(name));
  }

  aaaa(name: string): Promise<DnsAnswer<string>> {
    return this.lookup('AAAA', normalizeName(name));
  }

  /** PTR names of an IPv4 or IPv6 address (IPv4-mapped IPv6 counts as IPv4). Rejects with a TypeError if ip is not an IP address. */
  ptr(ip: string): Promise<DnsAnswer<string>> {
    const arpa = reverseName(ip);
    if (arpa === null) return Promise.reject(new TypeError(`DNS PTR lookup: ${JSON.stringify(ip)} is not an IP address.`));
    return this.lookup('PTR', arpa);
  }

  /** New servers and timeout (validated first: on a bad entry this throws and nothing changes); the cache is emptied. */
  reconfigure(opts: { servers: string[]; timeoutMs: number }): void {
    const servers = parseDnsServers(opts.servers);
    const timeoutMs = validateTimeout(opts.timeoutMs);
    this.servers = servers;
    this.timeoutMs = timeoutMs;
    this.generation++;
    this.cache.clear();
    this.inflight.clear(); // queries to the old servers still answer their callers, but nobody new joins them
  }

  /** Ends every query in flight (they answer temperror "resolver closed"), empties the cache; later lookups answer temperror. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    this.cache.clear();
    this.inflight.clear();
  }

  private lookup<K extends QueryType>(type: K, name: string | null): Promise<DnsAnswer<RecordOf[K]>> {
    return this.lookupAny(type, name) as Promise<DnsAnswer<RecordOf[K]>>;
  }

  private lookupAny(type: QueryType, name: string | null): Promise<Answer> {
    if (this.closed) return Promise.resolve(temperror('DNS resolver closed'));
    if (name === null) return Promise.resolve(NXDOMAIN); // not a valid DNS name: it cannot exist
    const key = `${type} ${name}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.stats.cacheHits++;
      const v = hit.value;
      return Promise.resolve(v.status === 'ok' ? ({ status: 'ok', records: v.records, ttl: hit.remainingSeconds } as Answer) : v);
    }
    const pending = this.inflight.get(key);
    if (pending) {
      this.stats.deduplicated++;
      return pending;
    }
    this.stats.queries++;
    const generation = this.generation;
    const query: Promise<Answer> = this.query({ name, type }).then(({ answer, cacheTtl }) => {
      if (this.inflight.get(key) === query) this.inflight.delete(key);
      if (generation === this.generation && !this.closed && answer.status !== 'temperror') this.cache.set(key, answer, cacheTtl);
      return answer;
    });
    this.inflight.set(key, query);
    return query;
  }

  /**
   * Ask the servers in order, twice round, within the budget. Each attempt gets an equal share of what is left:
   * when its share runs out without an answer, the next attempt is SENT, but the earlier ones keep listening: the
   * first valid answer to any of the lookup's queries wins, until the whole budget is spent (as glibc, unbound and dig
   * do; a tryout: closing each attempt at the end of its share threw late answers away, so a server answering in
   * 1.6 s always timed out with a 3 s budget and one server). A server that timed out is asked again on the second
   * round; one that said no (SERVFAIL, REFUSED, connection refused) is not, and its other queries are ended. A
   * truncated UDP reply is asked again over TCP, to the same server. When the lookup ends (an answer, the budget
   * spent, every server said no, the resolver closed), every query still out is ended: no socket or timer outlives it.
   */
  private query(q: Question): Promise<{ answer: Answer; cacheTtl: number }> {
    const budget = this.timeoutMs;
    const servers = this.servers;
    const closing = this.closing.signal;
    return new Promise((resolve) => {
      const deadline = performance.now() + budget;
      const plan = [...servers, ...servers];
      let next = 0; // the next attempt of the plan to send
      const gaveUp = new Set<DnsServerAddress>();
      const failures = new Map<string, { reason: string; tries: number }>();
      const outstanding = new Set<Attempt>();
      let current: Attempt | null = null; // the attempt whose share is running: the next one goes when it ends
      let shareTimer: ReturnType<typeof setTimeout> | undefined;
      let done = false;

      const finish = (result: { answer: Answer; cacheTtl: number }): void => {
        if (done) return;
        done = true;
        clearTimeout(shareTimer);
        closing.removeEventListener('abort', onClose);
        for (const attempt of outstanding) attempt.controller.abort();
        outstanding.clear();
        resolve(result);
      };
      const onClose = (): void => finish({ answer: temperror('DNS resolver closed'), cacheTtl: 0 });
      const internalError = (err: unknown): void =>
        finish({
          answer: temperror(`DNS ${q.type} lookup for ${q.name} failed: internal error: ${(err as Error).message}`, `DNS ${q.type} lookup for ${q.name} failed`),
          cacheTtl: 0,
        });
      const guarded =
        <A extends unknown[]>(fn: (...args: A) => void) =>
        (...args: A): void => {
          try {
            fn(...args);
          } catch (err) {
            internalError(err);
          }
        };
      const plannedLeft = (): number => plan.slice(next).filter((s) => !gaveUp.has(s)).length;
      const countTry = (server: DnsServerAddress, reason: string | null): void => {
        const previous = failures.get(server.label);
        // a plain "timed out" (at the end of the budget) does not hide what another query to the server got
        const keep = previous !== undefined && (reason === null || (reason === 'timed out' && previous.reason !== 'timed out'));
        failures.set(server.label, { reason: keep || reason === null ? (previous?.reason ?? 'timed out') : reason, tries: (previous?.tries ?? 0) + 1 });
      };
      const fail = (): void => {
        const details = servers
          .map((s) => s.label)
          .filter((label, i, labels) => labels.indexOf(label) === i && failures.has(label))
          .map((label) => {
            const f = failures.get(label)!;
            return `${label} ${f.reason}${f.tries > 1 ? ` (${f.tries} tries)` : ''}`;
          });
        const what = details.length > 0 ? details.join('; ') : 'no server could be asked in time';
        const timedOut = [...failures.values()].every((f) => f.reason === 'timed out');
        const brief = `DNS ${q.type} lookup for ${q.name} ${timedOut ? 'timed out' : 'failed'}`;
        // ("failed within 2000 ms: ... answered SERVFAIL" read as a timeout for a server that had answered at once)
        finish({ answer: temperror(`DNS ${q.type} lookup for ${q.name} ${timedOut ? `timed out after ${budget} ms` : 'failed'}: ${what}`, brief), cacheTtl: 0 });
      };

      const start = (server: DnsServerAddress, transport: 'udp' | 'tcp', timeoutMs: number): Attempt => {
        const attempt: Attempt = { server, transport, controller: new AbortController() };
        outstanding.add(attempt);
        const exchange = transport === 'udp' ? udpExchange : tcpExchange;
        exchange(server, q, timeoutMs, attempt.controller.signal).then(guarded((outcome: ExchangeOutcome) => settle(attempt, outcome)), guarded(internalError));
        return attempt;
      };

      /** Sends the next attempt of the plan (its UDP socket listens to the end of the budget), or ends the lookup if none is left. */
      const sendNext = guarded((): void => {
        if (done) return;
        clearTimeout(shareTimer);
        shareTimer = undefined;
        current = null;
        while (next < plan.length) {
          const server = plan[next++];
          if (server === undefined || gaveUp.has(server)) continue;
          const remaining = deadline - performance.now();
          if (remaining < 1) break;
          const attemptsLeft = 1 + plannedLeft();
          current = start(server, 'udp', Math.ceil(remaining));
          if (attemptsLeft > 1) shareTimer = setTimeout(sendNext, Math.max(1, Math.floor(remaining / attemptsLeft)));
          return;
        }
        next = plan.length;
        if (outstanding.size === 0) fail();
      });

      const settle = (attempt: Attempt, outcome: ExchangeOutcome): void => {
        if (done || !outstanding.delete(attempt)) return; // the lookup is over, or this attempt was ended on purpose
        const wasCurrent = attempt === current;
        const noTcpAnswer: ExchangeOutcome = { kind: 'error', reason: 'sent a truncated reply and did not answer over TCP in time' };
        if (attempt.transport === 'udp' && outcome.kind === 'reply' && outcome.reply.flag_tc) {
          const left = deadline - performance.now();
          const tcpMs = Math.floor(Math.max(left / (1 + plannedLeft()), Math.min(left, 1000)));
          if (tcpMs < 1) {
            outcome = noTcpAnswer;
          } else {
            const tcp = start(attempt.server, 'tcp', tcpMs);
            if (wasCurrent) {
              // the TCP query takes this attempt's place: the next server is asked if it fails
              clearTimeout(shareTimer);
              shareTimer = undefined;
              current = tcp;
            }
            return;
          }
        } else if (outcome.kind === 'timeout' && attempt.transport === 'tcp') {
          outcome = noTcpAnswer;
        } else if (outcome.kind === 'timeout') {
          next = plan.length; // a UDP query listens to the end of the budget: the budget is spent, nothing more is sent
        }
        const result = interpret(outcome, q);
        if ('answer' in result) return finish(result);
        countTry(attempt.server, result.failure);
        if (result.giveUpOnServer && !gaveUp.has(attempt.server)) {
          gaveUp.add(attempt.server);
          // its other queries would say the same: end them (each counts as a try)
          for (const other of [...outstanding]) {
            if (other.server !== attempt.server) continue;
            outstanding.delete(other);
            other.controller.abort();
            countTry(other.server, null);
            if (other === current) current = null;
          }
        }
        if (wasCurrent || current === null || outstanding.size === 0) sendNext();
      };

      if (closing.aborted) return onClose();
      closing.addEventListener('abort', onClose);
      sendNext();
    });
  }
}
