/**
 * How our errors ride XML-RPC faults: faultCode is a fixed number per error
 * code, faultString is the JSON of the error (`{code, message, hint, details}`).
 * A fault from something that is not us still becomes a StormError via the number.
 */
import { fromErrorData, StormError, type ErrorCode } from '../errors.ts';

export const FAULT_CODES: Record<ErrorCode, number> = {
  invalid: 400,
  unauthorized: 403,
  not_found: 404,
  conflict: 409,
  busy: 423,
  needs_confirmation: 428,
  internal: 500,
  unreachable: 502,
  unavailable: 503,
  timeout: 504,
};

export interface Fault {
  faultCode: number;
  faultString: string;
}

export function toFault(e: StormError): Fault {
  return { faultCode: FAULT_CODES[e.code], faultString: JSON.stringify(e.toJSON()) };
}

/** Rebuild a StormError from a fault; never throws. */
export function fromFault(f: { faultCode?: unknown; faultString?: unknown }): StormError {
  if (typeof f.faultString === 'string') {
    try {
      const d = JSON.parse(f.faultString) as unknown;
      if (d && typeof d === 'object' && typeof (d as { code?: unknown }).code === 'string') return fromErrorData(d);
    } catch {
      /* a foreign fault: fall through to the number */
    }
  }
  const code = (Object.entries(FAULT_CODES).find(([, n]) => n === f.faultCode)?.[0] ?? 'internal') as ErrorCode;
  return new StormError(code, typeof f.faultString === 'string' ? f.faultString : `XML-RPC fault ${String(f.faultCode)}`);
}
