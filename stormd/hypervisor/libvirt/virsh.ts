/**
 * One long-lived `virsh -c URI` shell per driver, commands sent one at a time
 * over stdin. Why not a process per command: `test:///default` keeps its
 * state per connection (a define in one process is gone in the next), and a
 * warm connection makes define+start cheap. Each command is framed by
 * `echo --xml` markers on stdout and stderr, so its output and errors are cut
 * out exactly; any `error:` line on stderr is a failure.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { StormError, invalid, unavailable } from '../../../lib/errors.ts';

export interface VirshResult {
  stdout: string;
  /** The `error:` lines libvirt printed, prefix stripped; empty on success. */
  errors: string[];
}

interface Pending {
  seq: number;
  line: string;
  resolve: (r: VirshResult) => void;
  reject: (e: StormError) => void;
  timer: NodeJS.Timeout;
}

const MAX_BUFFER = 16 * 1024 * 1024;
const SAFE_ARG = /^[^'\n\r\0\\]*$/;

/** Quote one argument for virsh's own shell-like parser (single quotes, no escapes inside). */
export function quoteArg(a: string): string {
  if (!SAFE_ARG.test(a)) throw invalid(`argument ${JSON.stringify(a)} cannot be passed to virsh`);
  return `'${a}'`;
}

export class VirshSession {
  readonly uri: string;
  readonly #virsh: string;
  readonly #timeoutMs: number;
  #child: ChildProcessWithoutNullStreams | undefined;
  #out = '';
  #err = '';
  #seq = 0;
  // Markers carry a per-session nonce: nothing a domain's name or XML contains can forge them.
  readonly #nonce = randomBytes(8).toString('hex');
  #current: Pending | undefined;
  readonly #queue: { args: string[]; timeoutMs: number; resolve: (r: VirshResult) => void; reject: (e: StormError) => void }[] = [];
  #closed = false;

  constructor(uri: string, opts: { virsh?: string; timeoutMs?: number } = {}) {
    this.uri = uri;
    this.#virsh = opts.virsh ?? 'virsh';
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** Run one virsh command (argv without `virsh`). Never rejects for libvirt errors: they are in `errors`. */
  exec(args: string[], opts: { timeoutMs?: number } = {}): Promise<VirshResult> {
    if (this.#closed) return Promise.reject(unavailable('the virsh session is closed'));
    args.forEach(quoteArg);
    return new Promise((resolve, reject) => {
      this.#queue.push({ args, timeoutMs: opts.timeoutMs ?? this.#timeoutMs, resolve, reject });
      this.#pump();
    });
  }

  /** Stop the virsh process (ours, by handle). */
  async close(): Promise<void> {
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    for (const q of this.#queue.splice(0)) q.reject(unavailable('the virsh session was closed'));
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.stdin.end('quit\n');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await gone;
      clearTimeout(t);
    }
  }

  #spawn(): ChildProcessWithoutNullStreams {
    const child = spawn(this.#virsh, ['-q', '-c', this.uri], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', TERM: 'dumb' }, stdio: 'pipe' });
    this.#out = '';
    this.#err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      this.#out += s;
      this.#check();
    });
    child.stderr.on('data', (s: string) => {
      this.#err += s;
      this.#check();
    });
    child.stdin.on('error', () => {
      /* reported through 'exit' */
    });
    const fail = (e: StormError) => {
      if (this.#child === child) this.#child = undefined;
      const cur = this.#current;
      if (cur) {
        clearTimeout(cur.timer);
        this.#current = undefined;
        cur.reject(e);
      }
      this.#pump();
    };
    child.on('error', (e: NodeJS.ErrnoException) =>
      fail(e.code === 'ENOENT' ? unavailable(`virsh is not installed (${this.#virsh})`, { hint: 'install libvirt-clients (scripts/setup)' }) : unavailable(`virsh failed to start: ${e.message}`)),
    );
    child.on('exit', (code, sig) => fail(new StormError('unreachable', `virsh for ${this.uri} exited (${sig ?? code}); last errors: ${this.#err.trim().split('\n').slice(-2).join(' | ')}`, { hint: 'is libvirtd running? scripts/setup starts it' })));
    return child;
  }

  #pump(): void {
    if (this.#current || this.#queue.length === 0 || this.#closed) return;
    const job = this.#queue.shift()!;
    if (!this.#child) this.#child = this.#spawn();
    const seq = ++this.#seq;
    const line = job.args.map(quoteArg).join(' ');
    const timer = setTimeout(() => {
      // A hung command poisons the session: drop it; the next command starts a fresh one.
      const child = this.#child;
      this.#child = undefined;
      this.#current = undefined;
      child?.removeAllListeners('exit');
      child?.kill('SIGKILL');
      job.reject(new StormError('timeout', `virsh ${job.args[0]} did not answer within ${job.timeoutMs} ms`, { details: { uri: this.uri, command: job.args[0] } }));
      this.#pump();
    }, job.timeoutMs);
    this.#current = { seq, line, resolve: job.resolve, reject: job.reject, timer };
    const m = `${this.#nonce}-${seq}`;
    this.#child.stdin.write(`echo --xml '<B${m}>'\n${line}\necho --xml '<E${m}>'\necho --err --xml '<E${m}>'\n`);
  }

  #check(): void {
    const cur = this.#current;
    if (!cur) return;
    if (this.#out.length + this.#err.length > MAX_BUFFER) {
      clearTimeout(cur.timer);
      this.#current = undefined;
      this.#child?.kill('SIGKILL');
      cur.reject(new StormError('internal', `virsh output exceeded ${MAX_BUFFER} bytes`));
      return;
    }
    const m = `${this.#nonce}-${cur.seq}`;
    const b = `&lt;B${m}&gt;`;
    const e = `&lt;E${m}&gt;`;
    const errEnd = `error: ${e}\n`;
    const oi = this.#out.indexOf(e);
    const ei = this.#err.indexOf(errEnd);
    if (oi < 0 || ei < 0) return;
    const bi = this.#out.indexOf(b);
    let stdout = this.#out.slice(bi < 0 ? 0 : bi + b.length, oi);
    const stderr = this.#err.slice(0, ei);
    this.#out = this.#out.slice(oi + e.length);
    this.#err = this.#err.slice(ei + errEnd.length);
    // Interactive virsh echoes "virsh # <command>" lines; cut ours out.
    stdout = stdout.split(`virsh # ${cur.line}\n`).join('').split(`virsh # echo --xml '<E${m}>'\n`).join('');
    stdout = stdout.replace(/^\n/, '').replace(/virsh # $/, '');
    const errors = stderr
      .split('\n')
      .filter((l) => l.startsWith('error: '))
      .map((l) => l.slice('error: '.length));
    clearTimeout(cur.timer);
    this.#current = undefined;
    cur.resolve({ stdout, errors });
    this.#pump();
  }
}
