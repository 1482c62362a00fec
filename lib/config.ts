import { readFileSync } from 'node:fs';
import { invalid } from './errors.ts';
import type { EnvSnapshot } from './env.ts';

/** One configurable field: its type, default, and where env and flags may set it. */
export interface FieldSpec<T> {
  type: 'string' | 'int' | 'bool' | 'list';
  default: T;
  env?: string;
  flag?: string;
  doc: string;
  validate?: (v: T) => string | undefined;
}

export type Schema<C> = { [K in keyof C]: FieldSpec<C[K]> };

function coerce(name: string, spec: FieldSpec<unknown>, raw: unknown, where: string): unknown {
  switch (spec.type) {
    case 'string':
      if (typeof raw === 'string') return raw;
      break;
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (Number.isSafeInteger(n)) return n;
      break;
    }
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no' || raw === '') return false;
      break;
    case 'list':
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw;
      if (typeof raw === 'string') return raw.split(',').map((s) => s.trim()).filter(Boolean);
      break;
  }
  throw invalid(`config ${name} from ${where}: expected ${spec.type}, got ${JSON.stringify(raw)}`, {
    hint: `fix ${where} (${spec.doc})`,
  });
}

/**
 * Config flows one way: defaults → file → env → flags → validation → frozen object.
 * Unknown keys in the file are an error (a typo should not silently do nothing).
 */
export function loadConfig<C extends object>(
  schema: Schema<C>,
  sources: { file?: string | undefined; env?: EnvSnapshot; flags?: Record<string, unknown> },
): Readonly<C> {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(schema) as [string, FieldSpec<unknown>][]) out[k] = spec.default;

  if (sources.file) {
    let text: string | undefined;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw invalid(`cannot read config file ${sources.file}: ${(e as Error).message}`);
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        throw invalid(`config file ${sources.file} is not valid JSON: ${(e as Error).message}`, { hint: 'fix or remove the file' });
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(`config file ${sources.file}: expected a JSON object`);
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
        const spec = (schema as Record<string, FieldSpec<unknown>>)[k];
        if (!spec) throw invalid(`config file ${sources.file}: unknown key "${k}"`, { hint: `known keys: ${Object.keys(schema).join(', ')}` });
        out[k] = coerce(k, spec, v, `config file ${sources.file}`);
      }
    }
  }
  for (const [k, spec] of Object.entries(schema) as [string, FieldSpec<unknown>][]) {
    const ev = spec.env ? sources.env?.[spec.env] : undefined;
    if (ev !== undefined && ev !== '') out[k] = coerce(k, spec, ev, `environment variable ${spec.env}`);
    const fv = spec.flag ? sources.flags?.[spec.flag] : undefined;
    if (fv !== undefined) out[k] = coerce(k, spec, fv, `flag --${spec.flag}`);
  }
  for (const [k, spec] of Object.entries(schema) as [string, FieldSpec<unknown>][]) {
    const problem = spec.validate?.(out[k]);
    if (problem) throw invalid(`config ${k}: ${problem}`, { hint: spec.doc });
  }
  return Object.freeze(out) as Readonly<C>;
}

/** Parse HOST:PORT (IPv6 in brackets); returns undefined when malformed. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}
