/**
 * Open a wss connection to a relay with SSH-style certificate pinning. TLS verification is off (the relay's
 * certificate is self-signed); instead the peer certificate's SHA-256 fingerprint is compared on
 * secureConnect, and only then is the HTTP upgrade request finished (ws's finishRequest), so nothing at all
 * (not the upgrade, not the token) leaves before the pin matches.
 */
import type { ClientRequest } from 'node:http';
import type { TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { MAX_FRAME_BYTES } from '../../shared/protocol.ts';
import type { CertificateInfo } from '../../shared/console-api.ts';

export class PinError extends Error {
  constructor(
    readonly kind: 'unknown' | 'mismatch',
    readonly certificate: CertificateInfo,
    readonly pinned: string | null,
  ) {
    super(
      kind === 'unknown'
        ? `The relay presented a certificate this console has not seen before (SHA-256 ${certificate.fingerprint256}). Compare it with the fingerprint the relay printed at start, then accept it.`
        : `The relay's certificate CHANGED: it now presents SHA-256 ${certificate.fingerprint256}, but ${pinned} was accepted before. This can be an attack; nothing was sent. If the certificate was replaced on purpose, forget the old fingerprint and connect again.`,
    );
    this.name = 'PinError';
  }
}

function describe(sock: TLSSocket): CertificateInfo | null {
  const c = sock.getPeerCertificate();
  if (!c || !c.fingerprint256) return null;
  const name = (x: unknown) =>
    x && typeof x === 'object' ? Object.entries(x as Record<string, string | string[]>).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(', ') : '';
  return { fingerprint256: c.fingerprint256, subject: name(c.subject), issuer: name(c.issuer), validFrom: c.valid_from, validTo: c.valid_to };
}

export interface PinnedOptions {
  host: string;
  port: number;
  /** the accepted fingerprint, or null on first contact */
  pinned: string | null;
  /** a fingerprint the user just accepted for this attempt (the prompt's answer) */
  accept?: string | null;
  timeoutMs?: number;
}

/** Resolves with an open WebSocket once the pin matched and the upgrade succeeded. */
export function openPinned(opts: PinnedOptions): Promise<{ ws: WebSocket; certificate: CertificateInfo }> {
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return new Promise((resolve, reject) => {
    let certificate: CertificateInfo | null = null;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        ws.terminate();
      } catch {
        // not open yet
      }
      reject(err);
    };
    const ws = new WebSocket(`wss://${host}:${opts.port}/`, {
      rejectUnauthorized: false,
      maxPayload: MAX_FRAME_BYTES * 16,
      handshakeTimeout: opts.timeoutMs ?? 10_000,
      perMessageDeflate: false,
      finishRequest: (req: ClientRequest) => {
        req.on('socket', (socket) => {
          const tlsSock = socket as TLSSocket;
          const check = () => {
            const info = describe(tlsSock);
            if (!info) {
              req.destroy(new Error('the relay presented no certificate'));
              return;
            }
            certificate = info;
            const fp = info.fingerprint256.toUpperCase();
            const wanted = (opts.accept ?? opts.pinned)?.toUpperCase() ?? null;
            if (wanted === fp) {
              req.end();
              return;
            }
            const err = new PinError(opts.pinned && opts.pinned.toUpperCase() !== fp ? 'mismatch' : 'unknown', info, opts.pinned);
            fail(err);
            req.destroy(err);
          };
          tlsSock.once('secureConnect', check);
        });
      },
    });
    const timer = setTimeout(() => fail(new Error(`no answer from ${host}:${opts.port} within ${opts.timeoutMs ?? 10_000} ms`)), (opts.timeoutMs ?? 10_000) + 1000);
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ws, certificate: certificate! });
    });
    ws.once('error', (err: Error & { code?: string }) => {
      const hint =
        err.code === 'ECONNREFUSED' ? `nothing listens on ${host}:${opts.port}; is the relay running, and is manage.listen that address?`
          : err.code === 'ENOTFOUND' ? `the host name ${opts.host} is not known`
            : err.code === 'ETIMEDOUT' ? `${host}:${opts.port} did not answer (firewall?)` : err.message;
      fail(err instanceof PinError ? err : Object.assign(new Error(hint), { code: err.code }));
    });
    ws.once('unexpected-response', (_req, res) => fail(new Error(`the relay answered HTTP ${res.statusCode} instead of a WebSocket upgrade`)));
  });
}
