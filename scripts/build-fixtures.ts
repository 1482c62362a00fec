// Build the example channel's layers (fixtures/) into fixtures/build/ and write
// fixtures/build/manifest.json. Cached by the digest of every input: a rerun with
// nothing changed builds nothing. The initrd is built (and cached) by initrd/build.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, readlink, lstat, realpath, rename, rm, writeFile, symlink, chmod } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { run } from '../lib/exec.ts';
import { readEnv } from '../lib/env.ts';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { buildLayer, digestFile, type LayerRole } from '../manager/images/layer-build.ts';
import { buildExampleChannel, type FixtureManifest } from './example-channel.ts';

const FIX = join(PACKAGE_ROOT, 'fixtures');
const OUT = join(FIX, 'build');
const BUSYBOX = readEnv().STORM_BUSYBOX ?? '/bin/busybox';
/** The TLS client the substrate's storm-agent calls the manager's API with (busybox has none). */
const OPENSSL = '/usr/bin/openssl';
/** Applets the substrate's scripts call by their /sbin path. */
const SBIN = ['init', 'reboot', 'poweroff', 'halt', 'swapon', 'swapoff', 'ifconfig', 'route', 'udhcpc'];

interface LayerEntry { role: LayerRole; name: string; version: string; path: string; sha256: string; size: number }
interface Meta { id: string; version: string; title: string; description: string; memoryMiB: number; vcpus: number; deployment: { name: string; version: string }; dataVolumes: { name: string; path: string; sizeMiB: number }[]; traditional?: { id: string; title: string } }

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (p === OUT) continue;
    if (e.isDirectory()) out.push(relative(base, p) + '/', ...(await listFiles(p, base)));
    else out.push(relative(base, p));
  }
  return out;
}

/**
 * Debian's openssl and the shared libraries it loads (from ldd), as [path in the guest, file here].
 * Copied to the same paths in the substrate: the dynamic loader finds them in its default directories.
 */
async function opensslFiles(): Promise<[string, string][]> {
  if (!existsSync(OPENSSL)) throw new Error(`${OPENSSL} is missing: apt-get install openssl (the substrate's storm-agent needs it)`);
  const r = await run('ldd', [OPENSSL]);
  if (r.code !== 0) throw new Error(`ldd ${OPENSSL}: ${r.stderr.trim()}`);
  const out: [string, string][] = [[OPENSSL, OPENSSL]];
  for (const line of r.stdout.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) out.push([m[1]!, await realpath(m[1]!)]);
  }
  return out;
}

async function inputDigest(): Promise<string> {
  const h = createHash('sha256');
  for (const rel of await listFiles(FIX)) {
    const p = join(FIX, rel);
    const st = await lstat(p);
    h.update(`${rel}\0${st.mode & 0o777}\0`);
    if (st.isSymbolicLink()) h.update(await readlink(p));
    else if (st.isFile()) h.update(await readFile(p));
  }
  for (const f of ['scripts/build-fixtures.ts', 'manager/images/layer-build.ts']) h.update(await readFile(join(PACKAGE_ROOT, f)));
  h.update((await digestFile(BUSYBOX)).sha256);
  for (const [at, file] of await opensslFiles()) h.update(`${at}\0${(await digestFile(file)).sha256}\0`);
  h.update((await run('mke2fs', ['-V'])).stderr);
  return h.digest('hex');
}

async function copyTree(src: string, dst: string): Promise<void> {
  await mkdir(dst, { recursive: true });
  const r = await run('cp', ['-a', `${src}/.`, dst], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`cp ${src}: ${r.stderr}`);
  // .keep files only hold empty directories in git.
  const strip = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await strip(join(d, e.name));
      else if (e.name === '.keep') await rm(join(d, e.name));
    }
  };
  await strip(dst);
}

async function stageSubstrate(dst: string): Promise<void> {
  await copyTree(join(FIX, 'substrate', 'tree'), dst);
  await mkdir(join(dst, 'bin'), { recursive: true });
  await mkdir(join(dst, 'sbin'), { recursive: true });
  await mkdir(join(dst, 'usr', 'bin'), { recursive: true });
  const bb = await readFile(BUSYBOX);
  await writeFile(join(dst, 'bin', 'busybox'), bb);
  await chmod(join(dst, 'bin', 'busybox'), 0o755);
  const list = (await run(BUSYBOX, ['--list'])).stdout.split('\n').filter((a) => a && a !== 'busybox');
  for (const a of list) await symlink('busybox', join(dst, 'bin', a));
  for (const a of SBIN) await symlink('../bin/busybox', join(dst, 'sbin', a));
  await chmod(join(dst, 'tmp'), 0o1777);
  for (const [at, file] of await opensslFiles()) {
    await mkdir(join(dst, dirname(at)), { recursive: true });
    await copyFile(file, join(dst, at));
    await chmod(join(dst, at), 0o755);
  }
}

/** Apply a layer source on top of a merged tree (for the traditional image): files, then its deletions. */
async function overlayInto(src: string, dst: string): Promise<void> {
  await copyTree(src, dst);
  const del = join(dst, '.storm-deletions');
  if (existsSync(del)) {
    for (const l of (await readFile(del, 'utf8')).split('\n')) {
      const p = l.replace(/#.*/, '').trim().replace(/^\/+/, '');
      if (p && !p.split('/').includes('..')) await rm(join(dst, p), { recursive: true, force: true });
    }
    await rm(del);
  }
}

async function bootArtefacts(): Promise<Record<string, { path: string; sha256: string; size: number }>> {
  const r = await run('sh', [join(PACKAGE_ROOT, 'initrd', 'build')], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`initrd/build failed: ${r.stderr.trim()}`);
  const initrd = r.stdout.trim().split('\n').pop()!;
  const kver = /initrd-(.+)-[0-9a-f]{16}\.img$/.exec(initrd)?.[1];
  const kernel = `/boot/vmlinuz-${kver}`;
  return { kernel: { path: kernel, ...(await digestFile(kernel)) }, initrd: { path: initrd, ...(await digestFile(initrd)) } };
}

interface Manifest {
  layers: LayerEntry[];
  appliances: ({ id: string; version: string; title: string; description: string; memoryMiB: number; vcpus: number; layers?: Record<string, string>; dataVolumes?: Meta['dataVolumes']; traditional?: boolean; disk?: { path: string } })[];
  boot: Record<'kernel' | 'initrd', { path: string; sha256: string; size: number }>;
}

/** Write `path` only when its contents differ (a channel server may be serving the folder). */
async function writeIfChanged(path: string, text: string): Promise<void> {
  if (existsSync(path) && (await readFile(path, 'utf8')) === text) return;
  await writeFile(path + '.tmp', text);
  await rename(path + '.tmp', path);
}

/**
 * Make fixtures/build a channel folder: channel.json, one descriptor per
 * appliance (appliances/ID.json) and the kernel and initrd under boot/, so
 * `storm channel publish fixtures/build --base-url URL` then `storm channel
 * serve fixtures/build` publish the example channel (docs/channel-format.md).
 */
async function writeChannelInputs(m: Manifest): Promise<void> {
  await mkdir(join(OUT, 'appliances'), { recursive: true });
  await mkdir(join(OUT, 'boot'), { recursive: true });
  const boot: Record<string, string> = {};
  for (const k of ['kernel', 'initrd'] as const) {
    const b = m.boot[k];
    const name = `boot/${k}-${b.sha256.slice(0, 16)}`;
    const dst = join(OUT, name);
    if (!existsSync(dst) || (await digestFile(dst)).sha256 !== b.sha256) {
      await copyFile(b.path, dst + '.tmp');
      await rename(dst + '.tmp', dst);
    }
    boot[k] = name;
  }
  for (const f of await readdir(join(OUT, 'boot'))) if (!Object.values(boot).includes(`boot/${f}`)) await rm(join(OUT, 'boot', f), { force: true });
  await writeIfChanged(join(OUT, 'channel.json'), JSON.stringify({ title: 'STORM example channel', description: 'the example appliances built from fixtures/ (scripts/build-fixtures)' }, null, 2) + '\n');
  const byRef = new Map(m.layers.map((l) => [`${l.name}@${l.version}`, l]));
  const want = new Set<string>();
  for (const a of m.appliances) {
    const d: Record<string, unknown> = { id: a.id, version: a.version, title: a.title, description: a.description, memory: a.memoryMiB, vcpus: a.vcpus };
    if (a.disk) d.disk = { file: a.disk.path, format: 'raw' };
    else {
      d.layers = Object.entries(a.layers ?? {}).map(([role, ref]) => {
        const l = byRef.get(ref);
        if (!l) throw new Error(`appliance ${a.id}: layer ${ref} is not in the manifest`);
        return { role, name: l.name, version: l.version, file: l.path, format: 'raw' };
      });
    }
    d.boot = { kernel: { file: boot.kernel }, initrd: { file: boot.initrd }, cmdline: 'console=ttyS0 panic=-1' };
    const vol = a.dataVolumes?.[0];
    if (vol) d.volume = { sizeMiB: vol.sizeMiB, mount: vol.path };
    const file = `${a.id}.json`;
    want.add(file);
    await writeIfChanged(join(OUT, 'appliances', file), JSON.stringify(d, null, 2) + '\n');
  }
  for (const f of await readdir(join(OUT, 'appliances'))) if (f.endsWith('.json') && !want.has(f)) await rm(join(OUT, 'appliances', f));
}

async function main(): Promise<void> {
  const t0 = Date.now();
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static (or set STORM_BUSYBOX)`);
  const digest = await inputDigest();
  const manifestPath = join(OUT, 'manifest.json');
  const old = existsSync(manifestPath) ? JSON.parse(await readFile(manifestPath, 'utf8')) : undefined;
  const boot = await bootArtefacts();
  const fresh = old?.inputDigest === digest && (old.layers as LayerEntry[]).every((l) => existsSync(join(OUT, l.path)));
  if (fresh) {
    if (JSON.stringify(old.boot) !== JSON.stringify(boot)) {
      await writeFile(manifestPath + '.tmp', JSON.stringify({ ...old, boot }, null, 2) + '\n');
      await rename(manifestPath + '.tmp', manifestPath);
    }
    await writeChannelInputs(JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest);
    console.error(`fixtures: up to date (${digest.slice(0, 12)})`);
    return;
  }
  await mkdir(OUT, { recursive: true });
  const work = await mkdtemp(join(OUT, '.work-'));
  try {
    const layers: LayerEntry[] = [];
    const add = async (dir: string, role: LayerRole, name: string, version: string, plain?: { label: string }) => {
      const file = plain ? `${name}-${version}.img` : `${name}-${version}-${role}.img`;
      const r = await buildLayer({ dir, role, name, version, out: join(work, file), ...(plain ? { plain } : {}) });
      const e = { role, name, version, path: file, sha256: r.sha256, size: r.size };
      if (!plain) layers.push(e);
      return e;
    };
    const subMeta = JSON.parse(await readFile(join(FIX, 'substrate', 'meta.json'), 'utf8')) as { name: string; version: string; title: string };
    const sub = join(work, 'stage-substrate');
    await stageSubstrate(sub);
    const substrate = await add(sub, 'substrate', subMeta.name, subMeta.version);
    const appliances: unknown[] = [];
    for (const id of (await readdir(join(FIX, 'appliances'))).sort()) {
      const dir = join(FIX, 'appliances', id);
      const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Meta;
      const app = join(work, `stage-${id}-appliance`);
      const dep = join(work, `stage-${id}-deployment`);
      await copyTree(join(dir, 'appliance'), app);
      await copyTree(join(dir, 'deployment'), dep);
      const a = await add(app, 'appliance', meta.id, meta.version);
      const d = await add(dep, 'deployment', meta.deployment.name, meta.deployment.version);
      appliances.push({
        id: meta.id, version: meta.version, title: meta.title, description: meta.description, memoryMiB: meta.memoryMiB, vcpus: meta.vcpus,
        layers: { substrate: `${substrate.name}@${substrate.version}`, appliance: `${a.name}@${a.version}`, deployment: `${d.name}@${d.version}` },
        dataVolumes: meta.dataVolumes,
      });
      if (meta.traditional) {
        // The same content as one disk: substrate, then appliance, then deployment (deletions applied).
        const flat = join(work, `stage-${meta.traditional.id}`);
        await stageSubstrate(flat);
        await overlayInto(join(dir, 'appliance'), flat);
        await overlayInto(join(dir, 'deployment'), flat);
        const disk = await add(flat, 'appliance', meta.traditional.id, meta.version, { label: meta.traditional.id.slice(0, 16) });
        appliances.push({ id: meta.traditional.id, version: meta.version, title: meta.traditional.title, description: meta.description, memoryMiB: meta.memoryMiB, vcpus: meta.vcpus, traditional: true, disk: { path: disk.path, sha256: disk.sha256, size: disk.size } });
      }
    }
    // Swap the new images in, drop stale ones, then the manifest (last: it is the commit point).
    const keep = new Set<string>();
    for (const f of await readdir(work)) {
      if (!f.endsWith('.img')) continue;
      await rename(join(work, f), join(OUT, f));
      keep.add(f);
    }
    for (const f of await readdir(OUT)) if (f.endsWith('.img') && !keep.has(f)) await rm(join(OUT, f));
    const manifest = { format: 'storm-fixtures/1', inputDigest: digest, layers, appliances, boot };
    await writeFile(manifestPath + '.tmp', JSON.stringify(manifest, null, 2) + '\n');
    await rename(manifestPath + '.tmp', manifestPath);
    await writeChannelInputs(manifest as Manifest);
    console.error(`fixtures: built ${keep.size} images in ${((Date.now() - t0) / 1000).toFixed(1)} s (${digest.slice(0, 12)})`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function withChannel(): Promise<void> {
  await main();
  const manifest = JSON.parse(await readFile(join(OUT, 'manifest.json'), 'utf8')) as FixtureManifest;
  const t0 = Date.now();
  if (await buildExampleChannel(OUT, manifest)) console.error(`fixtures: published the example channel to ${relative(PACKAGE_ROOT, join(OUT, 'channel'))} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  else console.error('fixtures: example channel up to date');
}

withChannel().catch((e) => {
  console.error(`build-fixtures: ${(e as Error).message}`);
  process.exit(1);
});
