// One question to one server, over UDP (a fresh socket with a random source port per attempt)
// or over TCP (after a truncated UDP reply). Never throws: the outcome says what happened.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { DnsServerAddress } from './servers.ts';

export type QueryType = 'MX' | 'A' | 'AAAA' | 'PTR';

/** dns-packet's decoded packet; its typings leave out rcode and opcode, which it does decode. */
export type DnsReply = dnsPacket.DecodedPacket & { rcode?: string; opcode?: string };

export type ExchangeOutcome =
  | { kind: 'reply'; reply: DnsReply }
  | { kind: 'timeout'; malformed?: string } // no acceptable reply in time (malformed: a packet we could not parse came meanwhile)
  | { kind: 'error'; reason: string }; // the network said no, or the reply was unusable

export interface Question {
  name: string; // normalised: lower case, no trailing dot
  type: QueryType;
}

function encodeQuery(id: number, q: Question): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: q.type, name: q.name, class: 'IN' }],
  });
}

/** A reply belongs to our query when it is a response with our ID to our question. */
function belongsTo(reply: DnsReply, id: number, q: Question): boolean {
  if (reply.id !== id || !reply.flag_qr) return false;
  const questions = reply.questions ?? [];
  if (questions.length === 0) {
    // Some servers leave the question out of error replies (FORMERR, REFUSED); accept those only as errors.
    return reply.rcode !== 'NOERROR' && reply.rcode !== 'NXDOMAIN';
  }
  const first = questions[0];
  if (questions.length !== 1 || first === undefined) return false;
  const name = first.name.toLowerCase().replace(/\.$/, '');
  return name === q.name && first.type === q.type && (first.class ?? 'IN') === 'IN';
}

export function describeNetworkError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is a DNS server listening on that address and port?)';
    case 'ECONNRESET':
      return 'connection reset by the server';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'EADDRNOTAVAIL':
    case 'EAFNOSUPPORT':
      return `address not usable from this host (${err.code})`;
    default:
      return `network error: ${err.code ?? ''} ${err.message}`.trim();
  }
}

function decode(buf: Buffer): DnsReply | string {
  try {
    return dnsPacket.decode(buf) as DnsReply;
  } catch (err) {
    return `malformed reply (${(err as Error).message})`;
  }
}

/**
 * Listens for the answer until timeoutMs has passed or the signal aborts (then it answers "resolver closed"). The
 * resolver gives each query what is left of the lookup's whole budget, not just the query's share of it, and aborts it
 * when the lookup ends, so an answer that comes after a retry was sent still counts.
 */
export function udpExchange(server: DnsServerAddress, q: Question, timeoutMs: number, signal: AbortSignal): Promise<ExchangeOutcome> {
  return new Promise((resolve) => {
    const id = randomInt(0x10000);
    const query = encodeQuery(id, q);
    const socket = dgram.createSocket(server.family === 6 ? 'udp6' : 'udp4');
    let malformed: string | undefined;
    let done = false;
    const finish = (outcome: ExchangeOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      try {
        socket.close();
      } catch {
        // already closed
      }
      resolve(outcome);
    };
    const onAbort = (): void => finish({ kind: 'error', reason: 'resolver closed' });
    const timer = setTimeout(() => finish(malformed ? { kind: 'timeout', malformed } : { kind: 'timeout' }), timeoutMs);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);
    socket.on('error', (err) => finish({ kind: 'error', reason: describeNetworkError(err) }));
    socket.on('message', (msg, rinfo) => {
      // The socket is connected, so the kernel already drops datagrams from anyone else; check anyway.
      if (rinfo.port !== server.port) return;
      if (!server.host.includes('%') && rinfo.address.toLowerCase() !== server.host) return;
      const reply = decode(msg);
      if (typeof reply === 'string') {
        malformed = reply;
        return;
      }
      if (belongsTo(reply, id, q)) finish({ kind: 'reply', reply });
      // anything else (wrong ID, wrong question) is ignored: it may be a late or forged answer
    });
    // connect() reports a failure (no route, a link-local address without its interface, a refused address) to its
    // callback, not to 'error'; a send() on the socket it left unconnected would throw and end the process
    socket.connect(server.port, server.host, (err?: Error) => {
      if (done) return;
      if (err) return finish({ kind: 'error', reason: describeNetworkError(err) });
      try {
        socket.send(query, (sendErr) => {
          if (sendErr) finish({ kind: 'error', reason: describeNetworkError(sendErr) });
        });
      } catch (sendErr) {
        finish({ kind: 'error', reason: describeNetworkError(sendErr as Error) });
      }
    });
  });
}

export function tcpExchange(server: DnsServerAddress, q: Question, timeoutMs: number, signal: AbortSignal): Promise<ExchangeOutcome> {
  return new Promise((resolve) => {
    const id = randomInt(0x10000);
    const query = encodeQuery(id, q);
    const frame = Buffer.alloc(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    query.copy(frame, 2);
    let received: Buffer = Buffer.alloc(0);
    let done = false;
    const socket = net.connect({ host: server.host, port: server.port });
    const finish = (outcome: ExchangeOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(outcome);
    };
    const onAbort = (): void => finish({ kind: 'error', reason: 'resolver closed' });
    const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);
    socket.on('error', (err) => finish({ kind: 'error', reason: `over TCP: ${describeNetworkError(err)}` }));
    socket.on('connect', () => socket.write(frame));
    socket.on('data', (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      while (received.length >= 2) {
        const length = received.readUInt16BE(0);
        if (received.length < 2 + length) return;
        const reply = decode(received.subarray(2, 2 + length));
        received = received.subarray(2 + length);
        if (typeof reply === 'string') return finish({ kind: 'error', reason: `${reply} over TCP` });
        if (belongsTo(reply, id, q)) return finish({ kind: 'reply', reply });
      }
    });
    socket.on('end', () => finish({ kind: 'error', reason: 'over TCP: the server closed the connection without a complete reply' }));
  });
}
