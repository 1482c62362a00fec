#!/usr/bin/env node
// Entry shim: the compiled CLI when a build matches the sources (bin/compiled.js),
// else load TypeScript through tsx; then hand over to the composition root.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledEntry } from './compiled.js';

const compiled = compiledEntry(dirname(dirname(fileURLToPath(import.meta.url))), 'storm');
if (compiled) await import(compiled);
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./storm.ts');
}
