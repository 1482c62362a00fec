/**
 * Password hashes for binds: {PBKDF2-SHA256} in OpenLDAP's pw-pbkdf2 layout
 * (`{PBKDF2-SHA256}<iterations>$<salt>$<hash>`, adapted base64), salted per
 * user and computed off the event loop. {SSHA} is verified too (imports),
 * never produced. Nothing here ever stores or logs a clear-text password.
 */
import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);
export const DEFAULT_ITERATIONS = 100_000;
const SCHEME = '{PBKDF2-SHA256}';

// pw-pbkdf2's "adapted base64": '+' becomes '.', no padding.
const ab64 = (b: Buffer) => b.toString('base64').replace(/\+/g, '.').replace(/=+$/, '');
const unab64 = (s: string) => Buffer.from(s.replace(/\./g, '+'), 'base64');

export async function hashPassword(password: string, iterations = DEFAULT_ITERATIONS): Promise<string> {
  const salt = randomBytes(16);
  const dk = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  return `${SCHEME}${iterations}$${ab64(salt)}$${ab64(dk)}`;
}

/** Constant-time check of a password against a stored hash; unknown schemes never match. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (stored.startsWith(SCHEME)) {
    const [it, salt, hash] = stored.slice(SCHEME.length).split('$');
    const iterations = Number(it);
    if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000 || !salt || !hash) return false;
    const want = unab64(hash);
    const dk = await pbkdf2Async(password, unab64(salt), iterations, want.length, 'sha256');
    return dk.length === want.length && timingSafeEqual(dk, want);
  }
  if (stored.startsWith('{SSHA}')) {
    const raw = Buffer.from(stored.slice(6), 'base64');
    if (raw.length <= 20) return false;
    const digest = raw.subarray(0, 20);
    const got = createHash('sha1').update(password).update(raw.subarray(20)).digest();
    return timingSafeEqual(got, digest);
  }
  return false;
}

/** A hash of a random password: spent on unknown users so a miss costs what a hit costs. */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
  return (decoy ??= hashPassword(randomBytes(12).toString('hex')));
}

/** A random password for generated identities (the LDAP admin, the realm's master key). */
export function randomPassword(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
