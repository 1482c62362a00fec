/**
 * Enrolment wire format: the one-time join token `storm host add` prints and
 * the JSON exchanged with the manager's enrolment endpoint.
 *
 * Token: `stj1.<id>.<secret>.<pin>` — id (hex) names the token on the manager,
 * secret (base64url, 32 bytes) proves possession, pin (base64url SHA-256 of the
 * CA certificate's DER) lets stormd authenticate the manager on first contact.
 */
import { invalid } from '../../lib/errors.ts';

export const TOKEN_PREFIX = 'stj1';
export const JOIN_PATH = '/v1/join';
export const MAX_JOIN_BODY = 64 * 1024;

export interface JoinToken {
  id: string;
  secret: string;
  pin: string;
}

export function formatToken(t: JoinToken): string {
  return `${TOKEN_PREFIX}.${t.id}.${t.secret}.${t.pin}`;
}

export function parseToken(s: string): JoinToken {
  const m = /^stj1\.([0-9a-f]{8,32})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/.exec(s.trim());
  if (!m) throw invalid('malformed join token', { hint: 'copy the whole token printed by `storm host add` (it starts with stj1.)' });
  return { id: m[1]!, secret: m[2]!, pin: m[3]! };
}

export interface JoinRequest {
  token: string;
  csr: string;
}

export interface JoinResponse {
  /** The host name the manager enrolled this stormd as (certificate CN). */
  name: string;
  cert: string;
  ca: string;
  crl: string;
}
