/**
 * A uPlot time-series chart (x in ms since the epoch) that follows its container's width and the OS colour scheme.
 *
 *   <TimeChart x={times} series={[{ label: 'accepted', values, color: 'var(--chart-accepted)' }]} height={240} />
 *
 * Colours may be CSS variables: they are resolved when the chart is built, and it is rebuilt when the scheme flips.
 */
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import { X_AXIS_FONT, X_AXIS_SPACE } from './chart-axis.ts';

export interface ChartSeries {
  label: string;
  values: (number | null)[];
  color: string;
  fill?: boolean;
  /** line width in CSS pixels (default 1.5) */
  width?: number;
}

export interface TimeChartProps {
  /** ms since the epoch, ascending */
  x: number[];
  series: ChartSeries[];
  height?: number;
  /** y axis label */
  yLabel?: string;
  /** fixed x range in ms [from, to] (e.g. the last 15 minutes); default: the data */
  xRange?: [number, number];
  ariaLabel?: string;
}

function resolveColor(el: Element, c: string): string {
  const m = /^var\((--[\w-]+)\)$/.exec(c.trim());
  if (!m) return c;
  return getComputedStyle(el).getPropertyValue(m[1]!).trim() || '#888';
}

function withAlpha(color: string, alpha: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(color);
  if (!m) return color;
  const n = parseInt(m[1]!, 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function useColorScheme(): 'light' | 'dark' {
  const q = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  const [dark, setDark] = useState(() => q?.matches ?? false);
  useEffect(() => {
    if (!q) return;
    const on = () => setDark(q.matches);
    q.addEventListener('change', on);
    return () => q.removeEventListener('change', on);
  }, [q]);
  return dark ? 'dark' : 'light';
}

function clockLabel(seconds: number, increment: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  return increment >= 60 ? hm : `${hm}:${two(d.getSeconds())}`;
}

export function TimeChart({ x, series, height = 240, yLabel, xRange, ariaLabel }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const scheme = useColorScheme();
  const labels = series.map((s) => `${s.label}:${s.color}:${s.fill ? 1 : 0}:${s.width ?? ''}`).join('|');
  const data = (): uPlot.AlignedData => [x.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData;
  const range = useRef(xRange);
  range.current = xRange;

  // build (again when the series set or the colour scheme changes)
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fg = resolveColor(el, 'var(--fg-muted)');
    const grid = resolveColor(el, 'var(--chart-grid)');
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: {
        x: { time: true, range: (_u, min, max) => (range.current ? [range.current[0] / 1000, range.current[1] / 1000] : [min, max]) },
        y: { range: (_u, _min, max) => [0, Math.max(5, Math.ceil(max * 1.15))] },
      },
      axes: [
        {
          stroke: fg,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          // one line of local clock time per tick (uPlot's default adds a second date line that overlaps)
          values: (_u, splits, _axis, _space, incr) => splits.map((s) => clockLabel(s, incr)),
          // ticks far enough apart for an HH:MM:SS label each (chart-axis.ts)
          font: X_AXIS_FONT,
          space: X_AXIS_SPACE,
        },
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, label: yLabel, labelSize: yLabel ? 20 : 0, size: 48 },
      ],
      series: [
        {},
        ...series.map((s) => {
          const c = resolveColor(el, s.color);
          return { label: s.label, stroke: c, width: s.width ?? 1.5, fill: s.fill ? withAlpha(c, 0.15) : undefined, points: { show: false } } satisfies uPlot.Series;
        }),
      ],
    };
    const u = new uPlot(opts, data(), el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // data is pushed by the effect below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [labels, scheme, height, yLabel]);

  useEffect(() => {
    plot.current?.setData(data());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [x, series, xRange?.[0], xRange?.[1]]);

  return <div ref={box} className="chart-box" style={{ minHeight: height }} role="img" aria-label={ariaLabel ?? series.map((s) => s.label).join(', ')} />;
}
