// Bytes a cold migration moves against the instance's full disk size (its
// layers plus its instance layer). The real path: the manager's
// InstanceService.migrate → StormdHostAgent → three stormd processes on this
// machine (each its own state dir and libvirt test:///default session); the
// target pulls the shared layers it lacks from the layer server (bytes counted
// where served) and the instance layer from the source stormd's HTTPS export
// (mutual TLS; counted as the bytes that landed on the target). The target
// already holds the appliance's layers (it runs others of the same
// appliance): the normal case. A target holding nothing is reported too.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, countingServer, fixtureAppliances, fixtureManifest, instanceService, rmDir, stormdFleet } from './fleet.ts';
import { result, type BenchResult } from './result.ts';

export default async function (): Promise<BenchResult[]> {
  const m = fixtureManifest();
  const dir = benchDir('storm-mig-bench-');
  const files = new Map<string, string>();
  const srv = await countingServer(files);
  let fleet: Awaited<ReturnType<typeof stormdFleet>> | undefined;
  let store: { close: () => Promise<void> } | undefined;
  try {
    const wiki = fixtureAppliances(m, srv, files).get('wiki')!;
    fleet = await stormdFleet(dir, 3, 'test:///default');
    const { hosts, states } = fleet;
    const stateOf = (h: string) => states[fleet!.names.indexOf(h)]!;
    const made = await instanceService(dir, hosts, new Map([[wiki.id, wiki]]));
    store = made.store;
    const svc = made.svc;
    const refs = [wiki.kernel!, wiki.initrd!, ...wiki.layers];
    for (const h of ['hv1', 'hv2']) for (const l of refs) await hosts.agent(h).ensureLayer(l);

    const tag = randomBytes(2).toString('hex');
    const move = async (to: string) => {
      const inst = await svc.create({ name: `b6-${tag}-${to}`, appliance: wiki.id, host: 'hv1' });
      await svc.provision(inst.id);
      await svc.poweroff(inst.id);
      const layerOn = (h: string) => join(stateOf(h), 'instances', inst.id, 'instance.qcow2');
      const full = wiki.layers.reduce((n, l) => n + l.size, 0) + statSync(layerOn('hv1')).size;
      const before = srv.sent();
      const rep = await svc.migrate(inst.id, to);
      const moved = srv.sent() - before + statSync(layerOn(to)).size;
      if ((await svc.get(inst.id)).host !== to) throw new Error(`${inst.name} is not on ${to} after migrating`);
      if (rep.bytesMoved !== moved) throw new Error(`the migration reports ${rep.bytesMoved} bytes moved, ${moved} arrived`);
      await svc.destroy(inst.id);
      return { moved, full, instanceLayer: rep.instanceLayerBytes };
    };
    const warm = await move('hv2');
    const cold = await move('hv3');
    return [
      result({ name: 'migration to a host holding the layers (real stormd, HTTPS export): bytes moved', value: warm.moved, unit: 'B', peer: `instance's full disk (layers + ${warm.instanceLayer} B instance layer)`, peerValue: warm.full, bar: 'ratio < 0.05', pass: (r) => r !== null && r < 0.05 }),
      result({ name: 'migration to an empty host: bytes moved (layers, kernel, initrd, instance layer)', value: cold.moved, unit: 'B', peer: "instance's full disk", peerValue: cold.full, bar: 'reported', pass: () => true }),
    ];
  } finally {
    await store?.close();
    await fleet?.stop();
    await srv.close();
    rmDir(dir);
  }
}
