/**
 * The console's reading of a stuck queue (renderer/src/views/parts/queue-health.ts, format.ts), in plain Node: the
 * Dashboard's Queue card warns when a destination is down or the oldest message has waited over 15 minutes and says
 * why in words; "Retry all now" asks and answers in numbers; a destination key reads as a name; and no "ago" is ever a
 * future "in 4 s" (the Queue toolbar said "updated in 4 s" with a clock refreshed every 5 s behind the data).
 */
import { describe, expect, it } from 'vitest';
import type { NotificationParams } from '../shared/protocol.ts';
import { fmtAgo, fmtSince } from '../renderer/src/components/format.ts';
import {
  destinationRetryIdle,
  STUCK_AFTER_MS,
  destinationLabel,
  destinationWhen,
  dueWords,
  nextAttemptWords,
  queueHealth,
  retryAllConfirm,
  retryAllDoneText,
} from '../renderer/src/views/parts/queue-health.ts';

type QueueStats = NotificationParams<'stats.tick'>['queue'];
const NOW = Date.parse('2026-11-29T02:00:00Z');
const MIN = 60_000;

const queue = (over: Partial<QueueStats> = {}): QueueStats => ({
  size: 3926,
  activeDeliveries: 0,
  acceptingMail: true,
  messages: 3926,
  deferred: 3926,
  oldestReceivedAt: NOW - 2 * 60 * MIN - 14 * MIN,
  destinations: [
    { destination: 'mx:partner.example', messages: 12, down: false, lastError: '452 4.2.2 mailbox full', nextAttemptAt: NOW + 4 * MIN },
    { destination: 'local:10.0.0.5:25', messages: 3914, down: true, lastError: '10.0.0.5:25: connection refused', nextAttemptAt: NOW + 3 * MIN },
    { destination: 'mx:fine.example', messages: 2, down: false, lastError: null, nextAttemptAt: NOW },
  ],
  ...over,
});

describe('the Queue card during an outage', () => {
  it('warns when a destination is down, naming it, the oldest message\'s age, the deferred messages, and the down one first', () => {
    const h = queueHealth(queue(), NOW);
    expect(h.tone).toBe('warn');
    expect(h.headline).toBe('Mail is stuck: 10.0.0.5:25 does not answer.');
    expect(h.oldest).toBe('oldest waiting 2 h 14 min');
    expect(h.deferred).toBe('3,926 deferred');
    // down first, then deferring ones; a destination with nothing wrong (no error, not down) is not listed
    expect(h.destinations.map((d) => [d.label, d.state, d.lastError, d.text])).toEqual([
      ['10.0.0.5:25', 'down', '10.0.0.5:25: connection refused', '3,914 messages · next attempt in 3 min'],
      ['partner.example', 'deferring', '452 4.2.2 mailbox full', '12 messages · next attempt in 4 min'],
    ]);
  });

  it('warns when the oldest message has waited longer than 15 minutes, even with no destination down', () => {
    const q = queue({ destinations: [{ destination: 'mx:partner.example', messages: 1, down: false, lastError: '451 try later', nextAttemptAt: NOW + MIN }], oldestReceivedAt: NOW - STUCK_AFTER_MS - 1000 });
    const h = queueHealth(q, NOW);
    expect(h.tone).toBe('warn');
    expect(h.headline).toBe('Mail is waiting: the oldest message has waited 15 min.');
    // 15 minutes is not yet "stuck"
    const fresh = queueHealth({ ...q, oldestReceivedAt: NOW - STUCK_AFTER_MS }, NOW);
    expect(fresh.tone).toBe('ok');
    expect(fresh.headline).toBe('Some deliveries are being retried.');
  });

  it('says when mail waits for a free delivery connection, and which destinations (a tryout: the card said only "100 delivering now")', () => {
    const h = queueHealth(
      queue({
        messages: 320,
        deferred: 0,
        oldestReceivedAt: NOW - 3 * MIN,
        destinations: [
          { destination: 'local:127.0.0.1:23101', messages: 50, down: false, lastError: null, nextAttemptAt: NOW - 1000, connections: 20, waitingForConnection: 30 },
          { destination: 'mx:good.example', messages: 20, down: false, lastError: null, nextAttemptAt: NOW - 2000, connections: 0, waitingForConnection: 20 },
          { destination: 'mx:busy.example', messages: 5, down: false, lastError: null, nextAttemptAt: null, connections: 5, waitingForConnection: 0 },
        ],
      }),
      NOW,
    );
    expect(h.tone).toBe('ok');
    expect(h.headline).toBe('Some mail waits for a free delivery connection: every one it may use is taken.');
    expect(h.waitingForConnection).toBe('50 waiting for a free connection');
    expect(h.destinations.map((d) => [d.label, d.state, d.text])).toEqual([
      ['127.0.0.1:23101', 'waiting', '50 messages · waiting for a free connection'],
      ['good.example', 'waiting', '20 messages · waiting for a free connection'],
    ]);
    // a relay before these fields says nothing of it
    expect(queueHealth(queue({ destinations: [] }), NOW).waitingForConnection).toBeNull();
  });

  it('is calm when mail flows, and when the queue is empty', () => {
    const flowing = queueHealth(queue({ messages: 4, deferred: 0, oldestReceivedAt: NOW - 5000, destinations: [{ destination: 'mx:fine.example', messages: 4, down: false, lastError: null, nextAttemptAt: null }] }), NOW);
    expect(flowing).toMatchObject({ tone: 'ok', headline: 'Mail is flowing.', oldest: 'oldest waiting 5 s', deferred: '0 deferred', destinations: [] });
    const empty = queueHealth(queue({ size: 0, messages: 0, deferred: 0, oldestReceivedAt: null, destinations: [] }), NOW);
    expect(empty).toMatchObject({ tone: 'ok', oldest: null, destinations: [] });
    expect(empty.headline).toMatch(/^Empty/);
  });

  it('two or more destinations down are named (two, then "and N more")', () => {
    const d = (name: string, messages: number) => ({ destination: `mx:${name}`, messages, down: true, lastError: 'timeout before the greeting', nextAttemptAt: NOW + MIN });
    expect(queueHealth(queue({ destinations: [d('a.example', 3), d('b.example', 2)] }), NOW).headline).toBe('Mail is stuck: a.example and b.example do not answer.');
    expect(queueHealth(queue({ destinations: [d('a.example', 3), d('b.example', 2), d('c.example', 1), d('d.example', 1)] }), NOW).headline).toBe(
      'Mail is stuck: a.example and b.example and 2 more do not answer.',
    );
  });

  it('a relay without the summary (older) shows the size only, without inventing figures', () => {
    const h = queueHealth({ size: 12, activeDeliveries: 1, acceptingMail: true }, NOW);
    expect(h).toMatchObject({ detailed: false, tone: 'ok', oldest: null, deferred: null, destinations: [] });
  });

  it('a relay clock a little ahead of the console never makes a negative age', () => {
    expect(queueHealth(queue({ oldestReceivedAt: NOW + 3000 }), NOW).oldest).toBe('oldest waiting 0 s');
  });
});

describe('Retry all now', () => {
  it('the confirmation says what it does, for the whole queue or one destination', () => {
    const all = retryAllConfirm(3926, null);
    expect(all.title).toBe('Retry all 3,926 queued messages now?');
    expect(all.confirmLabel).toBe('Retry all now');
    expect(all.body.join(' ')).toMatch(/Every queued message becomes due at once, instead of at its next scheduled attempt\./);
    expect(all.body.join(' ')).toMatch(/being delivered right now are left as they are\. Nothing is deleted or returned to its sender\./);
    const one = retryAllConfirm(1, 'mx:corp.example');
    expect(one.title).toBe('Retry the 1 message waiting for corp.example now?');
    expect(one.confirmLabel).toBe('Retry corp.example now');
  });

  it('the toast gives the relay\'s numbers', () => {
    expect(retryAllDoneText({ scheduled: 3914, delivering: 12 }, null)).toBe('3,914 messages will be tried now; 12 are being delivered already.');
    expect(retryAllDoneText({ scheduled: 1, delivering: 1 }, null)).toBe('1 message will be tried now; 1 is being delivered already.');
    expect(retryAllDoneText({ scheduled: 40, delivering: 0 }, 'mx:corp.example')).toBe('40 messages for corp.example will be tried now.');
    expect(retryAllDoneText({ scheduled: 0, delivering: 0 }, 'mx:corp.example')).toBe('No message for corp.example was waiting: there was nothing to retry.');
  });
});

describe('destinations and times in words', () => {
  it('a destination key reads as the name a person knows', () => {
    expect(destinationLabel('mx:corp.example')).toBe('corp.example');
    expect(destinationLabel('local:127.0.0.1:2525')).toBe('127.0.0.1:2525');
    expect(destinationLabel('smarthost:smtp.isp.example:587')).toBe('smarthost smtp.isp.example:587');
    expect(destinationLabel('something-else')).toBe('something-else');
  });

  it('a next attempt that has come is "due now", never "2 min ago"', () => {
    expect(dueWords(NOW + 3 * MIN, NOW)).toBe('in 3 min');
    expect(dueWords(NOW - 2 * MIN, NOW)).toBe('due now');
    expect(nextAttemptWords({ down: false, nextAttemptAt: NOW - 1 }, NOW)).toBe('next attempt due now');
    expect(nextAttemptWords({ down: false, nextAttemptAt: null }, NOW)).toBe('being delivered');
  });

  it('due deliveries that wait for a free connection say so, not "being delivered" or "due now"', () => {
    // (a tryout: all 100 connections held by slow servers, a healthy destination's 20 messages showed "being delivered")
    expect(destinationWhen({ down: false, nextAttemptAt: NOW - 5 * MIN, waitingForConnection: 20 }, NOW)).toBe('waiting for a free connection');
    expect(destinationWhen({ down: false, nextAttemptAt: null, waitingForConnection: 3 }, NOW)).toBe('waiting for a free connection');
    expect(nextAttemptWords({ down: false, nextAttemptAt: NOW - 1, waitingForConnection: 1 }, NOW)).toBe('waiting for a free connection');
    // a later attempt of others is still theirs; a down destination's probe time stands; a relay before it says nothing
    expect(destinationWhen({ down: false, nextAttemptAt: NOW + 3 * MIN, waitingForConnection: 2 }, NOW)).toBe('in 3 min');
    expect(destinationWhen({ down: true, nextAttemptAt: NOW + 3 * MIN, waitingForConnection: 0 }, NOW)).toBe('in 3 min');
    expect(destinationWhen({ down: false, nextAttemptAt: NOW - 1 }, NOW)).toBe('due now');
  });

  it('a destination whose retry would bring nothing forward has its Retry button disabled, saying why', () => {
    // (a review: pressing it on a destination that only waited for a free connection changed nothing, silently)
    expect(destinationRetryIdle({ down: false, scheduledLater: 0, waitingForConnection: 20 })).toMatch(/^Nothing to bring forward: .*wait for a free delivery connection/);
    expect(destinationRetryIdle({ down: false, scheduledLater: 0, waitingForConnection: 0 })).toBe('Nothing to bring forward: none of its messages is scheduled for later (they are due now, being delivered or about to be).');
    // something scheduled later, a down destination (a retry probes it now), a relay that does not say: the button works
    expect(destinationRetryIdle({ down: false, scheduledLater: 2, waitingForConnection: 20 })).toBeNull();
    expect(destinationRetryIdle({ down: true, scheduledLater: 0, waitingForConnection: 0 })).toBeNull();
    expect(destinationRetryIdle({ down: false, waitingForConnection: 3 })).toBeNull();
  });

  it('fmtSince never says a future "in 4 s": the data fetched after the refreshed clock is "just now"', () => {
    // the Queue toolbar: dataUpdatedAt 4 s after the `now` a 5-second clock last gave
    expect(fmtAgo(NOW + 4000, NOW)).toBe('in 4 s');
    expect(fmtSince(NOW + 4000, NOW)).toBe('just now');
    expect(fmtSince(NOW + 60 * MIN, NOW)).toBe('just now');
    expect(fmtSince(NOW - 500, NOW)).toBe('just now');
    expect(fmtSince(NOW - 4000, NOW)).toBe('4 s ago');
    expect(fmtSince(NOW - 2 * 60 * MIN - 14 * MIN, NOW)).toBe('2 h 14 min ago');
    expect(fmtSince(null, NOW)).toBe('—');
  });
});
