/**
 * "host:port" strings as they appear in config.json (listen addresses, deliverTo, DNS servers).
 * Accepted: "127.0.0.1:2525", "0.0.0.0:25", "mail.example.com:25", "[::1]:2525", "[2001:db8::5]:25".
 */
export interface HostPort {
  host: string;
  port: number;
}

export type HostPortResult = { ok: true; value: HostPort } | { ok: false; error: string };

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function parseHostPort(text: string, defaultPort?: number): HostPortResult {
  const s = text.trim();
  if (s === '') return { ok: false, error: 'is empty; expected host:port, e.g. 127.0.0.1:2525' };
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) return { ok: false, error: `"${text}" has "[" without "]"; write IPv6 as [2001:db8::1]:25` };
    host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return { ok: false, error: `"${text}" has text after "]" that is not ":port"` };
    portText = rest === '' ? undefined : rest.slice(1);
    if (!host.includes(':')) return { ok: false, error: `"${text}": brackets are only for IPv6 addresses` };
  } else {
    const colons = s.split(':').length - 1;
    if (colons > 1) return { ok: false, error: `"${text}": write an IPv6 address in brackets, e.g. [::1]:2525` };
    const i = s.lastIndexOf(':');
    host = i < 0 ? s : s.slice(0, i);
    portText = i < 0 ? undefined : s.slice(i + 1);
    if (IPV4.test(host)) {
      if (host.split('.').some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) {
        return { ok: false, error: `"${text}": ${host} is not a valid IPv4 address` };
      }
    } else if (!HOSTNAME.test(host)) {
      return { ok: false, error: `"${text}": "${host}" is not a valid host name or address` };
    }
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) return { ok: false, error: `"${text}" has no port; expected host:port, e.g. 127.0.0.1:2525` };
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) return { ok: false, error: `"${text}": port "${portText}" is not a number` };
    port = Number(portText);
    if (port < 1 || port > 65535) return { ok: false, error: `"${text}": port ${port} is outside 1-65535` };
  }
  return { ok: true, value: { host: host.toLowerCase().replace(/\.$/, ''), port } };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
