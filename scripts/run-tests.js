// Find every *.test.ts (unit tests beside the code, suites in test/) and run them
// with node's own test runner, TypeScript through tsx. Args filter by path substring.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOTS = ['lib', 'manager', 'tui', 'stormd', 'initrd', 'scripts', 'bench', 'test'];
const files = [];
const walk = (dir) => {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'build' && !e.name.startsWith('.')) walk(p);
    } else if (e.name.endsWith('.test.ts')) files.push(p);
  }
};
ROOTS.forEach(walk);
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const chosen = files.sort().filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (chosen.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// spec for people, TAP to a file so we can close with the plain "N passed, N failed" line.
const tapDir = mkdtempSync(join(tmpdir(), 'storm-tests-'));
const tap = join(tapDir, 'results.tap');
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-timeout=900000', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...flags, ...chosen],
  { stdio: 'inherit' },
);
let summary = '';
try {
  const text = readFileSync(tap, 'utf8');
  const n = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  summary = `${n('pass')} passed, ${n('fail') + n('cancelled')} failed, ${n('skipped')} skipped`;
} catch {
  summary = `0 passed, 1 failed`;
}
rmSync(tapDir, { recursive: true, force: true });
console.log(summary);
process.exit(r.status ?? 1);
