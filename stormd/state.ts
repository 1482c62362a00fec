/**
 * stormd's state directory: its key (0600), certificate, the CA certificate
 * it trusts (the manager's), the CRL it enforces, and who it is.
 *
 *   DIR/pki/key.pem  DIR/pki/cert.pem  DIR/pki/ca.pem  DIR/pki/crl.pem
 *   DIR/pki/pending.key (renewal in progress)   DIR/stormd.json {name, manager}
 */
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.ts';
import { StormError } from '../lib/errors.ts';

export interface StormdIdentity {
  name: string;
  manager: string;
  joinedAt: string;
}

export interface StormdTls {
  key: string;
  cert: string;
  ca: string;
  crl: string;
}

export const pkiDir = (state: string) => join(state, 'pki');
const f = (state: string, name: string) => join(pkiDir(state), name);

export function isEnrolled(state: string): boolean {
  return ['key.pem', 'cert.pem', 'ca.pem', 'crl.pem'].every((n) => existsSync(f(state, n))) && existsSync(join(state, 'stormd.json'));
}

export function loadState(state: string): { id: StormdIdentity; tls: StormdTls } {
  if (!isEnrolled(state)) {
    throw new StormError('unavailable', `stormd in ${state} is not enrolled with a manager`, { hint: 'run `storm host add NAME ADDRESS` on the manager, then `stormd join --manager URL --token TOKEN --state DIR` here' });
  }
  chmodSync(f(state, 'key.pem'), 0o600);
  return {
    id: JSON.parse(readFileSync(join(state, 'stormd.json'), 'utf8')) as StormdIdentity,
    tls: { key: readFileSync(f(state, 'key.pem'), 'utf8'), cert: readFileSync(f(state, 'cert.pem'), 'utf8'), ca: readFileSync(f(state, 'ca.pem'), 'utf8'), crl: readFileSync(f(state, 'crl.pem'), 'utf8') },
  };
}

/** Write everything enrolment produced; the identity file last, so a half-done join reads as not enrolled. */
export function saveEnrolment(state: string, id: StormdIdentity, tls: StormdTls): void {
  // The state dir holds layers and instance disks QEMU (libvirt-qemu) must reach: traversable; only pki/ is private.
  mkdirSync(state, { recursive: true, mode: 0o755 });
  mkdirSync(pkiDir(state), { recursive: true, mode: 0o700 });
  writeFileAtomic(f(state, 'key.pem'), tls.key, 0o600);
  writeFileAtomic(f(state, 'cert.pem'), tls.cert, 0o644);
  writeFileAtomic(f(state, 'ca.pem'), tls.ca, 0o644);
  writeFileAtomic(f(state, 'crl.pem'), tls.crl, 0o644);
  writeFileAtomic(join(state, 'stormd.json'), JSON.stringify(id, null, 2) + '\n', 0o644);
}

export function saveCrl(state: string, pem: string): void {
  writeFileAtomic(f(state, 'crl.pem'), pem, 0o644);
}

export function savePendingKey(state: string, key: string): void {
  writeFileAtomic(f(state, 'pending.key'), key, 0o600);
}

export function readPendingKey(state: string): string | undefined {
  try {
    return readFileSync(f(state, 'pending.key'), 'utf8');
  } catch {
    return undefined;
  }
}

/** Promote the pending key with its new certificate. */
export function installRenewed(state: string, key: string, cert: string): void {
  writeFileAtomic(f(state, 'key.pem'), key, 0o600);
  writeFileAtomic(f(state, 'cert.pem'), cert, 0o644);
  writeFileAtomic(f(state, 'pending.key'), '', 0o600);
}
