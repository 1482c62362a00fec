import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding package.json). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** A git checkout runs the embedded default with state beside it; an install uses /var/lib/storm. */
export function defaultStateDir(): string {
  return existsSync(join(PACKAGE_ROOT, '.git')) ? join(PACKAGE_ROOT, '.storm') : '/var/lib/storm';
}

export const CONTROL_SOCKET = 'control.sock';
export const controlSocketPath = (state: string): string => join(state, CONTROL_SOCKET);
