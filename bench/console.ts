/**
 * Console bench (issue 5): the real renderer build in Debian's Chromium (playwright-core), the Live traffic view with
 * events injected at 1,000 and 5,000 per second through the page's bridge (generated in the page, in batches every
 * 100 ms like the relay's events.batch), measured with a requestAnimationFrame probe: frames per second, the longest
 * frame, the 99th percentile frame, frames over 50 ms; and the JS heap (after a forced GC) when the store reaches its
 * cap and again minutes later with the stream still running (memory flat = the ring buffer holds). The baseline is the
 * same view with no stream, in the same run.
 *
 * Usage: npx tsx bench/console.ts [--seconds N] [--memory-seconds N]   (or call benchConsole() from a runner)
 * Needs dist/renderer (npm run build:renderer) and /usr/bin/chromium.
 */
import os from 'node:os';
import type { Page } from 'playwright-core';
import { launchChromium, serveDist } from '../test/e2e/harness.ts';
import { runIfMain } from './lib.ts';

export interface ConsoleBenchOptions {
  /** seconds measured per rate (default 20) */
  seconds?: number;
  /** seconds of 5,000 events/s at the cap between the two heap samples (default 150) */
  memorySeconds?: number;
}

/** In the page: a bridge that says "connected" and streams synthetic, schema-shaped events at a set rate. */
export const FAKE_BRIDGE = () => {
  type Cb = (p: unknown) => void;
  const subs: Record<string, Set<Cb>> = {};
  const emit = (ch: string, p: unknown) => subs[ch]?.forEach((cb) => cb(p));
  const state = {
    status: 'connected',
    profileId: 'bench',
    profileName: 'Bench',
    message: 'Connected to bench.relay (bench).',
    role: 'admin',
    tokenName: 'bench',
    certificate: null,
    pinnedFingerprint: null,
    attempt: 0,
    retryAt: null,
    relay: { hostname: 'bench.relay', smtp: '127.0.0.1:25' },
    since: Date.now(),
  };
  let id = 1;
  let generated = 0;
  let timer: ReturnType<typeof setInterval> | null = null;
  const make = (n: number) => {
    const out: unknown[] = [];
    const at = Date.now();
    for (let i = 0; i < n; i++, id++) {
      const s = Math.floor(id / 5);
      const ip = `198.51.${(s >> 8) & 255}.${s & 255}`;
      const base = { id, at, sessionId: `s${s}`, ip };
      switch (id % 5) {
        case 0:
          out.push({ ...base, kind: 'connect', hostname: `host${s}.example.net` });
          break;
        case 1:
          out.push({ ...base, kind: 'mail', from: `user${s}@example.org` });
          break;
        case 2:
          out.push({ ...base, kind: 'rcpt', to: 'alice@example.com', local: true });
          break;
        case 3:
          out.push(
            s % 7 === 0
              ? { ...base, kind: 'rejected', stage: 'mail', rule: 'limits.messagesPerHour', code: 450, text: `4.7.1 Too much mail from ${ip}: 100 messages in the last hour (limit 100). Try again later.`, enforced: true }
              : { ...base, kind: 'accepted', queueId: `Q${id}`, size: 1200 + (id % 5000), from: `user${s}@example.org`, to: ['alice@example.com'] },
          );
          break;
        default:
          out.push({ ...base, kind: 'disconnect', messages: 1 });
      }
    }
    return out;
  };
  const g = globalThis as unknown as Record<string, unknown>;
  g.__bench = {
    setRate(rate: number) {
      if (timer) clearInterval(timer);
      timer = null;
      if (rate <= 0) return;
      let carry = 0;
      timer = setInterval(() => {
        carry += rate / 10;
        const n = Math.floor(carry);
        carry -= n;
        generated += n;
        emit('events', { events: make(n) });
      }, 100);
    },
    generated: () => generated,
    frames: { t: [] as number[], on: false },
    loaf: [] as { duration: number; script: number; layout: number; render: number; top: string }[],
    startFrames() {
      const b = g.__bench as { frames: { t: number[]; on: boolean }; loaf: unknown[]; observer?: { disconnect(): void } };
      const f = b.frames;
      f.t = [];
      f.on = true;
      b.loaf = [];
      // long animation frames (> 50 ms): where the time went
      const PO = g.PerformanceObserver as
        | (new (cb: (l: { getEntries(): unknown[] }) => void) => { observe(o: object): void; disconnect(): void })
        | undefined;
      try {
        b.observer?.disconnect();
        const o = PO ? new PO((list) => {
          for (const e of list.getEntries() as { duration: number; startTime: number; renderStart: number; styleAndLayoutStart: number; scripts: { duration: number; invoker: string; sourceFunctionName?: string }[] }[]) {
            const script = e.scripts.reduce((n, x) => n + x.duration, 0);
            const top = e.scripts.slice().sort((a, c) => c.duration - a.duration)[0];
            b.loaf.push({
              duration: e.duration,
              script,
              layout: e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0,
              render: e.renderStart ? e.startTime + e.duration - e.renderStart : 0,
              top: top ? `${top.invoker}${top.sourceFunctionName ? ` ${top.sourceFunctionName}` : ''} ${Math.round(top.duration)} ms` : '',
            });
          }
        }) : undefined;
        o?.observe({ type: 'long-animation-frame' });
        b.observer = o;
      } catch {
        // not supported: no breakdown
      }
      const raf = g.requestAnimationFrame as (cb: (ts: number) => void) => number;
      const loop = (ts: number) => {
        f.t.push(ts);
        if (f.on) raf(loop);
      };
      raf(loop);
    },
    stopFrames(): number[] {
      const f = (g.__bench as { frames: { t: number[]; on: boolean } }).frames;
      f.on = false;
      return f.t;
    },
  };
  g.rwBridge = {
    invoke: async (op: string) => {
      if (op === 'connection.state') return state;
      if (op === 'profiles.list') return [];
      if (op === 'profiles.storageWarning') return null;
      if (op === 'call') throw new Error(JSON.stringify({ code: 'closed', message: 'bench: no relay behind this page' }));
      return null;
    },
    subscribe: (ch: string, cb: Cb) => {
      (subs[ch] ??= new Set()).add(cb);
      return () => subs[ch]!.delete(cb);
    },
  };
};

interface FrameStats {
  fps: number;
  longest: number;
  p99: number;
  over50: number;
  frames: number;
}

function frameStats(t: number[]): FrameStats {
  const d: number[] = [];
  for (let i = 1; i < t.length; i++) d.push(t[i]! - t[i - 1]!);
  const sorted = d.slice().sort((a, b) => a - b);
  const span = (t[t.length - 1]! - t[0]!) / 1000;
  return {
    fps: span > 0 ? d.length / span : 0,
    longest: sorted[sorted.length - 1] ?? 0,
    p99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0,
    over50: d.filter((x) => x > 50).length,
    frames: d.length,
  };
}

interface Loaf {
  duration: number;
  script: number;
  layout: number;
  render: number;
  top: string;
}

async function measure(page: Page, seconds: number): Promise<FrameStats & { loaf: Loaf[] }> {
  await page.evaluate(() => (globalThis as unknown as { __bench: { startFrames(): void } }).__bench.startFrames());
  await page.waitForTimeout(seconds * 1000);
  const t = await page.evaluate(() => (globalThis as unknown as { __bench: { stopFrames(): number[] } }).__bench.stopFrames());
  const loaf = await page.evaluate(() => (globalThis as unknown as { __bench: { loaf: Loaf[] } }).__bench.loaf);
  return { ...frameStats(t), loaf };
}

/** "112 ms (script 12, layout 3)" for the longest frames the browser reported */
function describeLoaf(l: Loaf[]): string {
  const top = l.slice().sort((a, b) => b.duration - a.duration).slice(0, 3);
  return top.map((x) => `${Math.round(x.duration)} ms (script ${Math.round(x.script)}${x.top ? `, most in ${x.top}` : ''}, style+layout+paint ${Math.round(x.layout)})`).join('; ');
}

const setRate = (page: Page, rate: number) => page.evaluate((r) => (globalThis as unknown as { __bench: { setRate(r: number): void } }).__bench.setRate(r), rate);

async function counts(page: Page): Promise<string> {
  return ((await page.locator('[data-testid="live-counts"]').textContent()) ?? '').trim();
}

export async function benchConsole(opts: ConsoleBenchOptions = {}): Promise<string> {
  const seconds = opts.seconds ?? 20;
  const memorySeconds = opts.memorySeconds ?? 150;
  const site = await serveDist();
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // tsx (esbuild keepNames) may wrap nested functions in __name(): give the page a no-op one
    await page.addInitScript({ content: `var __name = (f) => f;\n(${FAKE_BRIDGE.toString()})();` });
    await page.goto(site.url);
    await page
      .locator('.statusbar[data-status="connected"]')
      .waitFor({ timeout: 15_000 })
      .catch((err: Error) => {
        throw new Error(`${err.message}\npage errors: ${pageErrors.join('; ')}`);
      });
    await page.keyboard.press('Control+3');
    await page.locator('[data-testid="live-view"]').waitFor();
    await page.mouse.move(5, 5); // the pointer off the rows: the table follows the stream
    const cdp = await context.newCDPSession(page);
    const heap = async () => {
      await cdp.send('HeapProfiler.collectGarbage');
      const h = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number };
      return h.usedSize / 1024 ** 2;
    };

    const rows: string[][] = [];
    const long: string[] = [];
    const row = (label: string, s: FrameStats & { loaf: Loaf[] }, base: FrameStats | null, note: string) => {
      rows.push([label, s.fps.toFixed(1), base ? (s.fps / base.fps).toFixed(2) : '1.00', s.longest.toFixed(1), s.p99.toFixed(1), String(s.over50), note]);
      if (s.loaf.length) long.push(`- ${label}: ${s.loaf.length} long animation frames; the longest: ${describeLoaf(s.loaf)}`);
    };

    const idle = await measure(page, Math.min(10, seconds));
    row('no stream (baseline)', idle, null, `${Math.min(10, seconds)} s`);
    const heapIdle = await heap();

    await setRate(page, 1000);
    await page.waitForTimeout(1000);
    const r1 = await measure(page, seconds);
    row('1,000 events/s', r1, idle, `${seconds} s; ${await counts(page)}`);

    await setRate(page, 5000);
    await page.waitForTimeout(1000);
    const r5 = await measure(page, seconds);
    row('5,000 events/s', r5, idle, `${seconds} s; ${await counts(page)}`);

    // at the cap: fill it, then run on and compare the heap
    for (let i = 0; i < 30 && !/^50,000 shown/.test(await counts(page)); i++) await page.waitForTimeout(1000);
    const heapAtCap = await heap();
    const t0 = Date.now();
    const rCap = await measure(page, memorySeconds);
    const heapLater = await heap();
    row('5,000 events/s at the cap (50,000 held)', rCap, idle, `${memorySeconds} s; ${await counts(page)}`);
    const generated = await page.evaluate(() => (globalThis as unknown as { __bench: { generated(): number } }).__bench.generated());
    await setRate(page, 0);

    const table = [
      '| live view | fps | vs baseline | longest frame (ms) | p99 frame (ms) | frames > 50 ms | duration; what the view showed |',
      '|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ];
    const mem = [
      '',
      '| JS heap after GC | MiB |',
      '|---|---|',
      `| no stream, empty store | ${heapIdle.toFixed(1)} |`,
      `| store at its cap (50,000 events) | ${heapAtCap.toFixed(1)} |`,
      `| ${Math.round((Date.now() - t0) / 1000)} s later, 5,000 events/s still streaming | ${heapLater.toFixed(1)} (${heapLater >= heapAtCap ? '+' : ''}${(heapLater - heapAtCap).toFixed(1)}) |`,
    ];
    const total = Math.round(Math.min(10, seconds) + 2 * seconds + memorySeconds + 12);
    return [
      `Console live view in Chromium ${browser.version()} (headless, software rendering), viewport 1280x800, events generated in the page and delivered through the bridge's events channel in 100 ms batches (${generated.toLocaleString('en-US')} events in all, about ${total} s). Machine: ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}.`,
      '',
      ...table,
      ...mem,
      '',
      ...(long.length ? ['Frames over 50 ms as the browser reports them (long-animation-frame entries: time in scripts vs the rest, which includes garbage collection and anything else the machine ran):', ...long, ''] : []),
      ...(memorySeconds < 600 ? ['The issue asks for 10 minutes at the cap; this run uses the duration shown to keep the bench under five minutes (pass --memory-seconds 600 for the full run).'] : []),
    ].join('\n');
  } finally {
    await browser.close();
    await site.close();
  }
}

runIfMain(import.meta.url, (arg) => benchConsole({ seconds: arg('--seconds'), memorySeconds: arg('--memory-seconds') }));
