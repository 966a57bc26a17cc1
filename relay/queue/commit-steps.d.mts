/** Types of commit-steps.mjs (plain JavaScript so the commit worker starts without the TypeScript loader). */
export type CommitStep = 'open' | 'write' | 'sync' | 'rename' | 'dirsync';
/** A test's hook before each commit step; what it throws fails the step. A promise it returns is waited for only by commitFile. */
export type StepHook = (op: CommitStep, file: string, messages?: number) => void | Promise<void>;

/** Blocking: the commit worker's way. `append`: add `data` to the temp file a large message was streamed into. */
export function commitFileSync(tmp: string, target: string, data: Uint8Array, dirFd: number, dir: string, messages: number, append: boolean, inject?: StepHook): void;

/** The same steps on the calling thread, waiting for a promise the hook returns: tests that inject faults. */
export function commitFile(tmp: string, target: string, data: Uint8Array, dirFd: number, dir: string, messages: number, append: boolean, inject?: StepHook): Promise<void>;

export function crashHookFromEnv(): StepHook | undefined;
