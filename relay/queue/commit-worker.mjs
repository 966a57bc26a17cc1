// The commit worker thread (relay/queue/committer.ts): one durable spool file (a segment, or a large message's own
// file) per request, answered once it is in queue/ and the directory is fsynced. Requests queue up in order; the worker never decides anything else.
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { commitFileSync, crashHookFromEnv } from './commit-steps.mjs';

const { queueDir } = workerData;
const dirFd = fs.openSync(queueDir, 'r');
const crash = crashHookFromEnv();

parentPort.on('message', (m) => {
  let reply;
  try {
    commitFileSync(m.tmp, m.target, new Uint8Array(m.data), dirFd, queueDir, m.messages, m.append, crash);
    reply = { id: m.id, ok: true };
  } catch (err) {
    reply = { id: m.id, ok: false, code: typeof err?.code === 'string' ? err.code : null, message: String(err?.message ?? err) };
  }
  parentPort.postMessage(reply);
});
