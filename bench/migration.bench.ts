// Bytes a cold migration moves against the instance's full disk size (its
// layers plus its instance layer). The manager's InstanceService.migrate over
// two stormd hypervisors on this machine (LocalHostAgent, each with its own
// state dir and libvirt test:///default session), through the HostAgent
// contract: the target pulls what it lacks by URL + digest. Every byte is
// counted where it is served: the layer server, and the source's export of
// its instance layer (served here from LocalHostAgent.exportedFile, as
// stormd's HTTPS handler does). The target already holds the appliance's
// layers (it runs others of the same appliance): the normal case. A target
// holding nothing is reported too.
import { randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import type { HostDirectory } from '../manager/instances/service.ts';
import { LibvirtDriver } from '../stormd/hypervisor/libvirt/libvirt-driver.ts';
import { LocalHostAgent } from '../stormd/host-agent.ts';
import { benchDir, countingServer, fixtureAppliances, fixtureManifest, instanceService, rmDir } from './fleet.ts';
import { result, type BenchResult } from './result.ts';

export default async function (): Promise<BenchResult[]> {
  const m = fixtureManifest();
  const dir = benchDir('storm-mig-bench-');
  const files = new Map<string, string>();
  const srv = await countingServer(files);
  const agents = new Map<string, LocalHostAgent>();
  const drivers: LibvirtDriver[] = [];
  // The source's export endpoint: `<id>/<sha256>` → the instance layer, bytes counted.
  let exported = 0;
  const exp = http.createServer((req, res) => {
    const [host, id, sha] = (req.url ?? '').split('/').filter(Boolean);
    const a = agents.get(host ?? '');
    if (!a || !id || !sha) return res.writeHead(404).end();
    a.exportedFile(id, sha).then(
      (path) => {
        res.writeHead(200, { 'content-length': statSync(path).size });
        createReadStream(path).on('data', (c) => (exported += c.length)).pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => exp.listen(0, '127.0.0.1', r));
  const expUrl = `http://127.0.0.1:${(exp.address() as { port: number }).port}`;
  let store: { close: () => Promise<void> } | undefined;
  try {
    const wiki = fixtureAppliances(m, srv, files).get('wiki')!;
    for (const h of ['hv1', 'hv2', 'hv3']) {
      const driver = new LibvirtDriver({ uri: 'test:///default' });
      drivers.push(driver);
      agents.set(h, new LocalHostAgent({ host: h, stateDir: join(dir, h), driver, exportBaseUrl: `${expUrl}/${h}` }));
    }
    const hosts: HostDirectory = { list: async () => [...agents.keys()].map((name) => ({ name, online: true })), agent: (n) => agents.get(n)! };
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
      const layerFile = agents.get('hv1')!.instances.path(inst.id);
      const full = wiki.layers.reduce((n, l) => n + l.size, 0) + statSync(layerFile).size;
      const before = srv.sent() + exported;
      const rep = await svc.migrate(inst.id, to);
      const moved = srv.sent() + exported - before;
      if ((await svc.get(inst.id)).host !== to) throw new Error(`${inst.name} is not on ${to} after migrating`);
      if (rep.bytesMoved !== moved) throw new Error(`the migration reports ${rep.bytesMoved} bytes moved, the servers sent ${moved}`);
      return { moved, full, instanceLayer: rep.instanceLayerBytes };
    };
    const warm = await move('hv2');
    const cold = await move('hv3');
    return [
      result({ name: 'migration to a host holding the layers: bytes moved', value: warm.moved, unit: 'B', peer: `instance's full disk (layers + ${warm.instanceLayer} B instance layer)`, peerValue: warm.full, bar: 'ratio < 0.05', pass: (r) => r !== null && r < 0.05 }),
      result({ name: 'migration to an empty host: bytes moved (layers, kernel, initrd, instance layer)', value: cold.moved, unit: 'B', peer: "instance's full disk", peerValue: cold.full, bar: 'reported', pass: () => true }),
    ];
  } finally {
    await store?.close();
    for (const d of drivers) await d.close();
    await new Promise<void>((r) => (exp.closeAllConnections(), exp.close(() => r())));
    await srv.close();
    rmDir(dir);
  }
}
