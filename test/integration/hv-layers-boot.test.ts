// The hypervisor half end to end, as libraries: layers (and the boot
// artefacts) fetched by digest over HTTP into the layer cache, a tampered
// copy refused without a trace, an instance layer built for the guest, a real
// boot under libvirt (QEMU) from the cached files, console read, graceful
// shutdown, undefine.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { waitForConsole } from '../../stormd/hypervisor/driver.case.ts';
import { LibvirtDriver } from '../../stormd/hypervisor/libvirt/libvirt-driver.ts';
import { LayerCache } from '../../stormd/layers/cache.ts';
import { InstanceLayers } from '../../stormd/layers/instance.ts';
import { BOOT_CMDLINE, BOOT_MARKER, buildBootInitrd, disksByTarget, findCloudKernel, writeLabelledDisk } from '../helpers/boot-initrd.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/tmp.ts';

test('boot a guest from layers fetched by digest; a tampered layer never enters the cache', async (t) => {
  const k = findCloudKernel();
  if (!k) return t.skip('no Debian cloud kernel under /boot');
  const drv = new LibvirtDriver({ uri: 'qemu:///system' });
  let name: string | undefined;
  // One hook, in order: the domain goes before the session that reaches it.
  t.after(async () => {
    if (name) {
      await drv.poweroff(name).catch(() => undefined);
      await drv.undefine(name).catch(() => undefined);
    }
    await drv.close();
  });
  const h = await drv.health();
  if (h.status !== 'healthy') return t.skip(`qemu:///system not usable: ${h.reason}`);

  // The "image server": a folder served over HTTP on 127.0.0.1.
  const pub = tempDir(t, 'storm-hv-pub-');
  const files: Record<string, Buffer> = {};
  files['initrd.img'] = readFileSync(await buildBootInitrd(pub, k.version));
  files['vmlinuz'] = readFileSync(k.kernel);
  for (const role of ['substrate', 'deployment', 'appliance']) {
    writeLabelledDisk(join(pub, role), `storm-${role}`, 2 * 1024 * 1024);
    files[role] = readFileSync(join(pub, role));
  }
  const tampered = Buffer.from(files['substrate']!);
  tampered[4096] = tampered[4096]! ^ 0xff;
  const server = http.createServer((req, res) => {
    const name = (req.url ?? '').slice(1);
    const body = name === 'substrate-tampered' ? tampered : files[name];
    if (!body) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${port}`;
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  // stormd's state: cache and instance layers under a directory libvirt-qemu can traverse.
  const state = tempDir(t, 'storm-hv-state-');
  const cache = new LayerCache(join(state, 'layers'));
  const path: Record<string, string> = {};
  for (const [name, body] of Object.entries(files)) path[name] = (await cache.ensure(`${base}/${name}`, digest(body), { size: body.length })).path;

  // A tampered copy (one byte changed) is refused; the cache holds nothing of it.
  const fresh = new LayerCache(join(state, 'fresh'));
  await assert.rejects(fresh.ensure(`${base}/substrate-tampered`, digest(files['substrate']!)), (e: unknown) => e instanceof StormError && e.code === 'invalid');
  assert.deepEqual(readdirSync(fresh.dir), ['.tmp']);
  assert.deepEqual(readdirSync(join(fresh.dir, '.tmp')), []);

  const instances = new InstanceLayers(join(state, 'instances'));
  const id = `hv-${randomBytes(3).toString('hex')}`;
  const inst = await instances.create(id, { hostname: `${id}.storm.test`, files: { '/etc/storm/instance.json': '{}' } }, { sizeMiB: 64, swapMiB: 8 });

  name = `storm-hv-${randomBytes(4).toString('hex')}`;
  await drv.define({
    name,
    memoryMiB: 192,
    vcpus: 1,
    kernel: path['vmlinuz']!,
    initrd: path['initrd.img']!,
    cmdline: BOOT_CMDLINE,
    disks: [
      { role: 'substrate', path: path['substrate']!, format: 'raw', readonly: true },
      { role: 'deployment', path: path['deployment']!, format: 'raw', readonly: true },
      { role: 'appliance', path: path['appliance']!, format: 'raw', readonly: true },
      { role: 'instance', path: inst.path, format: 'qcow2', readonly: false },
    ],
    consoleLog: join(state, `${name}.log`),
  });
  await drv.start(name);
  const out = await waitForConsole(drv, name, 'STORM-HV-DISKS-DONE', 120_000);
  assert.ok(out.includes(BOOT_MARKER));
  const seen = disksByTarget(out);
  assert.deepEqual(
    seen.map((d) => `target=${d.target} ro=${d.ro} label=${d.label}`),
    ['target=0 ro=1 label=storm-substrate', 'target=1 ro=1 label=storm-deployment', 'target=2 ro=1 label=storm-appliance', 'target=3 ro=0 label='],
  );
  const inst3 = seen[3]!.name;
  assert.match(out, new RegExp(`STORM-HV-PART ${inst3}1 ext4-label=storm-instance`));
  assert.match(out, new RegExp(`STORM-HV-PART ${inst3}4 swap=SWAPSPACE2`));
  assert.match(out, new RegExp(`STORM-HV-HOSTNAME ${id}\\.storm\\.test`));
  assert.equal((await drv.shutdown(name, { timeoutMs: 120_000 })).state, 'shut_off');
  await drv.undefine(name);
  // Cached layers stay root-owned and read-only after the guest used them (not relabelled).
  for (const l of await cache.list()) {
    const st = statSync(l.path);
    assert.equal(st.uid, 0);
    assert.equal(st.mode & 0o777, 0o444);
  }
});
