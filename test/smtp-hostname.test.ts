/**
 * smtp.hostname is what clients see: the 220 greeting, the EHLO/HELO reply, and the "by" of the Received header.
 * A change (console or SIGHUP) takes effect at the next session without a restart; null means this machine's name.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { readQueuedMessage } from '../relay/queue/files.ts';
import { smtpClients, type RawSmtp } from './helpers/smtp-client.ts';
import { startTestRelay, type TestRelay } from './helpers/relay-harness.ts';
import { waitFor } from './helpers/wait.ts';

let t: TestRelay | null = null;
const { open } = smtpClients(async () => {
  await t?.stop();
  t = null;
});

/** greeting, EHLO, one message to a local recipient: the names a client sees and the stored Received header */
async function session(tr: TestRelay, c: RawSmtp): Promise<{ greeting: string; ehlo: string; received: string }> {
  const g = await c.read();
  expect(g?.code).toBe(220);
  const e = await c.cmd('EHLO client.test');
  expect(e.code).toBe(250);
  expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
  expect((await c.cmd('RCPT TO:<alice@example.com>')).code).toBe(250);
  const d = await c.data('Subject: name\r\n\r\nhello\r\n');
  expect(d.code).toBe(250);
  const queueId = /queued as (\S+)/.exec(d.text)![1]!;
  await waitFor(() => tr.events.some((x: RelayEvent) => x.kind === 'accepted' && x.queueId === queueId), `${queueId} accepted`);
  const stored = await readQueuedMessage(path.join(tr.dir, 'spool', 'queue'), queueId);
  const by = /^Received: from [^\r]*\r\n\tby (\S+) \(Relay Warden\)/.exec(stored!.data.toString('latin1'));
  return { greeting: g!.lines[0]!, ehlo: e.lines[0]!, received: by?.[1] ?? '(no Received header)' };
}

describe('smtp.hostname', () => {
  it('a change takes effect at the next session: greeting, EHLO and Received name the new host; null is the machine name', async () => {
    t = await startTestRelay({ smtp: { hostname: 'relay-one.test' }, checks: { reverseDns: { mode: 'off' } } });

    const first = await open(t.port);
    expect(await session(t, first)).toEqual({
      greeting: '220 relay-one.test ESMTP Relay Warden',
      ehlo: '250-relay-one.test Nice to meet you, [127.0.0.5]',
      received: 'relay-one.test',
    });
    await first.quit();

    t.relay.config.modify((d) => void (d.smtp.hostname = 'relay-two.test'), { by: 'test', source: 'test' });
    const second = await open(t.port, '127.0.0.6');
    expect(await session(t, second)).toEqual({
      greeting: '220 relay-two.test ESMTP Relay Warden',
      ehlo: '250-relay-two.test Nice to meet you, [127.0.0.6]',
      received: 'relay-two.test',
    });
    await second.quit();

    t.relay.config.modify((d) => void (d.smtp.hostname = null), { by: 'test', source: 'test' });
    const third = await open(t.port, '127.0.0.7');
    const seen = await session(t, third);
    expect(seen.greeting).toBe(`220 ${os.hostname()} ESMTP Relay Warden`);
    expect(seen.ehlo.startsWith(`250-${os.hostname()} `)).toBe(true);
    expect(seen.received).toBe(os.hostname());
    await third.quit();

    // a hand edit of config.json, picked up on SIGHUP (the relay's reload)
    const file = path.join(t.dir, 'config.json');
    const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
    onDisk.smtp.hostname = 'relay-three.test';
    fs.writeFileSync(file, JSON.stringify(onDisk));
    expect(t.relay.config.reload()).not.toBeNull();
    const fourth = await open(t.port, '127.0.0.8');
    expect(await session(t, fourth)).toMatchObject({ greeting: '220 relay-three.test ESMTP Relay Warden', received: 'relay-three.test' });
    await fourth.quit();
  });
});
