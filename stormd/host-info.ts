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
  const [lv, kvm, fs, cpu] = await Promise.all([libvirtProbe(d.libvirtUri, d.path), kvmUsable(), statfs(d.state).catch(() => undefined), cpuSampler.percent()]);
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
