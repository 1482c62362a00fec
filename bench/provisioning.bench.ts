// Provisioning time, request to domain running, layers already cached on the
// host: a layered 1 GiB appliance against a traditional appliance whose 1 GiB
// disk image each instance gets as its own copy. The real path: the manager's
// InstanceService (create + provision) → StormdHostAgent → mutual-TLS XML-RPC
// → a real stormd process → libvirt qemu:///system (QEMU TCG). Median of 5
// each, alternating. The 1 GiB image is real data (an ext4 layer holding a
// ~900 MiB file of non-zero bytes), and stormd's cache holds it fully
// allocated (it was downloaded), so the copy reads and writes every byte.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ApplianceSpec } from '../manager/instances/model.ts';
import { domainName } from '../manager/instances/model.ts';
import type { DiskLayerRef } from '../manager/instances/host-agent.ts';
import type { Checkpoint } from '../manager/instances/crash-points.ts';
import { benchDir, countingServer, fixtureAppliances, fixtureManifest, instanceService, rmDir, sha256File, stormdFleet } from './fleet.ts';
import { median, result, type BenchResult } from './result.ts';

const GiB = 1024 * 1024 * 1024;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

/** A 1 GiB ext4 layer (label `label`) whose tree holds one large file of non-zero bytes. */
export function bigLayer(dir: string, label: string): string {
  const stage = join(dir, 'stage');
  mkdirSync(join(stage, 'root', 'opt', 'big'), { recursive: true });
  mkdirSync(join(stage, 'work'));
  const data = join(stage, 'root', 'opt', 'big', 'data.bin');
  const fd = openSync(data, 'w');
  const block = randomBytes(1 << 20);
  for (let i = 0; i < 900; i++) {
    block.writeUInt32LE(i, 0); // no two MiB alike
    writeSync(fd, block);
  }
  closeSync(fd);
  const img = join(dir, `${label}-1g.img`);
  const r = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-L', label, '-d', stage, img, `${GiB / 1024}k`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mke2fs: ${r.stderr}`);
  rmDir(stage);
  if (statSync(img).size !== GiB) throw new Error(`${img} is not 1 GiB`);
  return img;
}

export default async function (): Promise<BenchResult[]> {
  const m = fixtureManifest();
  const dir = benchDir('storm-prov-bench-');
  const files = new Map<string, string>();
  const srv = await countingServer(files);
  let fleet: Awaited<ReturnType<typeof stormdFleet>> | undefined;
  let store: { close: () => Promise<void> } | undefined;
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    const wiki = fixtureAppliances(m, srv, files).get('wiki')!;
    const img = bigLayer(dir, 'storm-appliance');
    const big: DiskLayerRef = { role: 'appliance', sha256: sha256File(img), size: GiB, url: `${srv.url}big` };
    files.set('big', img);
    // Layered: the wiki's substrate and deployment around a 1 GiB appliance layer.
    const layered: ApplianceSpec = { ...wiki, id: 'big-layered', layers: wiki.layers.map((l) => (l.role === 'appliance' ? big : l)) };
    // Traditional: the same 1 GiB image as the one disk.
    const classic: ApplianceSpec = { ...wiki, id: 'big-classic', layers: [{ ...big, role: 'disk' }] };
    fleet = await stormdFleet(dir, 1, 'qemu:///system');
    // With the manager's CA: each instance's layer carries its own certificate and key, as in production.
    const made = await instanceService(dir, fleet.hosts, new Map([[layered.id, layered], [classic.id, classic]]), fleet.manager.pki, process.env.BENCH_TRACE ? tracePoints() : undefined);
    store = made.store;
    const svc = made.svc;
    const agent = fleet.hosts.agent('hv1');
    if (process.env.BENCH_TRACE) traceAgent(agent);
    // Layers already cached on the host: fetched before any timing.
    for (const l of [wiki.kernel!, wiki.initrd!, ...layered.layers]) await agent.ensureLayer(l);

    // Two honest situations for the cached image: still in the page cache (it was just
    // fetched; the copy reads RAM), and evicted from it (a host that fetched it long ago:
    // the copy reads the disk). Eviction is per file (dd iflag=nocache), nobody else's pages.
    const cached = [wiki.kernel!, wiki.initrd!, ...layered.layers].map((l) => join(fleet!.states[0]!, 'layers', l.sha256));
    const evict = () => {
      for (const f of cached) spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
    };
    const times: Record<string, number[]> = {};
    for (let i = 0; i < RUNS; i++) {
      for (const mode of ['warm', 'cold'] as const) {
        for (const app of i % 2 ? [classic, layered] : [layered, classic]) {
          const name = `b6-${app.id === classic.id ? 'c' : 'l'}${i}-${randomBytes(2).toString('hex')}`;
          // Each run from a quiet disk: the last run's deletes and writeback flushed, its QEMU reaped.
          spawnSync('sync');
          await new Promise((r) => setTimeout(r, 300));
          if (mode === 'cold') evict();
          const t0 = performance.now();
          const inst = await svc.create({ name, appliance: app.id, host: 'hv1' });
          cleanup.push(() => svc.destroy(inst.id).catch(() => undefined));
          await svc.provision(inst.id);
          const dt = (performance.now() - t0) / 1000;
          const st = await agent.state(domainName(inst.id));
          if (st !== 'running') throw new Error(`${name}: domain is ${st} after provisioning`);
          (times[`${app.id}/${mode}`] ??= []).push(dt);
          await svc.destroy(inst.id);
          cleanup.pop();
        }
      }
    }
    const out: BenchResult[] = [];
    for (const [mode, what] of [['warm', 'image in the page cache'], ['cold', 'image evicted from the page cache']] as const) {
      const l = median(times[`big-layered/${mode}`]!);
      const c = median(times[`big-classic/${mode}`]!);
      out.push(
        result({ name: `provision a traditional 1 GiB appliance (own copy; ${what}), to running (median of ${RUNS})`, value: c, unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }),
        result({ name: `provision a layered 1 GiB appliance (${what}), to running (median of ${RUNS})`, value: l, unit: 's', peer: 'traditional 1 GiB copy', peerValue: c, bar: 'ratio < 0.1', pass: (r) => r !== null && r < 0.1 }),
      );
    }
    return out;
  } finally {
    for (const u of cleanup.reverse()) await u();
    await store?.close();
    await fleet?.stop();
    await srv.close();
    rmDir(dir);
  }
}

/** BENCH_TRACE=1: print when provisioning passes each of its steps (ms since the last). */
function tracePoints(): Checkpoint {
  let last = performance.now();
  return (op, point) => {
    const now = performance.now();
    process.stderr.write(`  @${op}/${point} ${Math.round(now - last)} ms\n`);
    last = now;
  };
}

/** BENCH_TRACE=1: print how long each hypervisor call of a provisioning takes. */
function traceAgent(agent: object): void {
  const a = agent as Record<string, unknown>;
  for (const k of ['layers', 'ensureLayer', 'createInstanceLayer', 'define', 'start', 'state']) {
    const f = a[k] as (...x: unknown[]) => Promise<unknown>;
    a[k] = async (...x: unknown[]) => {
      const t0 = performance.now();
      try {
        return await f.apply(agent, x);
      } finally {
        process.stderr.write(`  ${k} ${Math.round(performance.now() - t0)} ms\n`);
      }
    };
  }
}
