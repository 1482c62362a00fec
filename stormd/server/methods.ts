/**
 * stormd's method table. Each module registers its methods here (host.*,
 * tls.*, and later layer.* and domain.* from the hypervisor side); the server
 * dispatches XML-RPC calls through it. Every method takes one struct.
 */
import { invalid, notFound } from '../../lib/errors.ts';
import type { Role } from '../../lib/tls/x509.ts';

/** The authenticated caller, from its TLS certificate. */
export interface Peer {
  serial: string;
  role: Role;
  commonName: string;
}

export interface MethodContext {
  peer: Peer;
}

export interface StormdMethod<P = Record<string, unknown>, R = unknown> {
  name: string;
  summary: string;
  handler: (params: P, ctx: MethodContext) => Promise<R>;
}

export class MethodTable {
  readonly #methods = new Map<string, StormdMethod<any, any>>();

  add<P, R>(def: StormdMethod<P, R>): this {
    if (!/^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)+$/.test(def.name)) throw new Error(`bad stormd method name ${def.name}`);
    if (this.#methods.has(def.name)) throw new Error(`stormd method ${def.name} registered twice`);
    this.#methods.set(def.name, def);
    return this;
  }

  /** Register many at once (a module's whole set). */
  addAll(defs: readonly StormdMethod<any, any>[]): this {
    for (const d of defs) this.add(d);
    return this;
  }

  names(): string[] {
    return [...this.#methods.keys()].sort();
  }

  /** Dispatch one call: XML-RPC params must be empty or a single struct. */
  async call(name: string, params: unknown[], ctx: MethodContext): Promise<unknown> {
    const m = this.#methods.get(name);
    if (!m) throw notFound(`unknown stormd method "${name}"`, { hint: 'the manager and stormd versions differ; upgrade stormd' });
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
