import { join } from 'node:path';
import { loadConfig, parseHostPort, type Schema } from '../../lib/config.ts';
import type { EnvSnapshot } from '../../lib/env.ts';
import { defaultStateDir } from '../../lib/paths.ts';

/** The manager's configuration, frozen after validation and passed to constructors. */
export interface ManagerConfig {
  state: string;
  logLevel: string;
  libvirtUri: string;
  /** Admin SSH server (the console's door). */
  sshListen: string;
  /** Guest kernel image; empty means the newest installed cloud kernel. */
  kernel: string;
  /** Seconds between background channel refreshes (0: only on demand). */
  channelRefreshSeconds: number;
  /** Layer downloads running at once. */
  imageParallel: number;
  /** Free disk (MiB) that must remain after a layer download. */
  imageReserveMiB: number;
}

const hostPort = (v: string) => (parseHostPort(v) ? undefined : `expected HOST:PORT, got "${v}"`);

export const managerSchema: Schema<ManagerConfig> = {
  state: { type: 'string', default: defaultStateDir(), env: 'STORM_STATE', flag: 'state', doc: 'state directory (database, CA, control socket)' },
  logLevel: {
    type: 'string', default: 'info', env: 'STORM_LOG_LEVEL', flag: 'log-level', doc: 'debug | info | warn | error',
    validate: (v) => (['debug', 'info', 'warn', 'error'].includes(v) ? undefined : `expected debug|info|warn|error, got "${v}"`),
  },
  libvirtUri: { type: 'string', default: 'qemu:///system', env: 'STORM_LIBVIRT_URI', flag: 'libvirt-uri', doc: 'libvirt connection URI the local stormd uses' },
  sshListen: { type: 'string', default: '127.0.0.1:2222', env: 'STORM_SSH_LISTEN', flag: 'ssh-listen', doc: 'admin SSH server HOST:PORT', validate: hostPort },
  kernel: { type: 'string', default: '', env: 'STORM_KERNEL', flag: 'kernel', doc: 'guest kernel image (default: newest /boot/vmlinuz-*-cloud-amd64)' },
  channelRefreshSeconds: {
    type: 'int', default: 3600, env: 'STORM_CHANNEL_REFRESH', doc: 'seconds between background channel refreshes; 0 refreshes only on demand',
    validate: (v) => (v >= 0 ? undefined : `expected 0 or more seconds, got ${v}`),
  },
  imageParallel: { type: 'int', default: 3, env: 'STORM_IMAGE_PARALLEL', doc: 'layer downloads running at once', validate: (v) => (v >= 1 && v <= 64 ? undefined : `expected 1..64, got ${v}`) },
  imageReserveMiB: { type: 'int', default: 256, env: 'STORM_IMAGE_RESERVE_MIB', doc: 'free disk (MiB) a layer download must leave', validate: (v) => (v >= 0 ? undefined : `expected 0 or more, got ${v}`) },
};

/** Build the manager config: defaults → <state>/config.json → env → flags. */
export function managerConfig(env: EnvSnapshot, flags: Record<string, unknown>): Readonly<ManagerConfig> {
  const pre = loadConfig(managerSchema, { env, flags });
  return loadConfig(managerSchema, { file: join(pre.state, 'config.json'), env, flags });
}
