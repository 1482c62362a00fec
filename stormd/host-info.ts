/** host.info: what this hypervisor has and how healthy it is, as data. */
import { access, readFile, statfs, constants } from 'node:fs/promises';
import { cpus, freemem, hostname, totalmem } from 'node:os';
import { run, which } from '../lib/exec.ts';
import { healthy, unhealthy, undetected, type Health } from '../lib/health.ts';
import { VERSION } from '../lib/version.ts';
import type { HostInfo } from './api/methods.ts';
import { CpuSampler } from './cpu-usage.ts';

export interface HostInfoDeps {
  name: string;
  state: string;
  libvirtUri: string;
  path: string;
  crlNumber: () => number;
  cert: () => { notBefore: Date; notAfter: Date };
}

export async function libvirtProbe(uri: string, path: string): Promise<{ version: string | undefined; health: Health }> {
  const virsh = await which('virsh', path);
  if (!virsh) return { version: undefined, health: undetected('libvirtd', 'virsh not found', 'apt-get install libvirt-clients libvirt-daemon-system') };
  const r = await run(virsh, ['-c', uri, 'version'], { timeoutMs: 10_000 });
  if (r.code === 0) {
    const v = /Running hypervisor:\s*\S+\s+(\S+)/.exec(r.stdout)?.[1];
    const lib = /Using library: libvirt (\S+)/.exec(r.stdout)?.[1];
    return { version: lib, health: healthy('libvirtd', `reachable at ${uri}${lib ? ` (libvirt ${lib}${v ? `, hypervisor ${v}` : ''})` : ''}`, { uri, libvirt: lib, hypervisor: v }) };
  }
  const why = (r.stderr.split('\n').find((l) => l.trim() && !/^error: failed to connect/.test(l)) ?? '').replace(/^error:\s*/, '').trim();
  return { version: undefined, health: unhealthy('libvirtd', `not reachable at ${uri}: ${why || 'no answer'}`, 'start it: virtlogd -d && libvirtd -d (as root), or fix --libvirt-uri', { uri }) };
}

/**
 * libvirt moves each QEMU process and thread into its cgroups; on cgroup2 each move waits for an
 * RCU grace period unless the hierarchy was mounted with favordynmods. A speed note, never a fault.
 */
export function cgroupHealth(procMounts: string): Health | undefined {
  const v2 = procMounts.split('\n').map((l) => l.split(' ')).filter((f) => f[2] === 'cgroup2' && f.length >= 4);
  if (!v2.length) return undefined;
  const slow = v2.filter((f) => !f[3]!.split(',').includes('favordynmods'));
  if (!slow.length) return healthy('cgroups', 'cgroup2 favours dynamic changes: guests start without waiting on cgroup moves', { favordynmods: true });
  const [, mnt, , opts] = slow[0]!;
  return undetected('cgroups', `${mnt} is mounted without favordynmods: each guest start waits ~35 ms moving QEMU into its cgroups`, `as root: scripts/setup, or mount -o remount,${opts},favordynmods ${mnt} (Linux 6.0 or later)`);
}

export async function kvmUsable(): Promise<boolean> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  if (!/\b(vmx|svm)\b/.test(cpuinfo)) return false;
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** One per process: each host.info reports CPU usage since the previous one (the manager polls on its interval). */
const cpuSampler = new CpuSampler();

export async function hostInfo(d: HostInfoDeps): Promise<HostInfo> {
  const [lv, kvm, fs, cpu, mounts] = await Promise.all([libvirtProbe(d.libvirtUri, d.path), kvmUsable(), statfs(d.state).catch(() => undefined), cpuSampler.percent(), readFile('/proc/mounts', 'utf8').catch(() => '')]);
  const cg = cgroupHealth(mounts);
  const free = fs ? fs.bavail * fs.bsize : 0;
  const total = fs ? fs.blocks * fs.bsize : 0;
  const health: Health[] = [
    lv.health,
    kvm ? healthy('kvm', 'KVM usable: guests run accelerated', { accel: 'kvm' }) : undetected('kvm', 'KVM not usable: guests run under TCG emulation', 'enable VT-x/AMD-V for speed; nothing else is needed'),
    !fs
      ? unhealthy('disk', `cannot stat ${d.state}`, 'check the state directory exists and is readable')
      : free < 1024 ** 3
        ? unhealthy('disk', `${(free / 1024 ** 2).toFixed(0)} MiB free under ${d.state}`, 'free disk space: the layer cache lives here', { free, total })
        : healthy('disk', `${(free / 1024 ** 3).toFixed(1)} GiB free under ${d.state}`, { free, total }),
    ...(cg ? [cg] : []),
  ];
  const c = cpus();
  const cert = d.cert();
  return {
    name: d.name,
    version: VERSION,
    hostname: hostname(),
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    ...(cpu === undefined ? {} : { cpuPercent: cpu }),
    memoryBytes: totalmem(),
    freeMemoryBytes: freemem(),
    diskFreeBytes: free,
    diskTotalBytes: total,
    libvirtUri: d.libvirtUri,
    libvirtVersion: lv.version,
    accel: kvm ? 'kvm' : 'tcg',
    crlNumber: d.crlNumber(),
    certNotBefore: cert.notBefore.toISOString(),
    certNotAfter: cert.notAfter.toISOString(),
    health,
  };
}
