/**
 * The time axis of the charts (pure, so that a test can measure the labels with the browser's own fonts). uPlot puts
 * ticks at least `space` CSS pixels apart (50 by default), but a "19:01:40" label in its 12 px font is about 50 px
 * wide: at 1280x720, three minutes after a restart, the labels ran into each other ("19:01:4019:01:50...").
 */
export const X_AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif';
/** the least room between two ticks: the widest label ("00:00:00") and a clear gap */
export const X_AXIS_SPACE = 84;
