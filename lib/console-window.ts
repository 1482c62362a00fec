/**
 * Reading a serial console log by offset (`storm instance console -f`): which
 * bytes a read returns, the same rule for every hypervisor driver and agent.
 */
import { invalid } from './errors.ts';

/** A piece of a console log: `text` starts at byte `from`; the next read starts at `next` (its size then). */
export interface ConsoleChunk {
  text: string;
  from: number;
  next: number;
  /** Which run of the domain the log is from (absent while it is off): another one next time means it started again. */
  boot?: string;
}

/** The largest read (1 MiB): the log is the guest's to grow. */
export const CONSOLE_MAX_READ = 1024 * 1024;

/** What a read asks: at most `bytes`, from byte `from` of the run `boot` (both from the last chunk), or the end. */
export interface ConsoleReadOptions {
  bytes: number;
  from?: number;
  boot?: string;
}

/** Validate a read's options: `bytes` 1..1 MiB, `from` (when given) a byte offset, `boot` a short token. */
export function checkConsoleRead(opts: { bytes: number; from?: number | undefined; boot?: string | undefined }): ConsoleReadOptions {
  const { bytes, from, boot } = opts ?? ({} as never);
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > CONSOLE_MAX_READ) throw invalid(`bytes must be an integer from 1 to ${CONSOLE_MAX_READ}`);
  if (from !== undefined && (!Number.isSafeInteger(from) || from < 0)) throw invalid('from must be a byte offset (an integer, 0 or more)');
  if (boot !== undefined && (typeof boot !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(boot))) throw invalid('boot must be the token a console read returned');
  return { bytes, ...(from !== undefined ? { from } : {}), ...(boot !== undefined ? { boot } : {}) };
}

/**
 * Which bytes of a log of `size` bytes, from the run `boot`, a read asks: its
 * last `bytes` without `from`; else from `from`, or from 0 when the log was
 * started again (another run than the caller's `boot`, or shorter than `from`:
 * a new run truncates it).
 */
export function consoleWindow(size: number, read: ConsoleReadOptions, boot?: string): { start: number; n: number } {
  const { bytes, from } = read;
  const restarted = read.boot !== undefined && boot !== undefined && read.boot !== boot;
  const start = from === undefined ? Math.max(0, size - bytes) : restarted || from > size ? 0 : from;
  return { start, n: Math.max(0, Math.min(bytes, size - start)) };
}

/** How many bytes the UTF-8 sequence a byte leads takes: 0 for a continuation byte, 1 for ASCII (or a byte no sequence begins with). */
function sequenceLength(b: number): number {
  if (b < 0x80) return 1;
  if (b < 0xc0) return 0;
  if (b < 0xe0) return 2;
  if (b < 0xf0) return 3;
  return b < 0xf8 ? 4 : 1;
}

/**
 * The chunk for the bytes `buf` read at `start`, cut at UTF-8 character
 * boundaries so that no character is split between two reads: a character the
 * guest has not finished printing (or that the read's size cut) waits for the
 * next read, and a read of the log's end that began inside one starts after it.
 */
export function consoleChunk(buf: Buffer, start: number, read: ConsoleReadOptions, boot?: string): ConsoleChunk {
  let a = 0;
  // Only a read of the end can start inside a character; a follower's `from` is where the last chunk ended.
  if (read.from === undefined) while (a < Math.min(3, buf.length) && sequenceLength(buf[a]!) === 0) a++;
  let b = buf.length;
  for (let i = b - 1; i >= Math.max(a, b - 3); i--) {
    const len = sequenceLength(buf[i]!);
    if (len === 0) continue;
    if (i + len > b) b = i;
    break;
  }
  // Nothing whole in it (a read of a byte or two): decode what there is rather than never move on.
  if (b === a) [a, b] = [0, buf.length];
  return { text: buf.subarray(a, b).toString('utf8'), from: start + a, next: start + b, ...(boot ? { boot } : {}) };
}
