import { invalid } from '../../lib/errors.ts';
import type { ErrorData } from '../../lib/errors.ts';
import type { StormEvent } from '../events.ts';

/**
 * Control socket framing: one JSON object per line. Lines are bounded so a
 * broken or hostile client cannot make the manager buffer without limit.
 */
export const MAX_LINE = 4 * 1024 * 1024;
/**
 * What the CLI accepts from the manager in one line: far larger, since a
 * list of every instance is one response (~0.6 KB per instance: 10,000 are
 * ~6 MB), yet still a bound.
 */
export const MAX_RESPONSE_LINE = 256 * 1024 * 1024;

export interface Request { id: number; method: string; params?: Record<string, unknown> }
export type Response = { id: number; result: unknown } | { id: number; error: ErrorData } | { event: StormEvent };

/**
 * Splits a byte stream into lines, refusing any line over `max` bytes. Only
 * the new chunk is scanned for line ends, so a long line arriving in many
 * chunks costs its length once (not once per chunk).
 */
export class LineReader {
  #parts: string[] = [];
  #len = 0;
  readonly #max: number;
  constructor(max = MAX_LINE) {
    this.#max = max;
  }
  /** Feed a chunk; returns complete lines; throws `invalid` when a line is too long. */
  push(chunk: string): string[] {
    const out: string[] = [];
    let from = 0;
    for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', from)) {
      const tail = chunk.slice(from, nl);
      if (this.#len + tail.length > this.#max) throw this.#tooLong();
      const line = this.#parts.length ? this.#parts.join('') + tail : tail;
      this.#parts = [];
      this.#len = 0;
      if (line.trim() !== '') out.push(line);
      from = nl + 1;
    }
    if (from < chunk.length) {
      const rest = from ? chunk.slice(from) : chunk;
      this.#len += rest.length;
      if (this.#len > this.#max) throw this.#tooLong();
      this.#parts.push(rest);
    }
    return out;
  }
  #tooLong() {
    this.#parts = [];
    this.#len = 0;
    return invalid(`control message longer than ${this.#max} bytes`);
  }
}

export function parseRequest(line: string): Request {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw invalid('control message is not JSON');
  }
  const o = v as Partial<Request>;
  if (!o || typeof o !== 'object' || typeof o.id !== 'number' || typeof o.method !== 'string') throw invalid('control message needs numeric "id" and string "method"');
  if (o.params !== undefined && (typeof o.params !== 'object' || o.params === null || Array.isArray(o.params))) throw invalid('control "params" must be an object');
  return o as Request;
}
