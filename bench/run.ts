/**
 * npm run bench: every benchmark, each with its baseline measured in the same run, printed as markdown tables.
 * `npm run bench -- smtp e2e postfix manage console steps` picks sections (default: all). Not part of npm test.
 */
import os from 'node:os';
import { benchSmtpAccept } from './smtp-accept.ts';
import { benchEndToEnd } from './end-to-end.ts';
import { hasCommand } from './lib.ts';

const sections: Record<string, () => Promise<string>> = {
  smtp: () => benchSmtpAccept(),
  e2e: () => benchEndToEnd(),
  postfix: async () => (await import('./postfix.ts')).benchPostfix(),
  manage: async () => (await import('./manage.ts')).benchManage(),
  console: async () => (await import('./console.ts')).benchConsole(),
  steps: async () => (await import('./session-steps.ts')).benchSessionSteps(),
};

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`usage: npm run bench -- [${Object.keys(sections).join(' ')}]   (no section: all of them)`);
  process.exit(0);
}
const unknown = args.filter((a) => !(a in sections));
if (unknown.length > 0) {
  // a typo must not start a run of every section (about ten minutes)
  console.error(`unknown bench section${unknown.length === 1 ? '' : 's'}: ${unknown.join(', ')}; the sections are: ${Object.keys(sections).join(', ')}`);
  process.exit(2);
}
const wanted = args;
if (!hasCommand('smtp-source') || !hasCommand('smtp-sink')) {
  console.error('The bench needs smtp-source and smtp-sink: apt-get install -y postfix (the mail service need not run).');
  process.exit(2);
}
console.log(`# Relay Warden bench, ${new Date().toISOString()}`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (const name of wanted.length ? wanted : Object.keys(sections)) {
  const t0 = Date.now();
  try {
    console.log(await sections[name]!());
  } catch (err) {
    console.log(`\n### ${name}: FAILED\n\n${(err as Error).stack}`);
    process.exitCode = 1;
  }
  console.log(`\n(${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}
// a child or socket left behind by a failed section must not keep the bench alive for minutes after its tables
process.exit(process.exitCode ?? 0);
