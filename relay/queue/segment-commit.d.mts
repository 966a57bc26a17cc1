/** Types of segment-commit.mjs (plain JavaScript so the commit worker starts without the TypeScript loader). */
export type CommitStep = 'open' | 'write' | 'sync' | 'rename' | 'dirsync';
export type StepHook = (op: CommitStep, file: string, messages?: number) => void;

export function publishSegmentSync(tmp: string, target: string, data: Uint8Array, dirFd: number, dir: string, messages: number, inject?: StepHook): void;

export function crashHookFromEnv(): StepHook | undefined;
