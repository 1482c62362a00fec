// stormd's hypervisor side: (1) define+start through the libvirt driver to a
// running domain, layers already on disk, median of 10; (2) instance layer
// creation next to a 100 MB and a 10 GB appliance, and their ratio.
import { chmodSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../lib/exec.ts';
import { buildDomainXml } from '../stormd/hypervisor/libvirt/domain-xml.ts';
import type { DomainSpec } from '../stormd/hypervisor/driver.ts';
import { LibvirtDriver } from '../stormd/hypervisor/libvirt/libvirt-driver.ts';
import { InstanceLayers } from '../stormd/layers/instance.ts';
import { BOOT_CMDLINE, buildBootInitrd, findCloudKernel, writeLabelledDisk } from '../test/helpers/boot-initrd.ts';
import { median, result, type BenchResult } from './result.ts';

export default async function (): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'storm-hv-bench-'));
  chmodSync(dir, 0o755);
  const drv = new LibvirtDriver({ uri: 'qemu:///system' });
  const names: string[] = [];
  try {
    const out: BenchResult[] = [];

    // (1) define + start → running.
    const k = findCloudKernel();
    if (!k) throw new Error('no Debian cloud kernel under /boot');
    const initrd = await buildBootInitrd(dir, k.version);
    const disks = (['substrate', 'deployment', 'appliance'] as const).map((role) => {
      const p = join(dir, `${role}.img`);
      writeLabelledDisk(p, `storm-${role}`);
      chmodSync(p, 0o444);
      return { role, path: p, format: 'raw' as const, readonly: true };
    });
    const inst = join(dir, 'instance.img');
    writeLabelledDisk(inst, 'storm-instance');
    const times: number[] = [];
    const peer: number[] = [];
    await drv.health(); // warm the virsh session and KVM detection, as a running stormd would be
    const { virtType } = await drv.accel();
    for (let i = 0; i < 10; i++) {
      const name = `storm-hv-${randomBytes(4).toString('hex')}`;
      names.push(name);
      const spec: DomainSpec = {
        name,
        memoryMiB: 128,
        vcpus: 1,
        kernel: k.kernel,
        initrd,
        cmdline: BOOT_CMDLINE,
        disks: [...disks, { role: 'instance', path: inst, format: 'raw', readonly: false }],
        consoleLog: join(dir, `${name}.log`),
      };
      const ours = async () => {
        const t0 = performance.now();
        await drv.define(spec);
        const st = await drv.start(name);
        times.push((performance.now() - t0) / 1000);
        if (st.state !== 'running') throw new Error(`${name} is ${st.state} after start`);
      };
      // Peer: the same domain through the virsh CLI (one process per command), same machine, same moment.
      const xmlFile = join(dir, `${name}.xml`);
      writeFileSync(xmlFile, buildDomainXml(spec, virtType));
      const cli = async () => {
        const p0 = performance.now();
        const a = await run('virsh', ['-q', '-c', 'qemu:///system', 'define', xmlFile]);
        const b = await run('virsh', ['-q', '-c', 'qemu:///system', 'start', name]);
        peer.push((performance.now() - p0) / 1000);
        if (a.code !== 0 || b.code !== 0) throw new Error(`virsh peer failed: ${a.stderr}${b.stderr}`);
      };
      // Alternate who goes first, and let the previous QEMU be reaped, so neither side inherits the other's cleanup.
      for (const f of i % 2 ? [cli, ours] : [ours, cli]) {
        await new Promise((r) => setTimeout(r, 200));
        await f();
        await drv.poweroff(name);
        await drv.undefine(name);
      }
      names.pop();
    }
    out.push(
      result({ name: 'stormd define+start to running (median of 10)', value: median(times), unit: 's', peer: 'virsh define+start CLI', peerValue: median(peer), bar: '< 0.5 s', pass: (_r, v) => v < 0.5 }),
    );

    // (2) instance layer next to a 100 MB and a 10 GB appliance (sparse files: the layer never reads them).
    const layers = new InstanceLayers(join(dir, 'instances'));
    const small = join(dir, 'appliance-100M.img');
    const big = join(dir, 'appliance-10G.img');
    writeFileSync(small, '');
    truncateSync(small, 100 * 1024 * 1024);
    writeFileSync(big, '');
    truncateSync(big, 10 * 1024 * 1024 * 1024);
    const t: Record<string, number[]> = { small: [], big: [] };
    for (let i = 0; i < 7; i++) {
      // Alternate the order so machine noise falls on both sides.
      for (const which of i % 2 ? (['big', 'small'] as const) : (['small', 'big'] as const)) {
        const id = `bench-${which}-${i}`;
        const t0 = performance.now();
        await layers.create(id, { hostname: `${which}-${i}`, files: { '/etc/storm/appliance': which === 'big' ? big : small } });
        t[which]!.push((performance.now() - t0) / 1000);
        await layers.remove(id);
      }
    }
    const s = median(t.small!);
    const b = median(t.big!);
    out.push(result({ name: 'instance layer for a 100 MB appliance (median of 7)', value: s, unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }));
    out.push(result({ name: 'instance layer for a 10 GB appliance (median of 7)', value: b, unit: 's', peer: '100 MB appliance', peerValue: s, bar: 'ratio < 1.2', pass: (r) => r !== null && r < 1.2 }));
    return out;
  } finally {
    for (const n of names) {
      await drv.poweroff(n).catch(() => undefined);
      await drv.undefine(n).catch(() => undefined);
    }
    await drv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
