// The example channel: publish the fixture images (fixtures/build/manifest.json)
// as a signed channel in fixtures/build/channel/ with a throwaway publisher key
// (fixtures/build/publisher.key|.pub). Cached: a no-op when the manifest's
// digests and the publisher code are unchanged. See docs/channel-format.md.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { publishChannel } from '../manager/channels/publish.ts';
import { generatePublisherKey } from '../manager/channels/sign.ts';

interface ManifestLayer { role: string; name: string; version: string; path: string; sha256: string }
interface ManifestAppliance {
  id: string; version: string; title: string; description: string; memoryMiB: number; vcpus: number;
  layers?: Record<string, string>; traditional?: boolean; disk?: { path: string };
  dataVolumes?: { name: string; path: string; sizeMiB: number }[];
}
export interface FixtureManifest {
  layers: ManifestLayer[];
  appliances: ManifestAppliance[];
  boot: { kernel: { path: string; sha256: string }; initrd: { path: string; sha256: string } };
}

/** The example appliances' kernel command line: serial console for the console log; a panic reboots at once (same as the wire e2e descriptors). */
export const EXAMPLE_CMDLINE = 'console=ttyS0 panic=-1';

/**
 * Publisher descriptors (docs/channel-format.md) for every fixture appliance.
 * File paths are relative to the channel folder: layers/NAME, boot/vmlinuz, boot/initrd.img.
 */
export function fixtureDescriptors(m: FixtureManifest): Record<string, unknown>[] {
  const byRef = new Map(m.layers.map((l) => [`${l.name}@${l.version}`, l]));
  const boot = { kernel: { file: 'boot/vmlinuz' }, initrd: { file: 'boot/initrd.img' }, cmdline: EXAMPLE_CMDLINE };
  return m.appliances.map((a) => {
    const d: Record<string, unknown> = { id: a.id, version: a.version, title: a.title, description: a.description, memory: a.memoryMiB, vcpus: a.vcpus, boot };
    // The traditional disk boots through the same initrd (its traditional mode).
    if (a.traditional && a.disk) d.disk = { file: `layers/${a.disk.path}`, format: 'raw' };
    else {
      d.layers = Object.entries(a.layers ?? {}).map(([role, ref]) => {
        const l = byRef.get(ref);
        if (!l) throw new Error(`manifest: appliance ${a.id} names layer ${ref}, which the manifest does not list`);
        return { role, name: l.name, version: l.version, file: `layers/${l.path}`, format: 'raw' };
      });
    }
    const v = a.dataVolumes?.[0];
    if (v) d.volume = { sizeMiB: v.sizeMiB, mount: v.path, name: v.name };
    return d;
  });
}

/** Hard-link (or copy across filesystems) src to dst, replacing dst. */
async function place(src: string, dst: string): Promise<void> {
  await rm(dst, { force: true });
  await link(src, dst).catch(() => copyFile(src, dst));
}

/** Publish fixtures/build/channel/ from the manifest; returns whether anything was written. */
export async function buildExampleChannel(out: string, m: FixtureManifest): Promise<boolean> {
  const dir = join(out, 'channel');
  const keyPath = join(out, 'publisher.key');
  const pubPath = join(out, 'publisher.pub');
  if (!existsSync(keyPath) || !existsSync(pubPath)) {
    const k = generatePublisherKey();
    await writeFile(keyPath, k.privatePem, { mode: 0o600 });
    await writeFile(pubPath, k.publicPem, { mode: 0o644 });
  }
  const h = createHash('sha256');
  h.update(JSON.stringify({ layers: m.layers, appliances: m.appliances, boot: [m.boot.kernel.sha256, m.boot.initrd.sha256] }));
  h.update(await readFile(pubPath));
  for (const f of ['scripts/example-channel.ts', 'manager/channels/publish.ts', 'manager/channels/format.ts']) h.update(await readFile(join(PACKAGE_ROOT, f)));
  const digest = h.digest('hex');
  const stamp = join(out, 'channel.stamp');
  if (existsSync(join(dir, 'feed.xml.sig')) && existsSync(stamp) && (await readFile(stamp, 'utf8')).trim() === digest) return false;

  // Rebuilt from scratch; the stamp is written last (the commit point).
  await rm(stamp, { force: true });
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'layers'), { recursive: true });
  await mkdir(join(dir, 'boot'), { recursive: true });
  await mkdir(join(dir, 'appliances'), { recursive: true });
  const images = new Set<string>([...m.layers.map((l) => l.path), ...m.appliances.flatMap((a) => (a.disk ? [a.disk.path] : []))]);
  for (const p of images) await place(join(out, p), join(dir, 'layers', p));
  await place(m.boot.kernel.path, join(dir, 'boot', 'vmlinuz'));
  await place(m.boot.initrd.path, join(dir, 'boot', 'initrd.img'));
  await writeFile(join(dir, 'channel.json'), JSON.stringify({ title: 'STORM example channel', description: 'the fixture appliances (wiki, blog, wiki-classic) for the embedded default and the tests' }) + '\n');
  for (const d of fixtureDescriptors(m)) await writeFile(join(dir, 'appliances', `${d.id as string}.json`), JSON.stringify(d, null, 2) + '\n');
  await publishChannel(dir, { baseUrl: 'http://127.0.0.1/', privateKeyPem: await readFile(keyPath, 'utf8') });
  await writeFile(stamp + '.tmp', digest + '\n');
  await rename(stamp + '.tmp', stamp);
  return true;
}
