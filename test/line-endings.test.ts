/** relay/smtp/line-endings.ts against a one-line reference, with every way of cutting the data into chunks. */
import { describe, expect, it } from 'vitest';
import { LineEndingFixer } from '../relay/smtp/line-endings.ts';

const reference = (s: string) => ({ out: s.replace(/\r\n|\r|\n/g, '\r\n'), bare: /\r(?!\n)|(?<!\r)\n/.test(s) });

function viaFixer(chunks: string[]): { out: string; bare: boolean } {
  const f = new LineEndingFixer();
  const parts = chunks.map((c) => f.push(Buffer.from(c, 'latin1')));
  parts.push(f.end());
  return { out: Buffer.concat(parts).toString('latin1'), bare: f.sawBare };
}

describe('LineEndingFixer', () => {
  const samples = ['a\r\nb\r\n', 'a\nb\n', 'a\rb\r', '\r\n\r\n', '\r\r\n\n', '\n\r', 'x\r', '\r', '\n', '', 'abc', 'a\r\n\rb\n\r\nc'];

  it.each(samples)('matches the reference for %j cut at every point', (s) => {
    const want = reference(s);
    expect(viaFixer([s])).toEqual(want);
    for (let i = 0; i <= s.length; i++) {
      for (let j = i; j <= s.length; j++) {
        expect(viaFixer([s.slice(0, i), s.slice(i, j), s.slice(j)]), `cut at ${i},${j}`).toEqual(want);
      }
    }
  });

  it('matches the reference on random data in random chunks', () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const alphabet = ['\r', '\n', 'a', '.', ' '];
    for (let n = 0; n < 500; n++) {
      const s = Array.from({ length: Math.floor(rnd() * 40) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
      const chunks: string[] = [];
      for (let i = 0; i < s.length; ) {
        const k = 1 + Math.floor(rnd() * 5);
        chunks.push(s.slice(i, i + k));
        i += k;
      }
      expect(viaFixer(chunks), JSON.stringify(chunks)).toEqual(reference(s));
    }
  });

  it('returns the same buffer when nothing needs fixing', () => {
    const f = new LineEndingFixer();
    const b = Buffer.from('Subject: x\r\n\r\nbody\r\n');
    expect(f.push(b)).toBe(b);
    expect(f.sawBare).toBe(false);
  });
});
