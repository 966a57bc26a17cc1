/** Types of segment-commit.mjs (plain JavaScript so the commit worker starts without the TypeScript loader). */
export type CommitStep = 'open' | 'write' | 'sync' | 'rename' | 'dirsync';
/** A test's hook before each commit step; what it throws fails the step. A promise it returns is waited for only by publishSegment. */
export type StepHook = (op: CommitStep, file: string, messages?: number) => void | Promise<void>;

export function publishSegmentSync(tmp: string, target: string, data: Uint8Array, dirFd: number, dir: string, messages: number, inject?: StepHook): void;

export function publishSegment(tmp: string, target: string, data: Uint8Array, dirFd: number, dir: string, messages: number, inject?: StepHook): Promise<void>;

export function crashHookFromEnv(): StepHook | undefined;
