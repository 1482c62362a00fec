/**
 * Typed errors with stable codes. Code is the contract: callers branch on
 * `err.code`, never on message text. Errors cross process boundaries (control
 * socket, XML-RPC) as `{code, message, hint, details}` and are rebuilt intact.
 */
export const ERROR_CODES = [
  'invalid',
  'not_found',
  'conflict',
  'busy',
  'unauthorized',
  'unreachable',
  'unavailable',
  'needs_confirmation',
  'timeout',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** The wire shape of an error. */
export interface ErrorData {
  code: ErrorCode;
  message: string;
  /** What the admin can do about it, one line. */
  hint?: string;
  details?: Record<string, unknown>;
}

export class StormError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'StormError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  toJSON(): ErrorData {
    const out: ErrorData = { code: this.code, message: this.message };
    if (this.hint !== undefined) out.hint = this.hint;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

type Opts = { hint?: string; details?: Record<string, unknown>; cause?: unknown };
export const invalid = (m: string, o?: Opts) => new StormError('invalid', m, o);
export const notFound = (m: string, o?: Opts) => new StormError('not_found', m, o);
export const conflict = (m: string, o?: Opts) => new StormError('conflict', m, o);
export const busy = (m: string, o?: Opts) => new StormError('busy', m, o);
export const unauthorized = (m: string, o?: Opts) => new StormError('unauthorized', m, o);
export const unreachable = (m: string, o?: Opts) => new StormError('unreachable', m, o);
export const unavailable = (m: string, o?: Opts) => new StormError('unavailable', m, o);
export const internal = (m: string, o?: Opts) => new StormError('internal', m, o);

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && (ERROR_CODES as readonly string[]).includes(v);
}

/** Any thrown value → StormError; unknown errors become `internal` (never lose the message). */
export function toStormError(e: unknown): StormError {
  if (e instanceof StormError) return e;
  if (e instanceof Error) {
    const errno = (e as NodeJS.ErrnoException).code;
    if (errno === 'ECONNREFUSED' || errno === 'ENOENT' && /connect/.test(String((e as NodeJS.ErrnoException).syscall))) {
      return new StormError('unreachable', e.message, { cause: e });
    }
    if (errno === 'ETIMEDOUT') return new StormError('timeout', e.message, { cause: e });
    return new StormError('internal', e.message, { cause: e });
  }
  return new StormError('internal', String(e));
}

/** Rebuild an error from its wire form; malformed input still yields a usable `internal` error. */
export function fromErrorData(d: unknown): StormError {
  if (d && typeof d === 'object') {
    const o = d as Record<string, unknown>;
    const code = isErrorCode(o.code) ? o.code : 'internal';
    const message = typeof o.message === 'string' ? o.message : 'unknown error';
    const opts: Opts = {};
    if (typeof o.hint === 'string') opts.hint = o.hint;
    if (o.details && typeof o.details === 'object') opts.details = o.details as Record<string, unknown>;
    return new StormError(code, message, opts);
  }
  return new StormError('internal', String(d));
}

/** Process exit codes for the CLI, documented in the README. */
export const EXIT_CODES: Record<ErrorCode | 'ok' | 'usage', number> = {
  ok: 0,
  internal: 1,
  usage: 2,
  invalid: 2,
  not_found: 3,
  conflict: 4,
  busy: 5,
  unauthorized: 6,
  unreachable: 7,
  unavailable: 7,
  needs_confirmation: 8,
  timeout: 9,
};
