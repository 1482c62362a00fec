import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The package root (the folder holding package.json), from the sources or from their build in .build/js/lib. */
export const PACKAGE_ROOT = basename(dirname(dirname(here))) === '.build' ? join(here, '..', '..', '..') : join(here, '..');

/** A git checkout runs the embedded default with state beside it; an install uses /var/lib/storm. */
export function defaultStateDir(): string {
  return existsSync(join(PACKAGE_ROOT, '.git')) ? join(PACKAGE_ROOT, '.storm') : '/var/lib/storm';
}

export const CONTROL_SOCKET = 'control.sock';
export const controlSocketPath = (state: string): string => join(state, CONTROL_SOCKET);
