/**
 * The console: keypress-to-screen-update latency over SSH, a full redraw of
 * an instances table with 10,000 rows, and memory per open SSH session.
 */
import { mkdtempSync, rmSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import ssh2 from 'ssh2';
import { silentLogger } from '../lib/logger.ts';
import { createConsole } from '../tui/console/app.ts';
import { SshServer } from '../tui/ssh/server.ts';
import { authorizedKeysPath } from '../tui/ssh/host-key.ts';
import { fixture, until } from '../test/helpers/console-fixture.ts';
import { fakeTerm } from '../test/helpers/term.ts';
import { sshConnect, sshShell, stripAnsi } from '../test/helpers/ssh.ts';
import { median, result, type BenchResult } from './result.ts';

async function keypressLatency(port: number, key: string): Promise<number[]> {
  const c = await sshConnect(port, { privateKey: key });
  const sh = await sshShell(c, { cols: 120, rows: 40 });
  await sh.waitFor(/STORM/);
  const times: number[] = [];
  // Alternate two views whose titles differ in every letter, so the redraw carries the whole word.
  const steps: [string, RegExp][] = [['c', /Channels/], ['a', /Applianc/]];
  for (let i = 0; i < 60; i++) {
    const [k, re] = steps[i % 2]!;
    const from = sh.output().length;
    const t0 = performance.now();
    sh.stream.write(k);
    await new Promise<void>((resolve) => {
      const check = () => {
        if (re.test(stripAnsi(sh.output().slice(from)))) {
          sh.stream.off('data', onData);
          resolve();
        }
      };
      const onData = () => check();
      sh.stream.on('data', onData);
      check();
    });
    times.push(performance.now() - t0);
    // Let the view's data load land before the next key (we time the keypress path, not the load).
    await new Promise((r) => setTimeout(r, 30));
  }
  c.end();
  return times.slice(10); // warm-up dropped
}

function redraw10k(): { full: number; scroll: number } {
  const f = fixture({ instances: 10_000 });
  const term = fakeTerm(160, 50);
  const con = createConsole({ api: f.api(), input: term.input, output: term.output, view: 'instances' });
  const rows = f.instances;
  const model = () => con.state().model!;
  const full: number[] = [];
  const scroll: number[] = [];
  model().setRows(rows);
  con.redraw();
  for (let i = 0; i < 30; i++) {
    // Fresh data for all 10,000 rows, then a repaint of the whole screen (alloc forgets what was drawn).
    const t0 = performance.now();
    model().setRows(rows);
    con.screen.alloc();
    con.redraw();
    full.push(performance.now() - t0);
    term.take();
    const t1 = performance.now();
    model().move(37);
    con.redraw();
    scroll.push(performance.now() - t1);
    term.take();
  }
  con.destroy();
  return { full: median(full.slice(5)), scroll: median(scroll.slice(5)) };
}

async function memoryPerSession(port: number, key: string, n = 20): Promise<number> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const before = heap();
  const open = [];
  for (let i = 0; i < n; i++) {
    const c = await sshConnect(port, { privateKey: key });
    const sh = await sshShell(c, { cols: 120, rows: 40 });
    await sh.waitFor(/STORM/);
    open.push(c);
  }
  const after = heap();
  for (const c of open) c.end();
  return (after - before) / n / (1024 * 1024);
}

export default async function (): Promise<BenchResult[]> {
  const state = mkdtempSync(join(tmpdir(), 'con-bench-'));
  try {
    const f = fixture({ instances: 50 });
    const ssh = await SshServer.start({ listen: '127.0.0.1:0', state, api: (ctx) => f.api(ctx), log: silentLogger, env: {} });
    const k = ssh2.utils.generateKeyPairSync('ed25519');
    appendFileSync(authorizedKeysPath(state), k.public + '\n');
    try {
      const lat = median(await keypressLatency(ssh.port, k.private));
      const mem = await memoryPerSession(ssh.port, k.private);
      await until(() => ssh.sessionCount === 0, 'sessions closed');
      const r = redraw10k();
      return [
        result({ name: 'console keypress-to-screen latency over SSH (median)', value: lat, unit: 'ms', peer: 'bar', peerValue: null, bar: '< 50 ms', pass: (_r, v) => v < 50 }),
        result({ name: 'console full redraw, instances view, 10,000 rows (median)', value: r.full, unit: 'ms', peer: 'bar', peerValue: null, bar: '< 30 ms', pass: (_r, v) => v < 30 }),
        result({ name: 'console cursor move redraw, 10,000 rows (median)', value: r.scroll, unit: 'ms', peer: 'bar', peerValue: null, bar: '< 30 ms', pass: (_r, v) => v < 30 }),
        result({ name: 'console memory per open SSH session (heap)', value: mem, unit: 'MB', peer: 'bar', peerValue: null, bar: '< 10 MB', pass: (_r, v) => v < 10 }),
      ];
    } finally {
      await ssh.close();
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}
