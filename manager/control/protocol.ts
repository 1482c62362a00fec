import { invalid } from '../../lib/errors.ts';
import type { ErrorData } from '../../lib/errors.ts';
import type { StormEvent } from '../events.ts';

/**
 * Control socket framing: one JSON object per line. Lines are bounded so a
 * broken or hostile client cannot make the manager buffer without limit.
 */
export const MAX_LINE = 4 * 1024 * 1024;

export interface Request { id: number; method: string; params?: Record<string, unknown> }
export type Response = { id: number; result: unknown } | { id: number; error: ErrorData } | { event: StormEvent };

/** Splits a byte stream into lines, refusing any line over `max` bytes. */
export class LineReader {
  #buf = '';
  readonly #max: number;
  constructor(max = MAX_LINE) {
    this.#max = max;
  }
  /** Feed a chunk; returns complete lines; throws `invalid` when a line is too long. */
  push(chunk: string): string[] {
    this.#buf += chunk;
    const lines = this.#buf.split('\n');
    this.#buf = lines.pop() ?? '';
    if (this.#buf.length > this.#max) throw invalid(`control message longer than ${this.#max} bytes`);
    return lines.filter((l) => l.trim() !== '');
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
