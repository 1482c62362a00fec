import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { TestContext } from 'node:test';

/** A tmux server of our own (its own socket, no user config) running one command in a window. */
export interface Tmux {
  keys: (...keys: string[]) => void;
  /** Send literal text (no key-name lookup). */
  text: (s: string) => void;
  capture: () => string;
  /** Wait until the pane shows `re`; the error carries the pane. */
  see: (re: RegExp, timeoutMs?: number) => Promise<string>;
  resize: (cols: number, rows: number) => void;
  alive: () => boolean;
}

export function tmux(t: TestContext, command: string[], o: { cols?: number; rows?: number; prefix?: string } = {}): Tmux {
  const sock = `${o.prefix ?? 'con'}-${randomBytes(4).toString('hex')}`;
  const run = (...args: string[]) => execFileSync('tmux', ['-L', sock, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  let socketPath = '';
  t.after(() => {
    spawnSync('tmux', ['-L', sock, 'kill-server'], { stdio: 'ignore' });
    // tmux leaves its socket file behind.
    if (socketPath) rmSync(socketPath, { force: true });
  });
  run('-f', '/dev/null', 'new-session', '-d', '-s', 'main', '-x', String(o.cols ?? 100), '-y', String(o.rows ?? 30), ...command);
  socketPath = run('display-message', '-p', '#{socket_path}').trim();
  const capture = () => run('capture-pane', '-p', '-t', 'main');
  return {
    keys: (...keys) => void run('send-keys', '-t', 'main', ...keys),
    text: (s) => void run('send-keys', '-t', 'main', '-l', s),
    capture,
    // Polled asynchronously: the SSH server under test may live in this very process.
    see: async (re, timeoutMs = 30_000) => {
      const end = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        last = await new Promise<string>((resolve) =>
          execFile('tmux', ['-L', sock, 'capture-pane', '-p', '-t', 'main'], { encoding: 'utf8' }, (err, out) => resolve(err ? '(tmux session gone)' : out)),
        );
        if (re.test(last)) return last;
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; the pane shows:\n${last}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    resize: (cols, rows) => void run('resize-window', '-t', 'main', '-x', String(cols), '-y', String(rows)),
    alive: () => spawnSync('tmux', ['-L', sock, 'has-session', '-t', 'main'], { stdio: 'ignore' }).status === 0,
  };
}
