/**
 * The queue's destination keys as people read them. The relay names each destination by a key (`mx:DOMAIN`,
 * `local:HOST:PORT`, `smarthost:HOST:PORT`; relay/queue/route.ts); its log lines and the console both say it the same
 * way.
 */

/**
 * "mx:corp.example" is corp.example (its MX hosts), "local:10.0.0.5:25" the local domains' server 10.0.0.5:25,
 * "smarthost:smtp.isp.example:587" the smarthost. Other keys are shown as they are.
 */
export function destinationLabel(key: string): string {
  if (key.startsWith('mx:')) return key.slice(3);
  if (key.startsWith('local:')) return key.slice(6);
  if (key.startsWith('smarthost:')) return `smarthost ${key.slice(10)}`;
  return key;
}
