/**
 * The relay's TLS identity: a self-signed certificate made on first start (SHA-256 signature,
 * subjectAltName = the host name), or the administrator's own certificate and key from config.tls.
 * Used for STARTTLS on SMTP and for the wss management channel.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import selfsigned from 'selfsigned';
import { writeFileAtomic } from '../store/config-store.ts';

export interface TlsIdentity {
  cert: string;
  key: string;
  /** SHA-256 of the DER certificate, "AB:CD:..." */
  fingerprint256: string;
  certFile: string;
  keyFile: string;
}

export async function generateSelfSigned(hostname: string, days = 825): Promise<{ cert: string; key: string }> {
  const now = new Date();
  const pems = await selfsigned.generate([{ name: 'commonName', value: hostname }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 60_000),
    notAfterDate: new Date(now.getTime() + days * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: hostname },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

export function fingerprintOf(certPem: string): string {
  return new crypto.X509Certificate(certPem).fingerprint256;
}

/**
 * Load the configured certificate, or DIR/tls/cert.pem + key.pem, creating them on first start.
 * Throws an Error naming the file when a configured certificate cannot be read or does not match its key.
 */
export async function loadOrCreateIdentity(
  dataDir: string,
  hostname: string,
  configured: { certFile: string | null; keyFile: string | null },
): Promise<TlsIdentity & { created: boolean }> {
  let certFile: string;
  let keyFile: string;
  let created = false;
  if (configured.certFile && configured.keyFile) {
    certFile = path.resolve(dataDir, configured.certFile);
    keyFile = path.resolve(dataDir, configured.keyFile);
  } else {
    const dir = path.join(dataDir, 'tls');
    certFile = path.join(dir, 'cert.pem');
    keyFile = path.join(dir, 'key.pem');
    if (!fs.existsSync(certFile) || !fs.existsSync(keyFile)) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { cert, key } = await generateSelfSigned(hostname);
      writeFileAtomic(keyFile, key, 0o600);
      writeFileAtomic(certFile, cert, 0o644);
      created = true;
    }
  }
  return { ...readIdentity(certFile, keyFile), created };
}

/** A configured certificate or key that cannot be used; `key` is the config key that names the file. */
export class TlsFileError extends Error {
  constructor(
    readonly key: 'tls.certFile' | 'tls.keyFile',
    message: string,
  ) {
    super(message);
    this.name = 'TlsFileError';
  }
}

/**
 * Check that config.tls's certificate and key (paths relative to the data directory) can be loaded, as the next
 * start would load them. Throws TlsFileError. Both null (the self-signed pair) is not checked: a start makes it.
 */
export function checkConfiguredIdentity(dataDir: string, configured: { certFile: string | null; keyFile: string | null }): void {
  if (!configured.certFile || !configured.keyFile) return;
  readIdentity(path.resolve(dataDir, configured.certFile), path.resolve(dataDir, configured.keyFile));
}

function readIdentity(certFile: string, keyFile: string): TlsIdentity {
  let cert: string;
  let key: string;
  try {
    cert = fs.readFileSync(certFile, 'utf8');
  } catch (err) {
    throw new TlsFileError('tls.certFile', `cannot read the TLS certificate ${certFile}: ${(err as Error).message}`);
  }
  try {
    key = fs.readFileSync(keyFile, 'utf8');
  } catch (err) {
    throw new TlsFileError('tls.keyFile', `cannot read the TLS key ${keyFile}: ${(err as Error).message}`);
  }
  let x509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(cert);
  } catch (err) {
    throw new TlsFileError('tls.certFile', `${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    if (!x509.checkPrivateKey(crypto.createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
  } catch (err) {
    throw new TlsFileError('tls.keyFile', `${keyFile} does not match ${certFile}: ${(err as Error).message}`);
  }
  return { cert, key, fingerprint256: x509.fingerprint256, certFile, keyFile };
}
