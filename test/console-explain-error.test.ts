/**
 * The console's words for a relay's 4009 (conflict). Only a stale config is "someone else changed the configuration";
 * the other conflicts say what they are in the relay's words. Regression (session 9): every 4009 read as a config
 * conflict, so a token name already taken, or a queue.delete while the message was being returned, told the admin
 * to review someone's configuration change.
 */
import { describe, expect, it } from 'vitest';
import { ApiError } from '../renderer/src/api.ts';
import { explainError } from '../renderer/src/hooks.ts';

describe('explainError for 4009', () => {
  it('a stale config (the relay names the revisions)', () => {
    const err = new ApiError({ code: 4009, message: 'the config changed since revision 3 (now 4); reload it and apply your change again', data: { baseRevision: 3, currentRevision: 4 } });
    expect(explainError(err)).toBe('Someone else changed the configuration since you loaded it. Review their change, then apply yours again.');
  });

  it('any other conflict: the relay\'s own words', () => {
    const token = new ApiError({ code: 4009, message: 'a token named "ops" exists already; revoke it first or pick another name' });
    expect(explainError(token)).toBe('A token named "ops" exists already; revoke it first or pick another name');
    const queue = new ApiError({ code: 4009, message: 'message Q1 is being returned to its sender already: it leaves the queue when its delivery attempt ends; it cannot be deleted without a bounce now' });
    expect(explainError(queue)).toMatch(/^Message Q1 is being returned to its sender already/);
  });
});
