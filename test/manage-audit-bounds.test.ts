/**
 * A refused admin request is audited with its params as sent, and each audit line is written and fdatasynced.
 * Regression (the user tryout of session 9): a queue.retry with a 200,000-character id was refused (-32602) but written
 * to audit.jsonl whole, a 200 KB line per request (up to a frame, 1 MiB). Values are now kept whole when small, as a
 * valid request's are, and cut with their size said when not.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditParams } from '../relay/store/audit.ts';
import { ErrorCode } from '../shared/protocol.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';

let t: ManageRelay;
let admin: WssClient;
beforeAll(async () => {
  t = await startManageRelay({});
  admin = await t.admin();
});
afterAll(async () => {
  await t?.stop();
});

describe('audit lines are bounded', () => {
  it('a refused request with a huge param: audited, cut, its size said; the next request is audited as usual', async () => {
    const id = 'Q'.repeat(200_000);
    await expect(admin.call('queue.retry', { id } as never)).rejects.toMatchObject({ code: ErrorCode.InvalidParams });
    const file = path.join(t.dir, 'audit.jsonl');
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    const last = lines[lines.length - 1]!;
    expect(last.length).toBeLessThan(2_000);
    const rec = JSON.parse(last);
    expect(rec).toMatchObject({ method: 'queue.retry', ok: false, by: 'admin' });
    expect(rec.params.id).toBe(`${'Q'.repeat(256)}… (200000 characters)`);
    // a wide and deep object is cut too
    const wide = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, { a: { b: { c: 'deep' } } }]));
    await expect(admin.call('groups.addEntry', wide as never)).rejects.toMatchObject({ code: ErrorCode.InvalidParams });
    const rec2 = JSON.parse(fs.readFileSync(file, 'utf8').trim().split('\n').pop()!);
    expect(JSON.stringify(rec2).length).toBeLessThan(2_000);
    expect(rec2.params['…']).toBe('(500 keys)');
    expect(rec2.params.k0).toEqual({ a: { b: '(an object)' } });
  });

  it('what a valid request holds is kept whole; secrets are hidden at any depth', () => {
    const params = { group: 'Trusted', address: '192.0.2.0/24', comment: 'c'.repeat(256), expiresAt: null, list: [1, 2, 3] };
    expect(auditParams(params)).toEqual(params);
    expect(auditParams({ password: 'x', nested: { token: 'y', ok: 1 } })).toEqual({ password: '(secret)', nested: { token: '(secret)', ok: 1 } });
    expect(auditParams(['not', 'an', 'object'])).toEqual({});
  });
});
