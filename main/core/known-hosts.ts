/**
 * SSH-style known hosts: the certificate fingerprint accepted for each relay (host:port).
 * Unknown -> ask the user; same -> go on; different -> hard stop showing both.
 */
import { formatHostPort } from '../../shared/hostport.ts';
import type { JsonFile } from './ports.ts';

export interface KnownHost {
  fingerprint256: string;
  subject: string;
  acceptedAt: string;
}

type Doc = { hosts: Record<string, KnownHost> };

export const hostKey = (host: string, port: number) => formatHostPort({ host: host.toLowerCase(), port });

export class KnownHosts {
  constructor(private readonly file: JsonFile<Doc>) {}

  private doc(): Doc {
    return this.file.read() ?? { hosts: {} };
  }

  get(host: string, port: number): KnownHost | null {
    return this.doc().hosts[hostKey(host, port)] ?? null;
  }

  accept(host: string, port: number, fingerprint256: string, subject: string): void {
    const d = this.doc();
    d.hosts[hostKey(host, port)] = { fingerprint256: fingerprint256.toUpperCase(), subject, acceptedAt: new Date().toISOString() };
    this.file.write(d);
  }

  forget(host: string, port: number): void {
    const d = this.doc();
    delete d.hosts[hostKey(host, port)];
    this.file.write(d);
  }
}
