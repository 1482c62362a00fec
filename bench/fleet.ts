// Shared setup for the provisioning, disk and migration benches: the fixture
// layers (fixtures/build) served on loopback, an InstanceService on its own
// store, and hypervisors — in-process LocalHostAgents, or real stormd
// processes enrolled with a manager in this process and reached over
// mutual-TLS XML-RPC (the path the manager takes in production).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, chmodSync, closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../lib/logger.ts';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { managerConfig } from '../manager/config/config.ts';
import { EventBus } from '../manager/events.ts';
import { hostDirectory } from '../manager/hosts/host-directory.ts';
import type { DiskRole, HostAgent, LayerRef } from '../manager/instances/host-agent.ts';
import type { Checkpoint } from '../manager/instances/crash-points.ts';
import type { ApplianceSpec } from '../manager/instances/model.ts';
import { InstanceService, type HostDirectory } from '../manager/instances/service.ts';
import { startManager, type Manager } from '../manager/main.ts';
import type { Pki } from '../manager/pki/pki.ts';
import { Store } from '../manager/store/store.ts';
import { freePort, freeTcpUdpPort } from '../test/helpers/ports.ts';
import { joinStormd, startStormdProcess } from '../test/helpers/stormd.ts';

export const FIXTURES = join(PACKAGE_ROOT, 'fixtures', 'build');

interface Manifest {
  layers: { role: DiskRole; name: string; version: string; path: string; sha256: string; size: number }[];
  appliances: { id: string; version: string; memoryMiB: number; vcpus: number; layers?: Record<string, string>; traditional?: boolean }[];
  boot: { kernel: { path: string; sha256: string; size: number }; initrd: { path: string; sha256: string; size: number } };
}

/** Build the example channel's images (cached when nothing changed). */
export function fixtureManifest(): Manifest {
  const r = spawnSync('sh', [join(PACKAGE_ROOT, 'scripts', 'build-fixtures')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/build-fixtures failed: ${r.stderr}`);
  return JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;
}

/** A loopback HTTP server for files by name that counts the body bytes it sends. */
export async function countingServer(files: Map<string, string>): Promise<{ url: string; sent: () => number; close: () => Promise<void> }> {
  let sent = 0;
  const server = http.createServer((req, res) => {
    const path = files.get((req.url ?? '').replace(/^\//, ''));
    if (!path) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': statSync(path).size });
    if (req.method === 'HEAD') return res.end();
    createReadStream(path).on('data', (c) => (sent += c.length)).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/`, sent: () => sent, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

/** SHA-256 of a file, read in chunks (layers here are up to 1 GiB). */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(8 << 20);
  try {
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The fixture appliances as the instance service resolves them, their files served by `srv`. */
export function fixtureAppliances(m: Manifest, srv: { url: string }, files: Map<string, string>): Map<string, ApplianceSpec> {
  const ref = (role: LayerRef['role'], name: string, path: string, sha256: string, size: number): LayerRef => {
    files.set(name, path);
    return { role, sha256, size, url: srv.url + name };
  };
  const kernel = ref('kernel', 'kernel', m.boot.kernel.path, m.boot.kernel.sha256, m.boot.kernel.size);
  const initrd = ref('initrd', 'initrd', m.boot.initrd.path, m.boot.initrd.sha256, m.boot.initrd.size);
  const out = new Map<string, ApplianceSpec>();
  for (const a of m.appliances) {
    if (a.traditional || !a.layers) continue;
    const layers = Object.entries(a.layers).map(([role, nv]) => {
      const l = m.layers.find((x) => x.role === role && `${x.name}@${x.version}` === nv);
      if (!l) throw new Error(`fixture manifest: no ${role} layer ${nv}`);
      return ref(role as DiskRole, l.path, join(FIXTURES, l.path), l.sha256, l.size) as LayerRef & { role: DiskRole };
    });
    out.set(a.id, { id: a.id, version: a.version, layers, kernel, initrd, memoryMiB: a.memoryMiB, vcpus: a.vcpus, cmdline: 'console=ttyS0 panic=-1' });
  }
  return out;
}

/**
 * An InstanceService on its own store over the given hosts and appliances. Given the CA, each
 * instance gets its certificate and key in its layer, as from a real manager.
 */
export async function instanceService(dir: string, hosts: HostDirectory, appliances: Map<string, ApplianceSpec>, pki?: Pki, checkpoint?: Checkpoint): Promise<{ svc: InstanceService; store: Store }> {
  const store = await Store.open(join(dir, 'bench-db'));
  const svc = new InstanceService(
    store,
    hosts,
    {
      resolve: async (ref) => {
        const a = appliances.get(ref.split('@')[0]!);
        if (!a) throw new Error(`no appliance ${ref} in the bench`);
        return a;
      },
    },
    new EventBus(),
    silentLogger,
    {
      domain: 'bench.storm',
      ...(checkpoint ? { checkpoint } : {}),
      ...(pki
        ? {
            identity: {
              issue: async (inst: { name: string }) => await pki.issueInstance(inst.name),
              revoke: async ({ serial }: { serial?: string }) => serial && !pki.isRevoked(serial) && (await pki.revoke(serial, 'instance destroyed')),
            },
          }
        : {}),
    },
  );
  return { svc, store };
}

/** A directory libvirt's QEMU user can traverse (layers and instance disks live under it). */
export function benchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

export const rmDir = (dir: string) => rmSync(dir, { recursive: true, force: true });

/** A manager in this process (CA, enrolment) and `n` real stormd processes enrolled with it. */
export async function stormdFleet(dir: string, n: number, libvirtUri: string): Promise<{ manager: Manager; hosts: HostDirectory; names: string[]; states: string[]; stop: () => Promise<void> }> {
  const p = async () => `127.0.0.1:${await freeTcpUdpPort()}`;
  const config = managerConfig(
    { PATH: process.env.PATH },
    { state: join(dir, 'manager'), 'enroll-listen': '127.0.0.1:0', 'ldap-listen': '', 'ldaps-listen': '', 'ssh-listen': await p(), 'kdc-listen': await p(), 'kadmind-listen': await p(), 'kpasswd-listen': await p(), 'api-listen': '' },
  );
  const manager = await startManager({ config, log: silentLogger, path: process.env.PATH ?? '' });
  const stops: (() => Promise<unknown>)[] = [];
  const names: string[] = [];
  const states: string[] = [];
  try {
    for (let i = 1; i <= n; i++) {
      const name = `hv${i}`;
      const port = await freePort();
      const added = await manager.hosts.add(name, `127.0.0.1:${port}`);
      const state = join(dir, `stormd-${name}`);
      await joinStormd(manager.joinUrl!, added.token, state);
      chmodSync(state, 0o755);
      const d = await startStormdProcess(undefined, state, `127.0.0.1:${port}`, libvirtUri);
      stops.push(() => d.stop());
      names.push(name);
      states.push(state);
    }
  } catch (e) {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    await manager.stop();
    throw e;
  }
  return {
    manager,
    hosts: hostDirectory(manager.hosts),
    names,
    states,
    stop: async () => {
      for (const s of stops.reverse()) await s().catch(() => undefined);
      await manager.stop();
    },
  };
}

/** Real bytes on disk under a directory (`du -sB1`: allocated blocks, not apparent sizes). */
export function duBytes(path: string): number {
  const r = spawnSync('du', ['-s', '-B1', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`du ${path}: ${r.stderr}`);
  return Number(r.stdout.split(/\s/)[0]);
}

export type { HostAgent };
