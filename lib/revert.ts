/**
 * Undo list for multi-step work: register an undo after each step; on failure
 * `revert()` runs them newest first. Call `success()` when all steps are done.
 */
export class Revert {
  readonly #steps: { name: string; undo: () => Promise<void> | void }[] = [];
  #done = false;

  add(name: string, undo: () => Promise<void> | void): void {
    this.#steps.push({ name, undo });
  }

  success(): void {
    this.#done = true;
    this.#steps.length = 0;
  }

  /** Undo every registered step, newest first; returns the steps whose undo failed. */
  async revert(): Promise<{ name: string; error: string }[]> {
    if (this.#done) return [];
    const failed: { name: string; error: string }[] = [];
    while (this.#steps.length) {
      const s = this.#steps.pop()!;
      try {
        await s.undo();
      } catch (e) {
        failed.push({ name: s.name, error: (e as Error).message });
      }
    }
    return failed;
  }
}

/** Run `fn` with a Revert; on throw, undo what was done and rethrow. */
export async function withRevert<T>(fn: (r: Revert) => Promise<T>): Promise<T> {
  const r = new Revert();
  try {
    const out = await fn(r);
    r.success();
    return out;
  } catch (e) {
    await r.revert();
    throw e;
  }
}
