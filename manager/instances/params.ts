/**
 * An instance's parameters against what its appliance declares: the one rule
 * the manager enforces at create (whoever asks: CLI, console, appliance API)
 * and the console's wizard checks as the admin types.
 */
import { checkParam, type ParamType } from '../channels/format.ts';

/** A declared parameter, as the appliance XML gives it. */
export interface ParamSpec {
  name: string;
  type: ParamType;
  required: boolean;
  default?: string;
  choices?: string[];
}

/**
 * The parameters an instance gets: those given, each declared and valid for its
 * type, plus the defaults of those not given; or what is wrong, in one sentence.
 */
export function resolveParams(declared: readonly ParamSpec[], given: Readonly<Record<string, string>>): { params: Record<string, string> } | { error: string } {
  const byName = new Map(declared.map((p) => [p.name, p]));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(given)) {
    const p = byName.get(k);
    if (!p) return { error: `there is no parameter "${k}" (${byName.size ? `it takes: ${[...byName.keys()].join(', ')}` : 'it takes none'})` };
    const problem = checkParam(p, v);
    // A secret's value never goes into a message (messages land in events and logs).
    if (problem) return { error: `parameter ${k}: ${problem}${p.type === 'secret' ? '' : `, not "${v.slice(0, 80)}"`}` };
    out[k] = v;
  }
  for (const p of declared) if (!(p.name in out) && p.default !== undefined) out[p.name] = p.default;
  const missing = declared.filter((p) => p.required && !out[p.name]).map((p) => p.name);
  if (missing.length) return { error: `parameters required: ${missing.join(', ')}` };
  return { params: out };
}
