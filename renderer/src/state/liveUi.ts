/**
 * The live view's UI state, outside React so the shell's shortcuts (Space / Ctrl+P pause, Ctrl+F filter) and other
 * views ("Everything from this IP") can drive it, and so it survives switching views.
 */
import { useSyncExternalStore } from 'react';
import { EMPTY_FILTER, type LiveFilter } from './filter.ts';

export interface LiveUiState {
  filter: LiveFilter;
  paused: boolean;
  /** bumps when something asks the filter box to take the focus */
  focusRequest: number;
}

let state: LiveUiState = { filter: EMPTY_FILTER, paused: false, focusRequest: 0 };
const listeners = new Set<() => void>();
function set(patch: Partial<LiveUiState>): void {
  state = { ...state, ...patch };
  for (const l of listeners) l();
}

export const liveUi = {
  get: (): LiveUiState => state,
  subscribe(fn: () => void): () => void {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  setFilter(patch: Partial<LiveFilter>): void {
    set({ filter: { ...state.filter, ...patch } });
  },
  clearFilter(): void {
    set({ filter: EMPTY_FILTER });
  },
  setPaused(paused: boolean): void {
    if (paused !== state.paused) set({ paused });
  },
  togglePause(): void {
    set({ paused: !state.paused });
  },
  requestFilterFocus(): void {
    set({ focusRequest: state.focusRequest + 1 });
  },
};

export function useLiveUi(): LiveUiState {
  return useSyncExternalStore(liveUi.subscribe, liveUi.get);
}
