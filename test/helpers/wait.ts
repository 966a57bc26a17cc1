/** Bounded polling for conditions the relay reaches asynchronously (a close seen by the server, a file removed). */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 3000, stepMs = 10): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
