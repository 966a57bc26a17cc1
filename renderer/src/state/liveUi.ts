/**
 * The live view's UI state, outside React so the shell's shortcuts (Space / Ctrl+P pause, Ctrl+F filter) and other
 * views ("Everything from this IP") can drive it, and so it survives switching views (the filter, pause, and how long
 * "Trust this IP" trusts: chosen once, it holds for the session).
 */
import { useSyncExternalStore } from 'react';
import { EMPTY_FILTER, type LiveFilter } from './filter.ts';
import type { TrustExpiry } from './trust.ts';

export interface LiveUiState {
  filter: LiveFilter;
  paused: boolean;
  /** bumps when something asks the filter box to take the focus */
  focusRequest: number;
  /** how long a one-click "Trust this IP" trusts the address ("Trust lasts") */
  trustExpiry: TrustExpiry;
}

let state: LiveUiState = { filter: EMPTY_FILTER, paused: false, focusRequest: 0, trustExpiry: 'forever' };
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
  setTrustExpiry(trustExpiry: TrustExpiry): void {
    if (trustExpiry !== state.trustExpiry) set({ trustExpiry });
  },
};

export function useLiveUi(): LiveUiState {
  return useSyncExternalStore(liveUi.subscribe, liveUi.get);
}
