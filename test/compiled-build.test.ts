// bin/compiled.js: when bin/storm.js may run the compiled build instead of the sources.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { tempDir } from './helpers/tmp.ts';
import { compiledEntry, writeStamp } from '../bin/compiled.js';

test('the compiled CLI runs only while its build matches the sources exactly', (t) => {
  const root = tempDir(t);
  for (const d of ['bin', 'lib', 'manager/x', '.build/js/bin']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'bin', 'storm.ts'), 'export {};\n');
  writeFileSync(join(root, 'lib', 'a.ts'), 'export const a = 1;\n');
  writeFileSync(join(root, 'manager', 'x', 'b.ts'), 'export const b = 1;\n');
  assert.equal(compiledEntry(root, 'storm'), undefined, 'no build yet');
  writeFileSync(join(root, '.build', 'js', 'bin', 'storm.js'), 'export {};\n');
  writeStamp(root);
  const url = pathToFileURL(join(root, '.build', 'js', 'bin', 'storm.js')).href;
  assert.equal(compiledEntry(root, 'storm'), url);
  assert.equal(compiledEntry(root, 'stormd'), undefined, 'an entry the build does not have');

  // Tests and other files do not count; any source edit does, even to an older time.
  writeFileSync(join(root, 'lib', 'a.test.ts'), 'test\n');
  writeFileSync(join(root, 'lib', 'notes.md'), 'notes\n');
  assert.equal(compiledEntry(root, 'storm'), url);
  utimesSync(join(root, 'lib', 'a.ts'), new Date(2000, 0, 1), new Date(2000, 0, 1));
  assert.equal(compiledEntry(root, 'storm'), undefined, 'an edited source (older mtime) makes the build stale');
  writeStamp(root);
  assert.equal(compiledEntry(root, 'storm'), url);
  writeFileSync(join(root, 'manager', 'x', 'c.ts'), 'export const c = 1;\n');
  assert.equal(compiledEntry(root, 'storm'), undefined, 'a new source');
  writeStamp(root);
  rmSync(join(root, 'manager', 'x', 'b.ts'));
  assert.equal(compiledEntry(root, 'storm'), undefined, 'a removed source');
  writeFileSync(join(root, '.build', 'js', 'stamp.json'), 'not json');
  assert.equal(compiledEntry(root, 'storm'), undefined, 'an unreadable stamp');
});
