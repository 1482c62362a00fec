/**
 * A tiny initrd for boot tests (not the real initrd/): busybox-static, the
 * virtio-scsi modules with their dependencies, and an /init that prints a
 * marker on ttyS0, then one line per SCSI disk (name, read-only flag, the
 * first bytes of the disk, which the test writes as a label), the ext4 label
 * of partitions 1 and the swap signature of partitions 4, the hostname found on the storm-instance filesystem, and powers off
 * when the ACPI power button is pressed.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';

export const BOOT_MARKER = 'STORM-HV-BOOT-OK';
const MODULES = ['virtio_pci', 'virtio_scsi', 'sd_mod', 'button', 'evdev'];

/** Kernel command line the tiny initrd expects. */
export const BOOT_CMDLINE = 'console=ttyS0 quiet panic=-1';

/**
 * Parse the console's disk lines, ordered by SCSI target. The kernel's sdX
 * names are NOT guaranteed to follow targets: sd probes asynchronously, and
 * under load we saw target 0 named sdd. The target is what the host controls.
 */
export function disksByTarget(console: string): { name: string; target: number; ro: number; label: string }[] {
  const out: { name: string; target: number; ro: number; label: string }[] = [];
  for (const m of console.matchAll(/^STORM-HV-DISK (sd[a-z]+) target=(\d+) ro=(\d) label=([a-z0-9-]*)\r?$/gm)) {
    out.push({ name: m[1]!, target: Number(m[2]), ro: Number(m[3]), label: m[4]! });
  }
  return out.sort((a, b) => a.target - b.target);
}

/** The newest Debian cloud kernel under /boot, or undefined. */
export function findCloudKernel(): { kernel: string; version: string } | undefined {
  let names: string[];
  try {
    names = readdirSync('/boot');
  } catch {
    return undefined;
  }
  const k = names.filter((n) => /^vmlinuz-.*-cloud-amd64$/.test(n)).sort().pop();
  if (!k) return undefined;
  const version = k.slice('vmlinuz-'.length);
  return existsSync(`/lib/modules/${version}/modules.dep`) ? { kernel: `/boot/${k}`, version } : undefined;
}

/** Module files (relative to /lib/modules/VER) for `names`, dependencies first. */
export function moduleLoadOrder(version: string, names: string[]): string[] {
  const dep = new Map<string, string[]>();
  for (const line of readFileSync(`/lib/modules/${version}/modules.dep`, 'utf8').split('\n')) {
    const [file, deps] = line.split(':');
    if (file && deps !== undefined) dep.set(file, deps.trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map<string, string>();
  for (const f of dep.keys()) byName.set(f.split('/').pop()!.replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replace(/-/g, '_'), f);
  const out: string[] = [];
  const visit = (f: string) => {
    if (out.includes(f)) return;
    for (const d of dep.get(f) ?? []) visit(d);
    out.push(f);
  };
  for (const n of names) {
    const f = byName.get(n);
    if (f) visit(f); // absent: built into this kernel
  }
  return out;
}

const INIT = (mods: string[]) => `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${mods.join(' ')}; do insmod /mods/$m 2>/dev/null; done
# Listen for the ACPI power button before announcing anything, so a shutdown is never missed.
i=0
while [ $i -lt 50 ] && [ ! -e /dev/input/event0 ]; do sleep 0.1; i=$((i+1)); done
for e in /dev/input/event*; do
  (dd if=$e of=/dev/null bs=24 count=1 2>/dev/null; echo STORM-HV-POWEROFF; poweroff -f) &
done
# Wait until the set of SCSI disks stops growing.
prev=-1; i=0
while [ $i -lt 60 ]; do
  n=$(ls -d /sys/block/sd* 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] && [ "$n" = "$prev" ] && break
  prev=$n; i=$((i+1)); sleep 0.5
done
echo ${BOOT_MARKER}
# One line per disk: kernel name, SCSI target (from the H:C:T:L of its device), ro flag, label.
inst=
for d in /sys/block/sd*; do
  n=\${d##*/}
  hctl=$(readlink $d/device); hctl=\${hctl##*/}
  t=$(echo $hctl | cut -d: -f3)
  [ "$t" = 3 ] && inst=$n
  echo "STORM-HV-DISK $n target=$t ro=$(cat $d/ro) label=$(head -c 32 /dev/$n | tr -cd 'a-z0-9-')"
done
# No blkid in busybox-static: read the ext4 label (superblock + 0x78) and the swap signature ourselves.
for p in /dev/sd?1; do [ -b $p ] && echo "STORM-HV-PART \${p#/dev/} ext4-label=$(dd if=$p bs=1 skip=1144 count=16 2>/dev/null | tr -cd 'a-z0-9-')"; done
for p in /dev/sd?4; do [ -b $p ] && echo "STORM-HV-PART \${p#/dev/} swap=$(dd if=$p bs=1 skip=4086 count=10 2>/dev/null | tr -cd 'A-Z0-9')"; done
mkdir -p /mnt
if [ -n "$inst" ] && mount -t ext4 -o ro /dev/\${inst}1 /mnt 2>/dev/null; then
  echo "STORM-HV-HOSTNAME $(cat /mnt/root/etc/hostname)"
  umount /mnt
fi
echo STORM-HV-DISKS-DONE
while true; do sleep 60; done
`;

/** Build the initrd into `dir`/initrd.img; returns its path. */
export async function buildBootInitrd(dir: string, version: string): Promise<string> {
  const root = join(dir, 'initrd-root');
  for (const d of ['bin', 'mods']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  const mods = moduleLoadOrder(version, MODULES);
  const names: string[] = [];
  for (const rel of mods) {
    const src = `/lib/modules/${version}/${rel}`;
    const name = rel.split('/').pop()!.replace(/\.(xz|zst|gz)$/, '');
    const out = join(root, 'mods', name);
    if (rel.endsWith('.ko')) copyFileSync(src, out);
    else await decompress(src, out, rel.endsWith('.xz') ? 'xz' : rel.endsWith('.zst') ? 'zstd' : 'gzip');
    names.push(name);
  }
  writeFileSync(join(root, 'init'), INIT(names), { mode: 0o755 });
  const img = join(dir, 'initrd.img');
  await cpio(root, img);
  return img;
}

async function decompress(src: string, out: string, tool: string): Promise<void> {
  await pipeTo(tool, ['-dc', src], out);
}

async function cpio(root: string, out: string): Promise<void> {
  const list = await run('find', ['.', '-mindepth', '1'], { cwd: root });
  if (list.code !== 0) throw new Error(`find failed: ${list.stderr}`);
  await pipeTo('cpio', ['-o', '-H', 'newc', '--quiet'], out, { cwd: root, input: list.stdout });
}

function pipeTo(cmd: string, args: string[], out: string, opts: { cwd?: string; input?: string } = {}): Promise<void> {
  const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const ws = createWriteStream(out);
  let err = '';
  child.stderr.on('data', (b) => (err += b));
  child.stdout.pipe(ws);
  child.stdin.end(opts.input ?? '');
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const written = new Promise<void>((resolve, reject) => {
    ws.on('close', resolve);
    ws.on('error', reject);
  });
  return Promise.all([exited, written]).then(([code]) => {
    if (code !== 0) throw new Error(`${cmd} exited ${code}: ${err}`);
  });
}

/** A small raw disk whose first bytes are `label` (the boot test reads them back). */
export function writeLabelledDisk(path: string, label: string, sizeBytes = 1024 * 1024): void {
  const buf = Buffer.alloc(sizeBytes);
  buf.write(label.padEnd(32, '\n'), 0, 'latin1');
  writeFileSync(path, buf, { mode: 0o644 });
}
