import { execFile, type ChildProcess } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started at all (e.g. ENOENT). */
  spawnError?: NodeJS.ErrnoException;
}

/** What starts programs: run() itself, or a ShellRunner's run (lib/shell-runner.ts) in a big daemon. */
export type Runner = (file: string, args: readonly string[], opts?: { timeoutMs?: number }) => Promise<ExecResult>;

/**
 * Run a program with an argument vector (never a shell string), bounded in
 * time and output. Never throws: failure is data for the caller to judge.
 */
export function run(file: string, args: readonly string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, env: opts.env, cwd: opts.cwd, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
        if (e && typeof e.code === 'string') resolve({ code: 127, stdout, stderr, spawnError: e });
        else resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) {
      // A child may exit without reading its input (EPIPE): that is its exit code's story, not a crash.
      child.stdin?.on('error', () => {});
      child.stdin?.end(opts.input);
    }
  });
}

/** Resolve a program on PATH (plus the sbin directories a non-root PATH lacks). */
export async function which(name: string, path: string): Promise<string | undefined> {
  const { access, constants } = await import('node:fs/promises');
  const dirs = [...path.split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = `${d}/${name}`;
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/**
 * Stop a long-lived child: SIGTERM, then SIGKILL after `graceMs`; resolves
 * when it has exited (at once if it already has). Its other exit listeners go.
 */
export function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    // An IPC channel keeps the child's event loop alive: close it too.
    if (child.connected) child.disconnect();
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
  });
}
