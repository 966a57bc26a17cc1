/**
 * What a pending change alone does to the recorded traffic. policy.simulate compares a config with what the relay
 * recorded at the time, so its "newly passing" includes everything that changed since then (an IP trusted an hour
 * ago, a limit raised yesterday) and credits it to the pending change. The preview therefore replays the traffic
 * twice, through the settings in effect now and through the changed ones, and shows the difference of the two.
 *
 * From the two answers: per rule, the rejections under each config are exact (`after`), so their difference is this
 * change's net effect on that rule. Per IP, a simulation counts newly rejected and newly passing against the
 * recording; (newlyRejected - newlyPassed) is that IP's rejections relative to the recording, and the difference of
 * that between the two configs is what the change does to the IP. (A decision that moves from one rule to another is
 * in the rules' counts but in no IP's; a relay-side comparison would give those too: see the report.)
 * No React and no DOM here (tested in Node: test/console-security-impact.test.ts).
 */
import type { SimulationResult, SimulationRule } from '../../../../shared/protocol.ts';

export interface IpImpact {
  ip: string;
  /** rejections by this rule the change adds for the IP */
  more: number;
  /** rejections by this rule the change takes away for the IP */
  fewer: number;
}

export interface RuleImpact {
  rule: SimulationRule['rule'];
  unit: SimulationRule['unit'];
  /** enforced rejections by this rule with the settings in effect now */
  now: number;
  /** with the change */
  after: number;
  /** after - now, when positive */
  more: number;
  /** now - after, when positive */
  fewer: number;
  /** would-have-rejections reported in monitor mode, now and with the change */
  monitoredNow: number;
  monitoredAfter: number;
  /** IPs the change affects under this rule, most affected first */
  ips: IpImpact[];
}

export interface Impact {
  rules: RuleImpact[];
  /** sums over the rules (each in its rule's unit) */
  more: number;
  fewer: number;
  /** IPs with rejections added / taken away by the change */
  moreIps: string[];
  fewerIps: string[];
}

const ZERO = (rule: SimulationRule['rule'], unit: SimulationRule['unit']): SimulationRule => ({
  rule,
  unit,
  before: 0,
  after: 0,
  newlyRejected: 0,
  newlyPassed: 0,
  monitored: 0,
  ips: [],
});

/** `current`: policy.simulate of the config in effect; `candidate`: of the changed one (same window). */
export function compareSimulations(current: SimulationResult, candidate: SimulationResult): Impact {
  const cur = new Map(current.rules.map((r) => [r.rule, r]));
  const cand = new Map(candidate.rules.map((r) => [r.rule, r]));
  const names = [...new Set([...cur.keys(), ...cand.keys()])];
  const moreIps = new Set<string>();
  const fewerIps = new Set<string>();
  const rules: RuleImpact[] = [];
  for (const name of names) {
    const k = cand.get(name) ?? ZERO(name, cur.get(name)!.unit);
    const c = cur.get(name) ?? ZERO(name, k.unit);
    // each IP's rejections by this rule relative to the recording, under each config
    const rel = new Map<string, number>();
    for (const x of k.ips) rel.set(x.ip, (rel.get(x.ip) ?? 0) + x.newlyRejected - x.newlyPassed);
    for (const x of c.ips) rel.set(x.ip, (rel.get(x.ip) ?? 0) - (x.newlyRejected - x.newlyPassed));
    const ips: IpImpact[] = [];
    for (const [ip, d] of rel) {
      if (d > 0) {
        ips.push({ ip, more: d, fewer: 0 });
        moreIps.add(ip);
      } else if (d < 0) {
        ips.push({ ip, more: 0, fewer: -d });
        fewerIps.add(ip);
      }
    }
    ips.sort((a, b) => b.more + b.fewer - (a.more + a.fewer) || a.ip.localeCompare(b.ip));
    const r: RuleImpact = {
      rule: name,
      unit: k.unit,
      now: c.after,
      after: k.after,
      more: Math.max(0, k.after - c.after),
      fewer: Math.max(0, c.after - k.after),
      monitoredNow: c.monitored,
      monitoredAfter: k.monitored,
      ips,
    };
    // a rule neither config rejects or reports anything for is left out (the recording's refusals alone are not news)
    if (r.now || r.after || r.monitoredNow || r.monitoredAfter) rules.push(r);
  }
  rules.sort((a, b) => b.more + b.fewer - (a.more + a.fewer) || b.after - a.after);
  return {
    rules,
    more: rules.reduce((n, r) => n + r.more, 0),
    fewer: rules.reduce((n, r) => n + r.fewer, 0),
    moreIps: [...moreIps].sort(),
    fewerIps: [...fewerIps].sort(),
  };
}
