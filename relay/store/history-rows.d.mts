/** Types of history-rows.mjs (plain JavaScript so the history writer thread starts without the TypeScript loader). */
import type Database from 'better-sqlite3';
import type { RelayEvent } from '../../shared/events.ts';

/** WAL, synchronous NORMAL, temp store in memory: the settings of every connection to the history file. */
export function configureConnection(db: Database.Database): void;
export const ROWS_PER_INSERT: number;
/** Prepares the INSERT OR REPLACE statements; the function it returns writes the rows (in the caller's transaction). */
export function eventInserter(db: Database.Database): (events: readonly RelayEvent[], jsonOf: (e: RelayEvent) => string) => void;
export const DONE: number;
export const FAILED: number;
export const CLOSED: number;
export const STOPPED: number;
export const WRITER_SLOTS: number;
