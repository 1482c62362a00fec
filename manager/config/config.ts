import { join } from 'node:path';
import { hostname } from 'node:os';
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
  /** Enrolment endpoint (HTTPS, manager certificate) where `stormd join` sends its CSR; port 0 picks one. */
  enrollListen: string;
  /** DNS names and IPs the manager's certificate covers (the first is used in join URLs when listening on all addresses). */
  managerNames: string[];
  /** Lifetime of a join token, seconds. */
  joinTokenTtl: number;
  /** Seconds between health polls of an online hypervisor (failures back off up to 60 s). */
  hostPollSeconds: number;
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
  enrollListen: { type: 'string', default: '127.0.0.1:7721', env: 'STORM_ENROLL_LISTEN', flag: 'enroll-listen', doc: 'stormd enrolment endpoint HOST:PORT (port 0: any free port)', validate: hostPort },
  managerNames: { type: 'list', default: ['localhost', '127.0.0.1', '::1', hostname()], env: 'STORM_MANAGER_NAMES', doc: 'names and IPs in the manager certificate (comma-separated)' },
  joinTokenTtl: { type: 'int', default: 3600, env: 'STORM_JOIN_TOKEN_TTL', doc: 'join token lifetime in seconds', validate: (v) => (v > 0 && v <= 7 * 86400 ? undefined : 'expected 1..604800 seconds') },
  hostPollSeconds: { type: 'int', default: 10, env: 'STORM_HOST_POLL_SECONDS', doc: 'seconds between hypervisor health polls', validate: (v) => (v > 0 && v <= 3600 ? undefined : 'expected 1..3600 seconds') },
};

/** Build the manager config: defaults → <state>/config.json → env → flags. */
export function managerConfig(env: EnvSnapshot, flags: Record<string, unknown>): Readonly<ManagerConfig> {
  const pre = loadConfig(managerSchema, { env, flags });
  return loadConfig(managerSchema, { file: join(pre.state, 'config.json'), env, flags });
}
