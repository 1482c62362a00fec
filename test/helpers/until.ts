import assert from 'node:assert/strict';

/**
 * Ask again until `check` passes. `seconds` is a deadline for a hung system,
 * not a timing assertion: speed is measured in bench/, never here.
 */
export async function until<T>(what: string, get: () => T | Promise<T>, check: (v: T) => boolean, seconds = 180, everyMs = 300): Promise<T> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await get();
    if (check(v)) return v;
    if (Date.now() > end) assert.fail(`${what}: not reached within ${seconds} s; last: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
