// `storm instance list -o json` at scale: 10,000 instances across 100 hosts
// in the store. The store is seeded directly (the manager is not running
// yet: one process owns the database), the hosts are enrolled records whose
// stormd never answers (their addresses are closed loopback ports), then a
// real manager process starts on it and the real CLI process runs against
// its control socket, once the manager's start-up work has settled. Wall
// time of the CLI process, median of 7 (and its CPU time); the
// manager's resident memory (VmRSS, /proc/PID/status) after the lists.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess } from '../test/helpers/child.ts';
import { DOMAIN, seedInstances } from '../test/helpers/directory-sync.ts';
import { STORM_BIN, managerEnv } from '../test/helpers/storm.ts';
import { compiledEntry } from '../bin/compiled.js';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { benchDir, rmDir } from './fleet.ts';
import { median, result, type BenchResult } from './result.ts';

const HOSTS = 100;
const INSTANCES = 10_000;
const RUNS = 7;

/** CPU ticks (user + system) a process has used. */
const ticks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
};

/** Wait until `pid` used (almost) no CPU for a second; at most 60 s. */
async function settled(pid: number): Promise<void> {
  const end = Date.now() + 60_000;
  let last = ticks(pid);
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = ticks(pid);
    if (now - last <= 2) return;
    last = now;
  }
}

function vm(pid: number): { rssMB: number; hwmMB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMB: kb('VmRSS') / 1024, hwmMB: kb('VmHWM') / 1024 };
}

/**
 * The CLI as a user runs it: a new process; wall time from spawn to exit, and
 * the CPU time it used (user + system, from /usr/bin/time: what the call costs
 * whatever else the machine is doing).
 */
function timeCli(args: string[], env: NodeJS.ProcessEnv, cpuFile: string): Promise<{ seconds: number; cpu: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, process.execPath, STORM_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', (d: Buffer) => (err += d));
    c.on('exit', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) reject(new Error(`storm ${args.join(' ')} exited ${code}: ${err}`));
      else {
        const [u, sys] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
        resolve({ seconds, cpu: u! + sys!, stdout: Buffer.concat(out).toString() });
      }
    });
  });
}

export default async function (): Promise<BenchResult[]> {
  const dir = benchDir('storm-list-bench-');
  try {
    const state = join(dir, 'manager');
    // Each instance's directory entry too, as provisioning made it: the start-up sync has nothing to do.
    await seedInstances(join(state, 'db'), INSTANCES, HOSTS, { directory: true });
    const env = await managerEnv(state, { STORM_API_LISTEN: '', STORM_HOST_POLL_SECONDS: '10', STORM_DNS_DOMAIN: DOMAIN });
    const t0 = performance.now();
    const manager = await startProcess(undefined, process.execPath, [STORM_BIN, 'manager', 'start', '--state', state], { ready: /storm manager ready/, env, timeoutMs: 600_000 });
    const startup = (performance.now() - t0) / 1000;
    try {
      const pid = manager.child.pid!;
      // Steady state: the work right after ready (first polls of 100 hosts, reconciliation) is over.
      await settled(pid);
      const times: number[] = [];
      const cpu: number[] = [];
      const cpuFile = join(dir, 'cpu.txt');
      for (let i = 0; i < RUNS; i++) {
        const r = await timeCli(['instance', 'list', '-o', 'json'], env, cpuFile);
        cpu.push(r.cpu);
        const n = (JSON.parse(r.stdout) as unknown[]).length;
        if (n !== INSTANCES) throw new Error(`instance list returned ${n} instances, expected ${INSTANCES}`);
        times.push(r.seconds);
      }
      const mem = vm(pid);
      // The floor under any CLI process here: node starting and loading the CLI (storm --version).
      const floor: number[] = [];
      for (let i = 0; i < RUNS; i++) floor.push((await timeCli(['--version'], env, cpuFile)).seconds);
      const load = spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
      // npm run bench builds the CLI (scripts/build-js); without a fresh build it runs through tsx.
      const mode = compiledEntry(PACKAGE_ROOT, 'storm') ? 'compiled CLI' : 'CLI through tsx: no fresh scripts/build-js';
      return [
        result({ name: `manager start on ${INSTANCES} instances / ${HOSTS} hosts, to ready`, value: startup, unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }),
        result({ name: `storm --version process, ${mode} (startup floor of any CLI call)`, value: median(floor), unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }),
        result({ name: `storm instance list -o json, ${INSTANCES} instances, ${mode} (process wall time, median of ${RUNS}; ${load.replace(/^.*load/, 'load')})`, value: median(times), unit: 's', peer: 'bar', peerValue: null, bar: '< 0.5 s', pass: (_r, v) => v < 0.5 }),
        result({ name: 'storm instance list -o json: CPU time of the CLI process (user + system, median)', value: median(cpu), unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }),
        result({ name: 'manager resident memory after the lists (VmRSS)', value: mem.rssMB, unit: 'MB', peer: 'bar', peerValue: null, bar: `< 400 MB (peak VmHWM ${Math.round(mem.hwmMB)} MB)`, pass: (_r, v) => v < 400 }),
      ];
    } finally {
      await manager.stop();
    }
  } finally {
    rmDir(dir);
  }
}
