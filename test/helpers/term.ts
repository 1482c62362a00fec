import { PassThrough, Writable } from 'node:stream';
import type blessed from 'blessed';

/** A fake terminal for blessed: input to type into, output that records what was drawn. */
export interface FakeTerm {
  input: PassThrough;
  output: Writable & { columns: number; rows: number; isTTY: boolean };
  /** Bytes written since the last `take()`. */
  take(): string;
  resize(cols: number, rows: number): void;
  /** Type keys: plain text, or escape sequences like '\x1b' (esc), '\r' (enter). */
  type(s: string): void;
}

export function fakeTerm(cols = 120, rows = 40): FakeTerm {
  const input = new PassThrough();
  let buf = '';
  const output = Object.assign(
    new Writable({
      write(chunk, _enc, cb) {
        buf += chunk.toString();
        cb();
      },
    }),
    { columns: cols, rows, isTTY: true },
  );
  return {
    input,
    output,
    take: () => {
      const s = buf;
      buf = '';
      return s;
    },
    resize: (c, r) => {
      output.columns = c;
      output.rows = r;
      output.emit('resize');
    },
    type: (s) => void input.write(s),
  };
}

/** What the screen shows, one string per line (from blessed's cell buffer, no terminal needed). */
export function screenText(screen: blessed.Widgets.Screen): string[] {
  const lines = (screen as unknown as { lines: [number, string][][] }).lines;
  return lines.map((l) => l.map((c) => c[1]).join('').trimEnd());
}
