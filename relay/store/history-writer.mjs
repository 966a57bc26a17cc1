// The history writer thread (relay/store/history.ts): it writes the bus's events into DIR/history.sqlite, so the
// SQLite inserts (four indexes per row) stay off the thread that runs the SMTP sessions. Batches arrive in order, as
// the JSON of an event array; after each one, stored or not, it raises DONE in the shared array and wakes a reader
// waiting for it. It decides nothing else: what to write, when, and what to do if it stops is the main thread's.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { CLOSED, DONE, FAILED, STOPPED, configureConnection, eventInserter } from './history-rows.mjs';

const state = new Int32Array(workerData.state);
// However this thread ends (its file will not open, an uncaught error), a main thread blocked in Atomics.wait on DONE
// or CLOSED learns it now: the Worker's 'exit' event needs the main thread's event loop, which that wait is blocking.
process.on('exit', () => {
  Atomics.store(state, STOPPED, 1);
  Atomics.notify(state, DONE);
  Atomics.notify(state, CLOSED);
});
const db = new Database(workerData.file, { timeout: 10_000 });
configureConnection(db);
const insert = eventInserter(db);
const stringify = (e) => JSON.stringify(e);
const write = db.transaction((events) => insert(events, stringify));
// For tests only (HistoryOptions.writerGate): while slot 0 is not 0, each batch is held before it is written, as a
// slow disk would hold it, with its seq in slot 1.
const gate = workerData.gate ? new Int32Array(workerData.gate) : null;
function held(seq) {
  for (let g; (g = Atomics.load(gate, 0)) !== 0; ) {
    Atomics.store(gate, 1, seq);
    Atomics.notify(gate, 1);
    Atomics.wait(gate, 0, g);
  }
}

parentPort.on('message', (m) => {
  if (m.close) {
    db.close();
    Atomics.store(state, CLOSED, 1);
    Atomics.notify(state, CLOSED);
    parentPort.close();
    return;
  }
  if (gate) held(m.seq);
  try {
    write(JSON.parse(m.json));
  } catch (err) {
    Atomics.add(state, FAILED, m.count);
    parentPort.postMessage({ failed: m.count, message: String(err?.message ?? err) });
  }
  Atomics.store(state, DONE, m.seq);
  Atomics.notify(state, DONE);
});
