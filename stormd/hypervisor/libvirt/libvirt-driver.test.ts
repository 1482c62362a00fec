// The conformance suite against libvirt's test driver (fast, no guests) and
// against qemu:///system with a real TCG/KVM boot of the Debian cloud kernel.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { StormError } from '../../../lib/errors.ts';
import { run } from '../../../lib/exec.ts';
import { BOOT_CMDLINE, BOOT_MARKER, buildBootInitrd, disksByTarget, findCloudKernel, writeLabelledDisk } from '../../../test/helpers/boot-initrd.ts';
import { driverConformance, type Fixture } from '../driver.case.ts';
import { LibvirtDriver, parseIfList } from './libvirt-driver.ts';

const fake = '/var/lib/storm-hv-test';
driverConformance('libvirt test:///default', {
  factory: () => new LibvirtDriver({ uri: 'test:///default' }),
  fixture: async () => ({
    kernel: `${fake}/vmlinuz`,
    initrd: `${fake}/initrd.img`,
    cmdline: 'console=ttyS0',
    disks: { substrate: `${fake}/substrate.img`, deployment: `${fake}/deployment.img`, appliance: `${fake}/appliance.img`, instance: `${fake}/instance.qcow2` },
    dir: fake,
  }),
});

// One directory for the boot fixture; 0755 so libvirt-qemu can traverse it (docs/hypervisor.md).
const dir = mkdtempSync(join(tmpdir(), 'storm-hv-boot-'));
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

async function bootFixture(): Promise<Fixture | string> {
  const k = findCloudKernel();
  if (!k) return 'no Debian cloud kernel under /boot (install linux-image-cloud-amd64)';
  const probe = new LibvirtDriver({ uri: 'qemu:///system' });
  const h = await probe.health();
  await probe.close();
  if (h.status !== 'healthy') return `qemu:///system not usable: ${h.reason}`;
  const initrd = await buildBootInitrd(dir, k.version);
  const disks = { substrate: '', deployment: '', appliance: '', instance: '' };
  for (const role of ['substrate', 'deployment', 'appliance', 'instance'] as const) {
    disks[role] = join(dir, `${role}.img`);
    writeLabelledDisk(disks[role], `storm-${role}`);
    // Shared read-only layers are not relabelled by libvirt: they must be world-readable.
    chmodSync(disks[role], role === 'instance' ? 0o600 : 0o444);
  }
  return {
    kernel: k.kernel,
    initrd,
    cmdline: BOOT_CMDLINE,
    disks,
    dir,
    boot: { markers: { booted: BOOT_MARKER, disksDone: 'STORM-HV-DISKS-DONE', poweroff: 'STORM-HV-POWEROFF' }, parseDisks: disksByTarget, waitMs: 120_000 },
  };
}

driverConformance('libvirt qemu:///system (real boot)', {
  factory: () => new LibvirtDriver({ uri: 'qemu:///system' }),
  fixture: bootFixture,
});

test('an unreachable libvirt is health data, and calls fail with a code', async () => {
  const drv = new LibvirtDriver({ uri: 'test+unix:///default?socket=/nonexistent/storm-hv.sock' });
  try {
    const h = await drv.health();
    assert.equal(h.status, 'unhealthy');
    assert.ok(h.fix && h.fix.length > 0);
    await assert.rejects(drv.list(), (e: unknown) => e instanceof StormError && e.code === 'unreachable');
  } finally {
    await drv.close();
  }
  const missing = new LibvirtDriver({ uri: 'test:///default', virsh: '/nonexistent/virsh' });
  try {
    assert.equal((await missing.health()).status, 'undetected');
    await assert.rejects(missing.state('x'), (e: unknown) => e instanceof StormError && e.code === 'unavailable');
  } finally {
    await missing.close();
  }
});

test("a domain STORM did not define: its console is not read (it could name any host file)", async () => {
  const drv = new LibvirtDriver({ uri: 'test:///default' });
  try {
    // test:///default ships a domain called "test" that is not ours.
    await assert.rejects(drv.consoleRead('test', { bytes: 100 }), (e: unknown) => e instanceof StormError && e.code === 'invalid');
  } finally {
    await drv.close();
  }
});

test('a crafted qcow2 whose header names a host file as backing: QEMU never opens it', async (t) => {
  const k = findCloudKernel();
  if (!k) return t.skip('no Debian cloud kernel under /boot');
  const drv = new LibvirtDriver({ uri: 'qemu:///system' });
  const name = `storm-hv-${Date.now().toString(36)}`;
  t.after(async () => {
    await drv.poweroff(name).catch(() => undefined);
    await drv.undefine(name).catch(() => undefined);
    await drv.close();
  });
  if ((await drv.health()).status !== 'healthy') return t.skip('qemu:///system not usable');
  const d = mkdtempSync(join(tmpdir(), 'storm-hv-evil-'));
  chmodSync(d, 0o755);
  t.after(() => rmSync(d, { recursive: true, force: true }));
  writeFileSync(join(d, 'host-secret'), 'not for guests\n', { mode: 0o644 });
  const evil = join(d, 'evil.qcow2');
  const r = await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', join(d, 'host-secret'), '-F', 'raw', evil]);
  assert.equal(r.code, 0, r.stderr);
  await drv.define({ name, memoryMiB: 128, vcpus: 1, kernel: k.kernel, initrd: await buildBootInitrd(d, k.version), cmdline: BOOT_CMDLINE, disks: [{ role: 'traditional', path: evil, format: 'qcow2', readonly: false }], consoleLog: join(d, 'console.log') });
  await drv.start(name);
  const live = await run('virsh', ['-c', 'qemu:///system', 'dumpxml', name]);
  assert.match(live.stdout, /<backingStore\/>/);
  assert.doesNotMatch(live.stdout, /host-secret/, 'libvirt did not follow the header to the host file');
});

test('domiflist rows: bridged NICs with their taps; odd or hostile rows are dropped', () => {
  const out = [
    ' Interface   Type     Source     Model    MAC',
    '-----------------------------------------------------------',
    ' vnet1       bridge   stormbr0   virtio   52:54:00:5f:55:29',
    ' -           bridge   stormbr0   virtio   52:54:00:00:00:01',
    ' ../../etc   bridge   stormbr0   virtio   52:54:00:00:00:02',
    ' vnet2       bridge   a/b        virtio   52:54:00:00:00:03',
    ' vnet3       network  default    virtio   52:54:00:00:00:04',
    ' vnet4 bridge',
    '',
  ].join('\n');
  assert.deepEqual(parseIfList(out), [
    { iface: 'vnet1', type: 'bridge', source: 'stormbr0', mac: '52:54:00:5f:55:29' },
    { iface: 'vnet3', type: 'network', source: 'default', mac: '52:54:00:00:00:04' },
  ]);
});
