import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { invalid } from '../../lib/errors.ts';

/** STATE/ssh: the host key and authorized_keys. */
export const sshDir = (state: string) => join(state, 'ssh');
export const hostKeyPath = (state: string) => join(sshDir(state), 'host_ed25519_key');
export const authorizedKeysPath = (state: string) => join(sshDir(state), 'authorized_keys');

/**
 * The manager's SSH host key: generated (ed25519, OpenSSH format, via Node's
 * crypto under ssh2's keygen) on first start, kept at mode 0600 so clients'
 * known_hosts stay valid across restarts. Also makes an empty authorized_keys.
 */
export function ensureHostKey(state: string): { key: Buffer; publicKey: string; created: boolean } {
  const dir = sshDir(state);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const path = hostKeyPath(state);
  let created = false;
  if (!existsSync(path)) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'storm-manager' });
    // Written whole then renamed: a crash never leaves half a key.
    writeFileSync(path + '.tmp', pair.private, { mode: 0o600 });
    renameSync(path + '.tmp', path);
    writeFileSync(path + '.pub', pair.public + '\n', { mode: 0o644 });
    created = true;
  }
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  const key = readFileSync(path);
  const parsed = ssh2.utils.parseKey(key);
  if (parsed instanceof Error) throw invalid(`SSH host key ${path} is unreadable: ${parsed.message}`, { hint: 'move it away and restart the manager to make a new one' });
  const one = Array.isArray(parsed) ? parsed[0]! : parsed;
  const ak = authorizedKeysPath(state);
  if (!existsSync(ak)) writeFileSync(ak, '# storm: one public key per line; prefix "storm-readonly " for read-only admins\n', { mode: 0o600 });
  return { key, publicKey: `${one.type} ${one.getPublicSSH().toString('base64')}`, created };
}
