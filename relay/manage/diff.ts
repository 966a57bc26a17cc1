/**
 * Config diffs for the audit log and config.history (the diff itself is shared/config-diff.ts, which the console
 * uses too), and the config as a viewer may see it.
 */
import type { Config } from '../../shared/config.ts';
import type { ConfigChange } from '../../shared/protocol.ts';
import { diffConfigs } from '../../shared/config-diff.ts';

/** The audit log's diff: nothing before the first config. */
export function diffConfig(before: Config | null, after: Config): ConfigChange[] {
  return before === null ? [] : diffConfigs(before, after);
}

/** The config with secrets hidden, still valid against the schema (for viewers). */
export function hideSecrets(c: Config): Config {
  const copy = structuredClone(c) as Config;
  for (const u of Object.values(copy.users)) u.passwordHash = 'scrypt$(hidden)';
  if (copy.delivery.smarthost.password !== null) copy.delivery.smarthost.password = '(hidden)';
  return copy;
}
