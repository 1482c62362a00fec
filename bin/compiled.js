// The CLI's compiled JavaScript (.build/js, made by scripts/build-js): node
// loads it without the TypeScript loader, which costs every `storm` call
// ~0.5 s or more. It is used only while it matches the sources exactly: the
// build records the path, size and mtime of every source file, and any
// difference (an edit, a checkout, a file added or removed) means the
// sources run through tsx as before. A stale build is never run.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The folders compiled into .build/js (tsconfig.build.json includes the same). */
export const SOURCE_DIRS = ['bin', 'lib', 'manager', 'tui', 'stormd'];
export const BUILD_DIR = join('.build', 'js');

/** Digest of every compiled source's path, size and mtime under `root`. */
export function sourceDigest(root) {
  const h = createHash('sha256');
  const walk = (rel) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = join(rel, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) {
        const st = statSync(join(root, p));
        h.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
  };
  for (const d of SOURCE_DIRS) if (existsSync(join(root, d))) walk(d);
  return h.digest('hex');
}

/** After a build: record what it was built from. */
export function writeStamp(root) {
  writeFileSync(join(root, BUILD_DIR, 'package.json'), '{"type":"module"}\n');
  writeFileSync(join(root, BUILD_DIR, 'stamp.json'), JSON.stringify({ sources: sourceDigest(root) }) + '\n');
}

/** URL of the compiled `bin/<name>.js` when the build matches the sources; otherwise undefined. */
export function compiledEntry(root, name) {
  try {
    const stamp = JSON.parse(readFileSync(join(root, BUILD_DIR, 'stamp.json'), 'utf8'));
    const entry = join(root, BUILD_DIR, 'bin', `${name}.js`);
    if (stamp.sources !== sourceDigest(root) || !existsSync(entry)) return undefined;
    return pathToFileURL(entry).href;
  } catch {
    return undefined; // no build, or an unreadable one: run the sources
  }
}
