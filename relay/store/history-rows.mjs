// How event rows go into DIR/history.sqlite: shared by the relay's main thread (relay/store/history.ts) and the
// history writer thread (history-writer.mjs). Plain JavaScript, so the writer thread starts without the TypeScript loader.

/**
 * Every connection to the history file is set up here, so the main thread's and the writer thread's cannot differ.
 * synchronous NORMAL: history is not mail, losing the last moments in a power cut is acceptable, an fsync per batch is
 * not. temp_store MEMORY: each multi-row INSERT in a transaction needs a statement journal, which SQLite otherwise keeps
 * in a new temp file per statement (the writer thread once did: ~15 extra file writes per message under load).
 */
export function configureConnection(db) {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('temp_store = MEMORY');
}

/** Rows per INSERT statement: one call into SQLite per 64 events rather than per event. */
export const ROWS_PER_INSERT = 64;

export function eventInserter(db) {
  const one = db.prepare('INSERT OR REPLACE INTO events (id, at, kind, ip, session, json) VALUES (?, ?, ?, ?, ?, ?)');
  const block = db.prepare(
    `INSERT OR REPLACE INTO events (id, at, kind, ip, session, json) VALUES ${Array(ROWS_PER_INSERT).fill('(?, ?, ?, ?, ?, ?)').join(', ')}`,
  );
  const args = new Array(ROWS_PER_INSERT * 6);
  return (events, jsonOf) => {
    let i = 0;
    for (; i + ROWS_PER_INSERT <= events.length; i += ROWS_PER_INSERT) {
      for (let j = 0, k = 0; j < ROWS_PER_INSERT; j++) {
        const e = events[i + j];
        args[k++] = e.id;
        args[k++] = e.at;
        args[k++] = e.kind;
        args[k++] = e.ip;
        args[k++] = e.sessionId;
        args[k++] = jsonOf(e);
      }
      block.run(args);
    }
    for (; i < events.length; i++) {
      const e = events[i];
      one.run(e.id, e.at, e.kind, e.ip, e.sessionId, jsonOf(e));
    }
  };
}

/** Slots of the Int32Array the main thread and the writer share (a SharedArrayBuffer of WRITER_SLOTS * 4 bytes). */
export const DONE = 0; // the seq of the last batch the writer has finished (stored or failed)
export const FAILED = 1; // events the writer could not store, in all
export const CLOSED = 2; // 1 once the writer has closed its connection
export const STOPPED = 3; // 1 once the writer thread is ending, however (set from its process 'exit', with a notify)
export const WRITER_SLOTS = 4;
