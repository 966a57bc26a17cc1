// A real authoritative DNS server on 127.0.0.1 for tests (dns2 2.4.0 over real UDP and TCP sockets on one port).
// It serves a Zone: MX / A / AAAA / PTR / CNAME records, NXDOMAIN (with an SOA, so negative caching is testable),
// NODATA, SERVFAIL, REFUSED, names it never answers (timeouts) and names it answers late (delay). Answers over 512
// bytes are truncated over UDP (TC=1) by dns2, and served in full over TCP on the same port.
import type { AddressInfo, Socket } from 'node:net';
import { isIP } from 'node:net';
import { Packet, TCPServer, UDPServer } from 'dns2';
import { reverseName } from '../../relay/dns/names.ts';

export interface Zone {
  // keys are lower-case names without trailing dot
  mx?: Record<string, Array<{ exchange: string; priority: number }>>; // exchange "." for null MX
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  ptr?: Record<string, string[]>; // key is the IP address ("127.0.0.2", "::1"); mapped to the arpa name here
  cname?: Record<string, string>; // alias -> target; answered with the CNAME and the target's records, like a recursive server
  // For the three below, an entry is a name ("example.com": every query type) or a type and a name
  // ("AAAA example.com": that type only); an IP address stands for its PTR name.
  servfail?: string[]; // answered with SERVFAIL
  refused?: string[]; // answered with REFUSED
  timeout?: string[]; // never answered
  // answered this many ms after the query came (whatever the answer: records, NXDOMAIN, SERVFAIL...), over UDP and TCP;
  // keys as for the three above; each query waits on its own, so a retry is answered that long after the retry
  delay?: Record<string, number>;
  ttl?: number; // TTL of the records, default 300
  negativeTtl?: number | null; // SOA minimum (and SOA TTL) in NXDOMAIN/NODATA replies, default 60; null: no SOA at all
}

export interface DnsQueryLog {
  name: string; // lower case, no trailing dot
  type: string; // "MX", "A", "AAAA", "PTR", ...
  transport: 'udp' | 'tcp';
}

export interface TestDnsServer {
  host: string;
  port: number;
  server: string; // "127.0.0.1:PORT", the form dns.servers takes
  queries: DnsQueryLog[];
  setZone(z: Zone): void;
  close(): Promise<void>;
}

type Request = InstanceType<typeof Packet>;
type Send = (response: Request | Buffer) => Promise<Buffer>;

const RCODE = { FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const; // dns2's typings leave out Packet.RCODE

const TYPE_NAMES = new Map<number, string>(Object.entries(Packet.TYPE).map(([name, code]) => [code as number, name]));

function key(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** A name as the server indexes it: an IP address becomes its PTR name. */
function indexName(name: string): string {
  return isIP(name) ? (reverseName(name) ?? key(name)) : key(name);
}

/** "name" or "TYPE name" -> "name" or "TYPE name" with the name indexed. */
function indexEntry(entry: string): string {
  const space = entry.indexOf(' ');
  return space < 0 ? indexName(entry) : `${entry.slice(0, space).toUpperCase()} ${indexName(entry.slice(space + 1).trim())}`;
}

function listed(set: Set<string>, name: string, type: string): boolean {
  return set.has(name) || set.has(`${type} ${name}`);
}

interface Compiled {
  zone: Zone;
  ttl: number;
  exists: Set<string>;
  ptr: Map<string, string[]>;
  servfail: Set<string>;
  refused: Set<string>;
  timeout: Set<string>;
  delay: Map<string, number>;
}

function compile(zone: Zone): Compiled {
  const ptr = new Map<string, string[]>();
  for (const [ip, names] of Object.entries(zone.ptr ?? {})) {
    const arpa = reverseName(ip);
    if (arpa === null) throw new Error(`Zone.ptr key "${ip}" is not an IP address`);
    ptr.set(arpa, names);
  }
  const exists = new Set<string>([
    ...Object.keys(zone.mx ?? {}).map(key),
    ...Object.keys(zone.a ?? {}).map(key),
    ...Object.keys(zone.aaaa ?? {}).map(key),
    ...Object.keys(zone.cname ?? {}).map(key),
    ...ptr.keys(),
  ]);
  return {
    zone,
    ttl: zone.ttl ?? 300,
    exists,
    ptr,
    servfail: new Set((zone.servfail ?? []).map(indexEntry)),
    refused: new Set((zone.refused ?? []).map(indexEntry)),
    timeout: new Set((zone.timeout ?? []).map(indexEntry)),
    delay: new Map(Object.entries(zone.delay ?? {}).map(([entry, ms]) => [indexEntry(entry), ms])),
  };
}

function recordsFor(c: Compiled, name: string, type: number): Array<Record<string, unknown>> {
  const base = { name, class: Packet.CLASS.IN, ttl: c.ttl };
  const lookup = <T>(table: Record<string, T[]> | undefined): T[] => {
    if (!table) return [];
    const hit = Object.entries(table).find(([k]) => key(k) === name);
    return hit ? hit[1] : [];
  };
  switch (type) {
    case Packet.TYPE.MX:
      return lookup(c.zone.mx).map((mx) => ({ ...base, type, exchange: mx.exchange === '.' ? '' : mx.exchange, priority: mx.priority }));
    case Packet.TYPE.A:
      return lookup(c.zone.a).map((address) => ({ ...base, type, address }));
    case Packet.TYPE.AAAA:
      return lookup(c.zone.aaaa).map((address) => ({ ...base, type, address }));
    case Packet.TYPE.PTR:
      return (c.ptr.get(name) ?? []).map((domain) => ({ ...base, type, domain }));
    default:
      return [];
  }
}

function soaFor(c: Compiled, name: string): Array<Record<string, unknown>> {
  const negative = c.zone.negativeTtl === undefined ? 60 : c.zone.negativeTtl;
  if (negative === null) return [];
  const apex = name.split('.').slice(-2).join('.');
  return [
    {
      name: apex,
      type: Packet.TYPE.SOA,
      class: Packet.CLASS.IN,
      ttl: negative,
      primary: `ns.${apex}`,
      admin: `hostmaster.${apex}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expiration: 86400,
      minimum: negative,
    },
  ];
}

export async function startDnsServer(initial: Zone): Promise<TestDnsServer> {
  let compiled = compile(initial);
  const queries: DnsQueryLog[] = [];
  const delayed = new Set<NodeJS.Timeout>(); // answers waiting for their delay; close() drops them

  const handle = (transport: 'udp' | 'tcp') => (request: Request, sendNow: Send) => {
    const question = request.questions[0];
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    response.header.ra = 1;
    if (!question) {
      response.header.rcode = RCODE.FORMERR;
      sendNow(response).catch(() => {});
      return;
    }
    const name = key(question.name);
    const type = TYPE_NAMES.get(question.type) ?? String(question.type);
    queries.push({ name, type, transport });
    const c = compiled;
    const wait = c.delay.get(`${type} ${name}`) ?? c.delay.get(name) ?? 0;
    const send: Send = (r) => {
      if (wait <= 0) return sendNow(r);
      const timer = setTimeout(() => {
        delayed.delete(timer);
        sendNow(r).catch(() => {});
      }, wait);
      timer.unref(); // (a test counting the process's open timers counts the resolver's, not these)
      delayed.add(timer);
      return Promise.resolve(Buffer.alloc(0));
    };
    if (listed(c.timeout, name, type)) return; // never answered
    const servfail = listed(c.servfail, name, type);
    if (servfail || listed(c.refused, name, type)) {
      response.header.rcode = servfail ? RCODE.SERVFAIL : RCODE.REFUSED;
      send(response).catch(() => {});
      return;
    }
    // Follow CNAMEs inside the zone, as a recursive server would (bounded).
    let target = name;
    for (let hop = 0; hop < 8; hop++) {
      const alias = Object.entries(c.zone.cname ?? {}).find(([k]) => key(k) === target);
      if (!alias || question.type === Packet.TYPE.CNAME) break;
      response.answers.push({ name: target, type: Packet.TYPE.CNAME, class: Packet.CLASS.IN, ttl: c.ttl, domain: key(alias[1]) } as never);
      target = key(alias[1]);
    }
    const records = recordsFor(c, target, question.type);
    response.answers.push(...(records as never[]));
    if (records.length === 0) {
      // RFC 2308 / 6604: NXDOMAIN or NODATA is about the end of the CNAME chain; the SOA says how long to believe it
      if (!c.exists.has(target)) response.header.rcode = RCODE.NXDOMAIN;
      response.authorities.push(...(soaFor(c, target) as never[]));
    }
    send(response).catch(() => {});
  };

  // UDP on an ephemeral port, then TCP on the same port number (retry if that TCP port is taken).
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = new UDPServer({ type: 'udp4' });
    udp.on('request', handle('udp') as never);
    udp.on('error', () => {});
    await udp.listen(0, '127.0.0.1');
    const port = (udp.address() as AddressInfo).port;
    const tcp = new TCPServer();
    tcp.on('request', handle('tcp') as never);
    const connections = new Set<Socket>();
    tcp.on('connection', (socket: Socket) => {
      connections.add(socket);
      socket.on('close', () => connections.delete(socket));
    });
    const tcpError = await new Promise<Error | null>((resolve) => {
      tcp.once('error', resolve);
      tcp.listen(port, '127.0.0.1', () => resolve(null));
    });
    if (tcpError) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      continue;
    }
    tcp.on('error', () => {});
    let closed: Promise<void> | undefined;
    return {
      host: '127.0.0.1',
      port,
      server: `127.0.0.1:${port}`,
      queries,
      setZone(z: Zone) {
        compiled = compile(z);
      },
      close() {
        for (const timer of delayed) clearTimeout(timer);
        delayed.clear();
        closed ??= Promise.all([
          new Promise<void>((resolve) => udp.close(() => resolve())),
          new Promise<void>((resolve) => {
            for (const socket of connections) socket.destroy();
            tcp.close(() => resolve());
          }),
        ]).then(() => undefined);
        return closed;
      },
    };
  }
  throw new Error('startDnsServer: could not bind UDP and TCP to the same port on 127.0.0.1 after 20 tries');
}
