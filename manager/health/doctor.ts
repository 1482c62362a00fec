import { access, mkdir, readdir, readFile, rm, writeFile, constants } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { run, which } from '../../lib/exec.ts';
import { healthy, probe, undetected, unhealthy, type Health } from '../../lib/health.ts';
import { parseHostPort } from '../../lib/config.ts';
import type { ManagerConfig } from '../config/config.ts';

/** What doctor needs to know; `managerRunning` turns "port in use" into "held by us". */
export interface DoctorInput {
  config: Readonly<ManagerConfig>;
  path: string;
  managerRunning: boolean;
  nodeVersion?: string;
}

const SETUP = 'run as root: scripts/setup (installs the Debian packages STORM needs)';

export async function checkNode(version: string): Promise<Health> {
  const [maj, min] = version.replace(/^v/, '').split('.').map(Number) as [number, number];
  if (maj > 20 || (maj === 20 && min >= 11)) return healthy('node', `Node.js ${version}`, { version });
  return unhealthy('node', `Node.js ${version} is too old`, 'install Node.js 20.11 or newer');
}

async function checkBinary(component: string, name: string, path: string, pkg: string, versionArgs?: string[]): Promise<Health> {
  const p = await which(name, path);
  if (!p) return undetected(component, `${name} not found on PATH`, `apt-get install ${pkg} (or ${SETUP})`);
  if (!versionArgs) return healthy(component, p, { path: p });
  const r = await run(p, versionArgs, { timeoutMs: 5000 });
  const line = (r.stdout || r.stderr).split('\n')[0]?.trim() ?? '';
  return healthy(component, `${p}${line ? ': ' + line : ''}`, { path: p, version: line });
}

export async function checkLibvirt(uri: string, path: string): Promise<Health> {
  const virsh = await which('virsh', path);
  if (!virsh) return undetected('libvirtd', 'virsh not found', `apt-get install libvirt-clients libvirt-daemon-system (or ${SETUP})`);
  const r = await run(virsh, ['-c', uri, 'version', '--daemon'], { timeoutMs: 10_000 });
  if (r.code === 0) {
    const v = /Running against daemon:\s*(\S+)/.exec(r.stdout)?.[1] ?? /Using library: libvirt (\S+)/.exec(r.stdout)?.[1];
    return healthy('libvirtd', `reachable at ${uri}${v ? ` (libvirt ${v})` : ''}`, { uri, version: v });
  }
  const why = (r.stderr.split('\n').find((l) => l.includes('error:') && !/^error: failed to connect/.test(l)) ?? r.stderr.split('\n')[0] ?? '').replace(/^error:\s*/, '').trim();
  return unhealthy('libvirtd', `not reachable at ${uri}: ${why || 'no answer'}`, 'start it: virtlogd -d && libvirtd -d (as root; or systemctl start libvirtd), or set STORM_LIBVIRT_URI', { uri });
}

export async function checkKvm(): Promise<Health> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const flags = /\b(vmx|svm)\b/.test(cpuinfo);
  let dev = false;
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    dev = true;
  } catch {
    /* absent or no permission */
  }
  if (dev && flags) return healthy('kvm', 'KVM usable: guests run with hardware acceleration', { accel: 'kvm' });
  const why = !flags ? 'the CPU exposes no VT-x/AMD-V (nested virtualisation off?)' : '/dev/kvm missing or not accessible';
  return undetected('kvm', `KVM not usable (${why}): guests run under TCG emulation, slower but complete`, 'enable VT-x/AMD-V (or nested virtualisation) for speed; nothing else is needed');
}

export async function checkCloudKernel(configured: string): Promise<Health> {
  if (configured) {
    try {
      await access(configured, constants.R_OK);
      return healthy('kernel', configured, { path: configured });
    } catch {
      return unhealthy('kernel', `configured kernel ${configured} is not readable`, 'fix STORM_KERNEL / --kernel');
    }
  }
  const k = await findCloudKernel();
  if (k) return healthy('kernel', k, { path: k });
  return undetected('kernel', 'no /boot/vmlinuz-*-cloud-amd64', `apt-get install linux-image-cloud-amd64 (or ${SETUP})`);
}

/** Newest installed Debian cloud kernel, if any. */
export async function findCloudKernel(): Promise<string | undefined> {
  const names = (await readdir('/boot').catch(() => [] as string[])).filter((n) => /^vmlinuz-.*-cloud-amd64$/.test(n)).sort();
  const last = names.at(-1);
  return last ? join('/boot', last) : undefined;
}

export async function checkPort(component: string, listen: string, managerRunning: boolean): Promise<Health> {
  const hp = parseHostPort(listen);
  if (!hp) return unhealthy(component, `bad address "${listen}"`, 'use HOST:PORT');
  const free = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const srv = createServer();
    srv.once('error', (e) => resolve(e as NodeJS.ErrnoException));
    srv.listen(hp.port, hp.host, () => srv.close(() => resolve(null)));
  });
  if (!free) return healthy(component, `${listen} is free`);
  if (free.code === 'EADDRINUSE' && managerRunning) return healthy(component, `${listen} held by the running manager`);
  return unhealthy(component, `${listen} cannot be used: ${free.code ?? free.message}`, `stop what listens on ${listen}, or pick another address in config`);
}

export async function checkStateDir(dir: string): Promise<Health> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const f = join(dir, `.doctor-${process.pid}`);
    await writeFile(f, 'ok');
    await rm(f);
    return healthy('state', `${dir} is writable`, { path: dir });
  } catch (e) {
    return unhealthy('state', `${dir} is not writable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pick another with --state or STORM_STATE, or fix its permissions');
  }
}

/** Every component's health, in a stable order. Never throws. */
export async function doctor(input: DoctorInput): Promise<Health[]> {
  const { config, path } = input;
  return Promise.all([
    probe('node', () => checkNode(input.nodeVersion ?? process.version)),
    probe('state', () => checkStateDir(config.state)),
    probe('libvirtd', () => checkLibvirt(config.libvirtUri, path)),
    probe('kvm', () => checkKvm()),
    probe('qemu', () => checkBinary('qemu', 'qemu-system-x86_64', path, 'qemu-system-x86', ['--version'])),
    probe('qemu-img', () => checkBinary('qemu-img', 'qemu-img', path, 'qemu-utils', ['--version'])),
    probe('busybox', () => checkBinary('busybox', 'busybox', path, 'busybox-static')),
    probe('kernel', () => checkCloudKernel(config.kernel)),
    probe('krb5kdc', () => checkBinary('krb5kdc', 'krb5kdc', path, 'krb5-kdc krb5-admin-server')),
    probe('ssh-port', () => checkPort('ssh-port', config.sshListen, input.managerRunning)),
    probe('enroll-port', () => checkPort('enroll-port', config.enrollListen, input.managerRunning)),
    probe('ca', () => checkCa(join(config.state, 'pki'))),
    ...(config.ldapListen ? [probe('ldap-port', () => checkPort('ldap-port', config.ldapListen, input.managerRunning))] : []),
    probe('kdc-port', () => checkPort('kdc-port', config.kdcListen, input.managerRunning)),
  ]);
}

/** The CA: present with an owner-only key, not near expiry (created on the manager's first start). */
export async function checkCa(dir: string): Promise<Health> {
  const { stat } = await import('node:fs/promises');
  const { X509Certificate } = await import('node:crypto');
  let key;
  try {
    key = await stat(join(dir, 'ca.key'));
  } catch {
    return healthy('ca', `no CA yet in ${dir}: the manager creates it on first start`);
  }
  if ((key.mode & 0o077) !== 0) return unhealthy('ca', `${join(dir, 'ca.key')} is readable by others (mode ${(key.mode & 0o777).toString(8)})`, `chmod 600 ${join(dir, 'ca.key')}`);
  const ca = new X509Certificate(await readFile(join(dir, 'ca.pem'), 'utf8'));
  const left = (new Date(ca.validTo).getTime() - Date.now()) / 86_400_000;
  if (left < 90) return unhealthy('ca', `the CA expires ${ca.validTo} (${Math.floor(left)} days)`, 'plan a new CA: every hypervisor must then be enrolled again', { validTo: ca.validTo });
  return healthy('ca', `CA in ${dir}, valid until ${ca.validTo}`, { validTo: ca.validTo, fingerprint256: ca.fingerprint256 });
}
