import { spawn, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';

export interface Running {
  child: ChildProcess;
  /** Everything printed so far (stdout and stderr interleaved). */
  output: () => string;
  /** Resolves with the first line matching `re` printed after this call (or already printed). */
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<string>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/**
 * Start a real child process and wait for its readiness line. The test's
 * `after` hook stops it (SIGTERM, then SIGKILL after 5 s), so nothing leaks.
 */
export async function startProcess(
  t: TestContext | undefined,
  cmd: string,
  args: string[],
  opts: { ready?: RegExp; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Running> {
  const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const feed = (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of [...waiters]) {
      const line = out.split('\n').find((l) => w.re.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout!.on('data', feed);
  child.stderr!.on('data', feed);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const waitFor = (re: RegExp, timeoutMs = opts.timeoutMs ?? 30_000) =>
    new Promise<string>((resolve, reject) => {
      const line = out.split('\n').find((l) => re.test(l));
      if (line !== undefined) return resolve(line);
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${cmd}; output so far:\n${out}`)), timeoutMs);
      const w = { re, resolve: (l: string) => (clearTimeout(timer), resolve(l)) };
      waiters.push(w);
      exited.then((code) => {
        if (waiters.includes(w)) {
          clearTimeout(timer);
          reject(new Error(`${cmd} exited (${code}) before printing ${re}; output:\n${out}`));
        }
      });
    });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill(signal);
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const code = await exited;
    clearTimeout(killer);
    return code;
  };
  t?.after(() => stop());
  if (opts.ready) await waitFor(opts.ready);
  return { child, output: () => out, waitFor, stop };
}
