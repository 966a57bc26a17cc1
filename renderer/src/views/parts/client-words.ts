/**
 * A client's recent rejections in words, for the Clients table (pure, tested in Node). A rule in monitor mode only
 * reports what it would have rejected: the mail was accepted. Counted together, "2 · Unknown recipient (550)" read as
 * two refusals when one was a would-reject of reverse DNS whose message went through.
 */
import { fmtCount, ruleLabel } from '../../components/format.ts';

export function rejectionsSummary(list: readonly { rule: string; enforced: boolean }[]): string | null {
  let rejected = 0;
  let monitored = 0;
  let lastRejected: string | null = null;
  let lastMonitored: string | null = null;
  for (const r of list) {
    if (r.enforced) {
      rejected++;
      lastRejected = r.rule;
    } else {
      monitored++;
      lastMonitored = r.rule;
    }
  }
  const parts: string[] = [];
  if (rejected > 0) parts.push(`${fmtCount(rejected)} rejected · ${ruleLabel(lastRejected!)}`);
  if (monitored > 0) parts.push(`${fmtCount(monitored)} would-reject (monitor only, not enforced)${rejected === 0 ? ` · ${ruleLabel(lastMonitored!)}` : ''}`);
  return parts.length ? parts.join(' + ') : null;
}
