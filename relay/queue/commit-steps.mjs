// The end of every commit to the spool, a segment or a large message's own file, as blocking calls in a row: create
// the temp file (or, for a large message already streamed there, reopen it), write, fdatasync, close, rename into
// queue/, fsync the directory. It runs in the commit worker thread (commit-worker.mjs, started by committer.ts), so
// the relay's event loop never waits for the disk, and on the calling thread when a test injects faults.
//
// Plain JavaScript, not TypeScript: a worker thread does not inherit the relay's TypeScript loader, and registering it
// there costs ~200 ms at every start; this file loads in a few. Its types are in commit-steps.d.mts.
import fs from 'node:fs';

/**
 * The steps of writing `data` durably as `target`: temp file `tmp` (created, never overwritten; with `append`, the
 * temp file the message was streamed into, reopened to add `data` at its end), fdatasync, rename, fsync of the
 * directory open as `dirFd` (`dir` names it). Before each step it yields [op, file]; a driver runs its hook there, and
 * makes the step fail by throwing the hook's error into it (steps.throw). On any failure nothing is left: the temp
 * file or the renamed target is unlinked, then the error is thrown on.
 */
function* commitSteps(tmp, target, data, dirFd, dir, append) {
  if (!append) yield ['open', tmp];
  // appending: never create (a temp file that is gone means the message is not all there)
  const fd = fs.openSync(tmp, append ? fs.constants.O_WRONLY | fs.constants.O_APPEND : 'wx', 0o600);
  let open = true;
  let renamed = false;
  try {
    yield ['write', tmp];
    // a nearly full disk may take part of a write; the next one then fails with ENOSPC
    for (let off = 0; off < data.byteLength; ) off += fs.writeSync(fd, data, off, data.byteLength - off);
    yield ['sync', tmp];
    fs.fdatasyncSync(fd);
    open = false;
    fs.closeSync(fd);
    yield ['rename', target];
    fs.renameSync(tmp, target);
    renamed = true;
    yield ['dirsync', dir];
    fs.fsyncSync(dirFd);
  } catch (err) {
    if (open) {
      try {
        fs.closeSync(fd);
      } catch {
        // the write error is the one to report
      }
    }
    try {
      fs.unlinkSync(renamed ? target : tmp);
    } catch {
      // already gone
    }
    throw err;
  }
}

/**
 * Writes `data` durably as `target` (see commitSteps), blocking: the commit worker's way. `inject(op, file, messages)`
 * runs before each step; what it throws fails the commit there (what it returns is not waited for).
 */
export function commitFileSync(tmp, target, data, dirFd, dir, messages, append, inject) {
  const steps = commitSteps(tmp, target, data, dirFd, dir, append);
  for (let s = steps.next(); !s.done; ) {
    let failed = false;
    let error;
    try {
      inject?.(s.value[0], s.value[1], messages);
    } catch (err) {
      failed = true;
      error = err;
    }
    s = failed ? steps.throw(error) : steps.next();
  }
}

/**
 * The same steps on the calling thread, for a test's fault hook: a promise the hook returns is waited for before the
 * step runs (a rejection fails the step), so a test can run other queue work (start(), say) while a segment is at
 * a given step, as it could while the commit worker is there.
 */
export async function commitFile(tmp, target, data, dirFd, dir, messages, append, inject) {
  const steps = commitSteps(tmp, target, data, dirFd, dir, append);
  for (let s = steps.next(); !s.done; ) {
    let failed = false;
    let error;
    try {
      await inject?.(s.value[0], s.value[1], messages);
    } catch (err) {
      failed = true;
      error = err;
    }
    s = failed ? steps.throw(error) : steps.next();
  }
}

/**
 * Test hook for the crash tests (test/queue-crash.test.ts): RELAY_WARDEN_TEST_CRASH="rename:N" or "dirsync:N" kills
 * the process with SIGKILL at the commit step that brings the count of messages committed through that step to N.
 * Each thread counts its own messages (commits in the commit worker, the spool's probe writes on the main thread),
 * and a commit worker started again after one ended counts from zero.
 */
export function crashHookFromEnv() {
  const m = /^(rename|dirsync):(\d+)$/.exec(process.env.RELAY_WARDEN_TEST_CRASH ?? '');
  if (!m) return undefined;
  const at = m[1];
  let left = Number(m[2]);
  return (op, _file, messages = 1) => {
    if (op === at && (left -= messages) <= 0) process.kill(process.pid, 'SIGKILL');
  };
}
