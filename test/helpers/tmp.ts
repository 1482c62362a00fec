import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/**
 * A temporary directory removed when the test ends. Mode 0755 so that
 * libvirt's QEMU user can traverse it when a test boots guests from it.
 */
export function tempDir(t: TestContext, prefix = 'storm-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // mkdtemp makes 0700; guests' disk images under it must be reachable by libvirt-qemu.
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
