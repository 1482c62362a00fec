/**
 * A method table for our XML-RPC servers (stormd's, later the appliances' API
 * on the manager). Modules register `{name, summary, handler}`; the server
 * dispatches through it with the authenticated peer. Every method takes one struct.
 */
import { invalid, notFound } from '../errors.ts';
import type { Role } from '../tls/x509.ts';

/** The authenticated caller, from its TLS certificate. */
export interface Peer {
  serial: string;
  role: Role;
  commonName: string;
}

export interface MethodContext {
  peer: Peer;
}

export interface RpcMethod<P = Record<string, unknown>, R = unknown> {
  name: string;
  summary: string;
  handler: (params: P, ctx: MethodContext) => Promise<R>;
}

export class MethodTable {
  readonly #methods = new Map<string, RpcMethod<any, any>>();

  add<P, R>(def: RpcMethod<P, R>): this {
    if (!/^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)+$/.test(def.name)) throw new Error(`bad method name ${def.name}`);
    if (this.#methods.has(def.name)) throw new Error(`method ${def.name} registered twice`);
    this.#methods.set(def.name, def);
    return this;
  }

  /** Register many at once (a module's whole set). */
  addAll(defs: readonly RpcMethod<any, any>[]): this {
    for (const d of defs) this.add(d);
    return this;
  }

  names(): string[] {
    return [...this.#methods.keys()].sort();
  }

  /** Dispatch one call: XML-RPC params must be empty or a single struct. */
  async call(name: string, params: unknown[], ctx: MethodContext): Promise<unknown> {
    const m = this.#methods.get(name);
    if (!m) throw notFound(`unknown method "${name}"`, { hint: 'the caller and this server are different versions; upgrade the older one' });
    if (params.length > 1) throw invalid(`${name}: expected one struct parameter, got ${params.length}`);
    const p = params[0] ?? {};
    if (p === null || typeof p !== 'object' || Array.isArray(p) || p instanceof Date || Buffer.isBuffer(p)) throw invalid(`${name}: the parameter must be a struct`);
    return m.handler(p as Record<string, unknown>, ctx);
  }
}

/** A required string field of a struct, with an error that names it. */
export function reqString(p: Record<string, unknown>, key: string, method: string, max = 1 << 20): string {
  const v = p[key];
  if (typeof v !== 'string' || v === '') throw invalid(`${method}: missing or empty "${key}"`);
  if (v.length > max) throw invalid(`${method}: "${key}" is longer than ${max} characters`);
  return v;
}
