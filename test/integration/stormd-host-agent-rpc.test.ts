// The manager's StormdHostAgent runs the HostAgent conformance suite against
// a real manager (in this process: CA, enrolment endpoint, hosts) and a real
// stormd process enrolled with a one-time token: every call crosses mutual-TLS
// XML-RPC. Layers, kernel and initrd are fetched by digest from a loopback
// HTTP server. test:///default is the fast run; qemu:///system starts a guest.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/logger.ts';
import { managerConfig } from '../../manager/config/config.ts';
import type { LayerRef } from '../../manager/instances/host-agent.ts';
import { StormdHostAgent } from '../../manager/hosts/stormd-host-agent.ts';
import { startManager, type Manager } from '../../manager/main.ts';
import { hostAgentConformance, type AgentFixture } from '../conformance/host-agent.case.ts';
import { buildBootInitrd, findCloudKernel, writeLabelledDisk } from '../helpers/boot-initrd.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';
import { joinStormd, serveFiles, startStormdProcess } from '../helpers/stormd.ts';
import { rmSync, mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';

/** A manager in this process with every listener on a free loopback port. */
export async function testManager(state: string): Promise<Manager> {
  const p = async () => `127.0.0.1:${await freeTcpUdpPort()}`;
  const config = managerConfig({ PATH: process.env.PATH }, {
    state, 'enroll-listen': '127.0.0.1:0', 'ldap-listen': '', 'ldaps-listen': '',
    'kdc-listen': await p(), 'kadmind-listen': await p(), 'kpasswd-listen': await p(),
  });
  return startManager({ config, log: silentLogger, path: process.env.PATH ?? '' });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function fixture(uri: string): Promise<AgentFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'storm-wire-'));
  chmodSync(dir, 0o755);
  const undo: (() => Promise<unknown>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const u of undo.reverse()) await u().catch(() => undefined);
  };
  try {
    const m = await testManager(join(dir, 'manager'));
    undo.push(() => m.stop());
    const port = await freePort();
    const added = await m.hosts.add('hv1', `127.0.0.1:${port}`);
    const state = join(dir, 'stormd');
    await joinStormd(m.joinUrl!, added.token, state);
    const d = await startStormdProcess(undefined, state, `127.0.0.1:${port}`, uri);
    undo.push(() => d.stop());

    // What the host fetches: a labelled substrate, and a kernel + initrd (real ones for a real boot).
    mkdirSync(join(dir, 'files'), { mode: 0o755 });
    writeLabelledDisk(join(dir, 'files', 'substrate'), 'storm-substrate');
    const k = uri.startsWith('qemu') ? findCloudKernel() : undefined;
    let kernel = join(dir, 'files', 'kernel');
    let initrd = join(dir, 'files', 'initrd');
    if (k) {
      kernel = k.kernel;
      initrd = await buildBootInitrd(join(dir, 'files'), k.version);
    } else {
      writeFileSync(kernel, 'not a kernel: the test driver never boots it\n');
      writeFileSync(initrd, 'not an initrd\n');
    }
    const srv = await serveFiles({ substrate: join(dir, 'files', 'substrate'), kernel, initrd });
    undo.push(() => srv.close());
    const ref = (role: LayerRef['role'], name: string, path: string): LayerRef => {
      const b = readFileSync(path);
      return { role, sha256: sha(b), size: b.length, url: srv.url + name };
    };
    const agent = new StormdHostAgent('hv1', () => m.hosts.client('hv1'));
    // Clean up only the domains this agent defined (qemu:///system is shared).
    const defined: string[] = [];
    const define = agent.define.bind(agent);
    agent.define = async (req) => {
      defined.push(req.name);
      return define(req);
    };
    undo.push(async () => {
      for (const n of defined) {
        await agent.poweroff(n).catch(() => undefined);
        await agent.undefine(n).catch(() => undefined);
      }
    });
    // Boot files travel by digest like layers: the domain request names digests.
    const kref = ref('kernel', 'kernel', kernel);
    const iref = ref('initrd', 'initrd', initrd);
    await agent.ensureLayer(kref);
    await agent.ensureLayer(iref);
    return { agent, layer: ref('substrate', 'substrate', join(dir, 'files', 'substrate')), kernel: kref.sha256, initrd: iref.sha256, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

hostAgentConformance('StormdHostAgent → stormd process on test:///default', () => fixture('test:///default'));
hostAgentConformance('StormdHostAgent → stormd process on qemu:///system', () => fixture('qemu:///system'));

test('StormdHostAgent: bad arguments and unknown digests come back as coded errors, not transport failures', async (t) => {
  const f = await fixture('test:///default');
  t.after(() => f.cleanup?.());
  const a = f.agent;
  await assert.rejects(a.ensureLayer({ ...f.layer, sha256: 'nothex' }), (e: StormError) => e.code === 'invalid');
  // Right URL, wrong digest: refused, and nothing under that digest enters the cache.
  const wrong = createHash('sha256').update('other').digest('hex');
  await assert.rejects(a.ensureLayer({ ...f.layer, sha256: wrong }), (e: StormError) => e.code === 'invalid');
  assert.ok(!(await a.layers()).includes(wrong));
  await assert.rejects(a.define({ name: 'storm-x', memoryMiB: 64, vcpus: 1, kernel: wrong, initrd: f.initrd, cmdline: '', layers: {}, instanceLayer: 'x1', mac: '52:54:00:00:00:03' }), (e: StormError) => e.code === 'not_found');
  await assert.rejects(a.createInstanceLayer('../etc', { hostname: 'x', domain: '', files: {}, sizeMiB: 64 }), (e: StormError) => e.code === 'invalid');
  const cap = await a.capacity();
  assert.ok(cap.memoryMiB > 0 && cap.vcpus > 0 && cap.freeDiskBytes > 0);
  assert.deepEqual(await a.snapshots('nothing-here').catch((e: StormError) => e.code), 'not_found');
  // Nothing downloading now: the consoles' layer gauges ask this while a fetch runs.
  assert.deepEqual(await (a as StormdHostAgent).downloads(), []);
});
