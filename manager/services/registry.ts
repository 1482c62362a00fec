import { invalid, notFound, toStormError, unauthorized, type ErrorCode } from '../../lib/errors.ts';

/** Who is calling: the console, the CLI, or an SSH session (maybe read-only). */
export interface CallContext {
  actor: string;
  readOnly: boolean;
}

/** One service method; `mutates` lets read-only sessions be refused before any work. */
export interface MethodDef<P = Record<string, unknown>, R = unknown> {
  name: string;
  mutates: boolean;
  summary: string;
  handler: (params: P, ctx: CallContext) => Promise<R>;
}

/** A state-changing call that ran (refused calls never run): what the operations log records. */
export interface Operation {
  method: string;
  /** The object it named (`name`, else `ref`, else `mac` of its params), if any. */
  object?: string;
  ctx: CallContext;
  error?: { code: ErrorCode; message: string };
}

/** The service layer's method table: the one API under the console, the CLI and SSH exec. */
export class Registry {
  readonly #methods = new Map<string, MethodDef<any, any>>();
  readonly #observers = new Set<(op: Operation) => void>();

  /** Be told of every state-changing call when it finishes, whoever made it (console, CLI, SSH exec); returns the unsubscribe. */
  onOperation(fn: (op: Operation) => void): () => void {
    this.#observers.add(fn);
    return () => void this.#observers.delete(fn);
  }

  add<P = Record<string, unknown>, R = unknown>(def: MethodDef<P, R>): void {
    if (this.#methods.has(def.name)) throw new Error(`method ${def.name} registered twice`);
    this.#methods.set(def.name, def);
  }

  has(name: string): boolean {
    return this.#methods.has(name);
  }

  get(name: string): MethodDef | undefined {
    return this.#methods.get(name);
  }

  list(): MethodDef[] {
    return [...this.#methods.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async call(name: string, params: unknown, ctx: CallContext): Promise<unknown> {
    const m = this.#methods.get(name);
    if (!m) throw notFound(`unknown method "${name}"`, { hint: 'this manager does not offer it; is the CLI newer than the manager?' });
    if (m.mutates && ctx.readOnly) throw unauthorized(`${name} changes state and this session is read-only`, { hint: 'use a key that is not marked read-only' });
    if (params !== undefined && (params === null || typeof params !== 'object' || Array.isArray(params))) throw invalid(`${name}: params must be an object`);
    const p = (params ?? {}) as Record<string, unknown>;
    if (!m.mutates || this.#observers.size === 0) return m.handler(p, ctx);
    const object = [p.name, p.ref, p.mac].find((v): v is string => typeof v === 'string' && v !== '');
    const tell = (op: Operation) => {
      for (const fn of this.#observers) {
        try {
          fn(op);
        } catch {
          /* an observer's fault is not the caller's */
        }
      }
    };
    try {
      const out = await m.handler(p, ctx);
      tell({ method: name, ...(object ? { object } : {}), ctx });
      return out;
    } catch (e) {
      const err = toStormError(e);
      tell({ method: name, ...(object ? { object } : {}), ctx, error: { code: err.code, message: err.message } });
      throw e;
    }
  }
}

/** Read a required string parameter with an error that names it. */
export function str(params: Record<string, unknown>, key: string, method: string): string {
  const v = params[key];
  if (typeof v !== 'string' || v === '') throw invalid(`${method}: missing or empty "${key}"`);
  return v;
}

export function optStr(params: Record<string, unknown>, key: string, method: string): string | undefined {
  const v = params[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`${method}: "${key}" must be a string`);
  return v;
}
