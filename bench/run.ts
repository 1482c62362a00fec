// Run every bench/*.bench.ts (or those named on the command line), print each
// figure with its ratio against the peer, and write bench/results/latest.json.
import { readdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench, BenchResult } from './result.ts';

const here = dirname(fileURLToPath(import.meta.url));
const names = process.argv.slice(2);
const files = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort();
const chosen = files.filter((f) => names.length === 0 || names.some((n) => f.startsWith(n)));
if (names.length && chosen.length === 0) {
  console.error(`no benchmark named ${names.join(', ')}; have: ${files.map((f) => f.replace('.bench.ts', '')).join(', ') || 'none'}`);
  process.exit(2);
}
const all: BenchResult[] = [];
for (const f of chosen) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { default: Bench };
  console.log(`== ${f.replace('.bench.ts', '')}`);
  try {
    for (const r of await mod.default()) {
      all.push(r);
      console.log(`${r.pass ? 'PASS' : 'FAIL'}  ${r.name}: ${r.value} ${r.unit}` + (r.peerValue !== null ? `  vs ${r.peer} ${r.peerValue} ${r.unit}  ratio ${r.ratio}` : '') + `  (bar ${r.bar})`);
    }
  } catch (e) {
    console.log(`FAIL  ${f}: ${(e as Error).message}`);
    all.push({ name: f.replace('.bench.ts', ''), value: 0, unit: '', peer: '', peerValue: null, ratio: null, bar: 'runs', pass: false });
  }
}
if (chosen.length === 0) console.log('no benchmarks yet');
const out = join(here, 'results', 'latest.json');
writeFileSync(out + '.tmp', JSON.stringify(all, null, 2) + '\n');
renameSync(out + '.tmp', out);
console.log(`${all.filter((r) => r.pass).length} passed, ${all.filter((r) => !r.pass).length} failed (bench/results/latest.json)`);
