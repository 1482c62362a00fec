// Disk used by 50 instances of the fixture appliances (25 wiki, 25 blog,
// interleaved) against the sum of their unique layers. Provisioned through
// the manager's InstanceService and a real stormd process (libvirt
// test:///default: domains are defined and "started" without booting 50
// guests). Real bytes on disk (du: allocated blocks) of the stormd's cached
// disk layers plus every instance's directory, against the layers' sizes as
// the appliance XML lists them. Kernel and initrd are left out of both sides.
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, countingServer, duBytes, fixtureAppliances, fixtureManifest, instanceService, rmDir, stormdFleet } from './fleet.ts';
import { result, type BenchResult } from './result.ts';

const N = 50;

export default async function (): Promise<BenchResult[]> {
  const m = fixtureManifest();
  const dir = benchDir('storm-disk-bench-');
  const files = new Map<string, string>();
  const srv = await countingServer(files);
  let fleet: Awaited<ReturnType<typeof stormdFleet>> | undefined;
  let store: { close: () => Promise<void> } | undefined;
  try {
    const apps = fixtureAppliances(m, srv, files);
    const kinds = [apps.get('wiki')!, apps.get('blog')!];
    fleet = await stormdFleet(dir, 1, 'test:///default');
    const made = await instanceService(dir, fleet.hosts, apps);
    store = made.store;
    const svc = made.svc;
    const tag = randomBytes(2).toString('hex');
    for (let i = 0; i < N; i++) {
      const inst = await svc.create({ name: `b6-${tag}-${i}`, appliance: kinds[i % 2]!.id, host: 'hv1' });
      await svc.provision(inst.id);
    }
    const state = fleet.states[0]!;
    const unique = new Map<string, number>();
    for (const a of kinds) for (const l of a.layers) unique.set(l.sha256, l.size);
    const cachedLayers = [...unique.keys()].reduce((n, sha) => n + duBytes(join(state, 'layers', sha)), 0);
    const instanceDirs = readdirSync(join(state, 'instances')).filter((d) => !d.startsWith('.'));
    if (instanceDirs.length !== N) throw new Error(`expected ${N} instance directories, found ${instanceDirs.length}`);
    const instances = duBytes(join(state, 'instances'));
    const layers = [...unique.values()].reduce((a, b) => a + b, 0);
    const used = cachedLayers + instances;
    const MB = 1e6;
    return [
      result({ name: `instance layers of ${N} instances on disk (du)`, value: instances / MB, unit: 'MB', peer: 'bar', peerValue: null, bar: `reported (${Math.round(instances / N / 1024)} KiB each)`, pass: () => true }),
      result({ name: `disk used by ${N} instances (wiki + blog): cached layers + instance layers (du)`, value: used / MB, unit: 'MB', peer: `sum of their ${unique.size} unique layers`, peerValue: layers / MB, bar: 'ratio < 1.05', pass: (r) => r !== null && r < 1.05 }),
    ];
  } finally {
    await store?.close();
    await fleet?.stop();
    await srv.close();
    rmDir(dir);
  }
}
