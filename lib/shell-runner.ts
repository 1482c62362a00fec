/**
 * Programs started by long-lived /bin/sh processes on our behalf. Node forks
 * to start a program, and fork copies the page tables of the whole process:
 * from a daemon with ~100 MB resident that is ~10 ms per program (measured:
 * 2.4 ms at 0 MB, 8.4 ms at 50 MB, 13.5 ms at 100 MB), from a shell well under
 * 1 ms. stormd starts mke2fs and filefrag on every provisioning.
 *
 * Same contract as run(): an argument vector (quoted here, never a string
 * from outside), bounded in time and output, never throws. Each program's
 * stdin is /dev/null and its output goes to files in a private directory.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecResult } from './exec.ts';

const MAX_OUTPUT = 16 * 1024 * 1024;

/** One argument for sh: single-quoted, embedded quotes closed and escaped. */
export function shQuote(a: string): string {
  return `'${a.replace(/'/g, `'\\''`)}'`;
}

interface Shell {
  child: ChildProcessWithoutNullStreams;
  out: string;
  busy: boolean;
}

interface Job {
  file: string;
  args: readonly string[];
  timeoutMs: number;
  resolve: (r: ExecResult) => void;
}

/** What a job gets once the runner is closed (before or while it waited). */
const closed = (): ExecResult => ({ code: 127, stdout: '', stderr: 'the shell runner is closed', spawnError: Object.assign(new Error('the shell runner is closed'), { code: 'ECLOSED' }) });

export class ShellRunner {
  readonly #max: number;
  readonly #parent: string;
  readonly #nonce = randomBytes(8).toString('hex');
  readonly #shells: Shell[] = [];
  readonly #queue: Job[] = [];
  #dir: string | undefined;
  #seq = 0;
  #closed = false;

  /**
   * At most `max` shells run programs at once; more wait their turn. Output files live in a
   * private directory under `dir` (default: the system's temporary directory).
   */
  constructor(opts: { max?: number; dir?: string } = {}) {
    this.#max = opts.max ?? 4;
    this.#parent = opts.dir ?? tmpdir();
  }

  run(file: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    if (this.#closed) return Promise.resolve(closed());
    return new Promise((resolve) => {
      this.#queue.push({ file, args, timeoutMs: opts.timeoutMs ?? 30_000, resolve });
      this.#pump();
    });
  }

  /** Stop every shell (and what it runs) and remove the output directory. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const s of [...this.#shells]) this.#retire(s);
    for (const j of this.#queue.splice(0)) j.resolve(closed());
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
  }

  #pump(): void {
    while (this.#queue.length) {
      let sh = this.#shells.find((s) => !s.busy);
      if (!sh && this.#shells.length < this.#max) sh = this.#start();
      if (!sh) return;
      void this.#exec(sh, this.#queue.shift()!);
    }
  }

  #start(): Shell {
    // Its own process group, so a timeout stops the program with its shell.
    const child = spawn('/bin/sh', [], { stdio: 'pipe', detached: true });
    // A daemon's helper: it never keeps the process alive by itself.
    child.unref();
    for (const st of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) st.unref?.();
    const sh: Shell = { child, out: '', busy: false };
    child.stdout.setEncoding('utf8');
    child.stderr.resume(); // the shell's own complaints; each program's stderr goes to its file
    child.stdin.on('error', () => {});
    // Untranslated output (parsers read it); the shell exits when we do (end of its stdin).
    child.stdin.write('export LC_ALL=C\n');
    child.on('exit', () => this.#drop(sh));
    this.#shells.push(sh);
    return sh;
  }

  /** Out of the pool at once: a killed shell may take a while to exit, and must not be handed the next job meanwhile. */
  #retire(sh: Shell): void {
    this.#drop(sh);
    kill(sh);
  }

  #drop(sh: Shell): void {
    const i = this.#shells.indexOf(sh);
    if (i >= 0) this.#shells.splice(i, 1);
  }

  async #exec(sh: Shell, job: Job): Promise<void> {
    sh.busy = true;
    this.#dir ??= mkdtempSync(join(this.#parent, '.storm-sh-'));
    const seq = ++this.#seq;
    const out = join(this.#dir, `${seq}.out`);
    const err = join(this.#dir, `${seq}.err`);
    const mark = `${this.#nonce}-${seq}`;
    const cmd = [job.file, ...job.args].map(shQuote).join(' ');
    const status = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => {
        this.#retire(sh);
        done('timeout');
      }, job.timeoutMs);
      const onData = () => {
        const m = new RegExp(`${mark} (\\d+|nf)\\n`).exec(sh.out);
        if (!m) return;
        sh.out = sh.out.slice(m.index + m[0].length);
        done(m[1]!);
      };
      const onExit = () => done('exit');
      const done = (v: string) => {
        clearTimeout(timer);
        sh.child.stdout.off('data', onRead);
        sh.child.off('exit', onExit);
        resolve(v);
      };
      const onRead = (s: string) => {
        sh.out += s;
        onData();
      };
      sh.child.stdout.on('data', onRead);
      sh.child.once('exit', onExit);
      sh.child.stdin.write(`if command -v ${shQuote(job.file)} >/dev/null 2>&1; then ${cmd} </dev/null >${shQuote(out)} 2>${shQuote(err)}; echo "${mark} $?"; else echo "${mark} nf"; fi\n`);
    });
    const [stdout, stderr] = await Promise.all([readBounded(out), readBounded(err)]);
    await Promise.all([rm(out, { force: true }), rm(err, { force: true })]);
    sh.busy = false;
    if (status === 'nf') job.resolve({ code: 127, stdout, stderr, spawnError: Object.assign(new Error(`${job.file}: not found`), { code: 'ENOENT' }) });
    else if (status === 'timeout') job.resolve({ code: 1, stdout, stderr: `${stderr}${job.file}: stopped after ${job.timeoutMs} ms\n` });
    else if (status === 'exit') job.resolve({ code: 1, stdout, stderr: `${stderr}${job.file}: its shell exited before the program finished\n` });
    else job.resolve({ code: Number(status), stdout, stderr });
    this.#pump();
  }
}

function kill(sh: Shell): void {
  try {
    process.kill(-sh.child.pid!, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

async function readBounded(path: string): Promise<string> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return '';
  try {
    const buf = Buffer.alloc(Math.min((await fh.stat()).size, MAX_OUTPUT));
    await fh.read(buf, 0, buf.length, 0);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}
