// The layered appliance against the same content as one traditional disk:
// boot-to-service time (QEMU TCG, first HTTP answer through a host forward),
// the initrd's size, and sequential writes in a guest to the union against a
// data volume. Needs fixtures/build (npm run bench builds it).
import { copyFileSync, mkdtempSync, rmSync, statSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { bootGuest, fixtureLayer, fixtureManifest, FIXTURES, type GuestDisk } from '../test/helpers/qemu.ts';
import { buildDataVolume, buildInstanceDisk } from '../manager/images/instance-disk.ts';
import { median, result, type BenchResult } from './result.ts';

const RUNS = 5;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

/** Seconds from starting QEMU to the wiki's first answer on the forwarded port. */
async function bootToService(kernel: string, initrd: string, disks: GuestDisk[]): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const g = bootGuest(undefined, { kernel, initrd, disks, httpPort: port });
  try {
    // Knock only once the guest has its address: early connections to the forward stall in
    // QEMU's user-mode stack (TCP retransmit backoff) and would measure that instead.
    await g.waitFor(/STORM-GUEST: eth0/);
    for (;;) {
      if (g.proc.exitCode !== null) throw new Error(`guest exited before serving: ${g.output().slice(-1500)}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/cgi-bin/wiki?page=Home`, { signal: AbortSignal.timeout(1000) });
        const body = await r.text();
        if (r.ok && body.includes('Example Corp Wiki')) return (performance.now() - t0) / 1000;
      } catch {
        /* not up yet */
      }
      if (performance.now() - t0 > 120_000) throw new Error(`no answer within 120 s: ${g.output().slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    g.kill();
    await g.exited;
  }
}

/** MB/s of a 48 MiB fsync'd dd in the guest, from the /proc/uptime stamps printed around it. */
function ddRate(out: string, tag: string): number {
  const m = new RegExp(`T: ${tag}=([\\d.]+) ([\\d.]+)`).exec(out);
  if (!m) throw new Error(`no dd result for ${tag}: ${out.slice(-1500)}`);
  return (48 * 1048576) / 1e6 / Math.max(0.01, Number(m[2]) - Number(m[1]));
}

export default async function (): Promise<BenchResult[]> {
  const m = fixtureManifest();
  const { kernel, initrd } = { kernel: m.boot.kernel.path, initrd: m.boot.initrd.path };
  const dir = mkdtempSync(join(tmpdir(), 'storm-bench-initrd-'));
  chmodSync(dir, 0o755);
  try {
    const lowers: GuestDisk[] = [
      { path: fixtureLayer(m, 'substrate', 'busybox-substrate'), readonly: true, scsiId: 0 },
      { path: fixtureLayer(m, 'deployment', 'wiki-example-corp'), readonly: true, scsiId: 1 },
      { path: fixtureLayer(m, 'appliance', 'wiki'), readonly: true, scsiId: 2 },
    ];
    const template = join(dir, 'inst-template.img');
    await buildInstanceDisk({ out: template });
    const classic = m.appliances.find((a) => a.traditional)!;
    const layered: number[] = [];
    const single: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Fresh writable disks each run (first boot seeds the wiki's pages in both).
      const inst = join(dir, `inst-${i}.img`);
      copyFileSync(template, inst);
      const disk = join(dir, `classic-${i}.img`);
      copyFileSync(join(FIXTURES, classic.disk!.path), disk);
      const order = i % 2 ? ['single', 'layered'] : ['layered', 'single'];
      for (const o of order) {
        if (o === 'layered') layered.push(await bootToService(kernel, initrd, [...lowers, { path: inst, scsiId: 3 }]));
        else single.push(await bootToService(kernel, initrd, [{ path: disk, scsiId: 0 }]));
      }
    }
    const out: BenchResult[] = [];
    out.push(result({ name: 'boot to service, layered wiki (4 disks) vs one traditional disk, median of 5', value: median(layered), unit: 's', peer: 'traditional disk', peerValue: median(single), bar: '< 1.10', pass: (r) => r !== null && r < 1.1 }));
    out.push(result({ name: 'initrd size (gzip cpio: busybox + modules)', value: statSync(initrd).size / 1024, unit: 'KiB', peer: 'bar', peerValue: null, bar: '< 4096 KiB', pass: (_r, v) => v < 4096 }));

    // Sequential writes inside one guest: the union (instance layer) and a data volume.
    const script = join(dir, 'dd');
    const { writeFileSync, mkdirSync } = await import('node:fs');
    mkdirSync(script);
    writeFileSync(
      join(script, 'dd.sh'),
      'up() { cut -d" " -f1 /proc/uptime; }\n' +
        'for i in 1 2 3; do\n' +
        '  for w in union:/bench data:/data/bench; do\n' +
        '    a=$(up); dd if=/dev/zero of=${w#*:}.$i bs=1M count=48 conv=fsync 2>/dev/null; b=$(up)\n' +
        '    echo "T: ${w%%:*}$i=$a $b"; rm -f ${w#*:}.$i; sync\n' +
        '  done\n' +
        'done\n',
    );
    const inst = join(dir, 'inst-dd.img');
    await buildInstanceDisk({ dir: script, out: inst, freeMiB: 160 });
    const data = await buildDataVolume({ out: join(dir, 'data.img'), name: 'bench', sizeMiB: 160 });
    const g = bootGuest(undefined, { kernel, initrd, append: 'storm.data=bench:/data storm.test=/dd.sh', disks: [...lowers, { path: inst, scsiId: 3 }, { path: data.path, scsiId: 4 }] });
    const text = await g.exited;
    const union = median([1, 2, 3].map((i) => ddRate(text, `union${i}`)));
    const vol = median([1, 2, 3].map((i) => ddRate(text, `data${i}`)));
    out.push(result({ name: 'sequential write in a guest (48 MiB, fsync): union vs data volume, median of 3', value: union, unit: 'MB/s', peer: 'data volume', peerValue: vol, bar: 'reported', pass: () => true }));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
