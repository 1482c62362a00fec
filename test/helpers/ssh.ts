import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';

type Client = InstanceType<typeof ssh2.Client>;

/** Connect an in-process ssh2 client; rejects when authentication fails. */
export function sshConnect(port: number, auth: Partial<ConnectConfig>): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', (e) => reject(e));
    c.connect({ host: '127.0.0.1', port, username: 'admin', readyTimeout: 20_000, ...auth });
  });
}

/** Run a command over exec; resolves with its exit code and output. */
export function sshExec(c: Client, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    c.exec(command, (err, stream) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      stream.on('data', (d: Buffer) => (stdout += d));
      stream.stderr.on('data', (d: Buffer) => (stderr += d));
      stream.on('exit', (c: number | null) => (code = c));
      stream.on('close', () => resolve({ code, stdout, stderr }));
    });
  });
}

export interface Shell {
  stream: ClientChannel;
  /** Everything received so far. */
  output: () => string;
  /** Output with escape sequences removed. */
  plain: () => string;
  /** Wait until the plain output (since `from`) matches. */
  waitFor: (re: RegExp, from?: number, timeoutMs?: number) => Promise<void>;
  closed: Promise<void>;
}

export const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHM]|\x1b\][^\x07]*\x07/g, '');

/** Open a pty + shell (the console). */
export function sshShell(c: Client, o: { cols?: number; rows?: number; term?: string } = {}): Promise<Shell> {
  return new Promise((resolve, reject) => {
    c.shell({ term: o.term ?? 'xterm-256color', cols: o.cols ?? 100, rows: o.rows ?? 30 }, (err, stream) => {
      if (err) return reject(err);
      let out = '';
      const waiters = new Set<() => void>();
      stream.on('data', (d: Buffer) => {
        out += d.toString();
        for (const w of [...waiters]) w();
      });
      stream.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const closed = new Promise<void>((r) => stream.on('close', () => r()));
      const waitFor = (re: RegExp, from = 0, timeoutMs = 15_000) =>
        new Promise<void>((res, rej) => {
          const check = () => {
            if (re.test(stripAnsi(out.slice(from)))) {
              waiters.delete(check);
              clearTimeout(timer);
              res();
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            rej(new Error(`timed out waiting for ${re} in console output:\n${stripAnsi(out.slice(from)).slice(-2000)}`));
          }, timeoutMs);
          waiters.add(check);
          check();
        });
      resolve({ stream, output: () => out, plain: () => stripAnsi(out), waitFor, closed });
    });
  });
}
