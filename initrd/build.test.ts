import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../test/helpers/tmp.ts';
import { PACKAGE_ROOT } from '../lib/paths.ts';

const BUILD = join(PACKAGE_ROOT, 'initrd', 'build');

function build(out: string): string {
  const r = spawnSync('sh', [BUILD], { encoding: 'utf8', env: { ...process.env, STORM_INITRD_OUT: out } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('initrd/build is reproducible, cached by input digest, and carries /init, busybox and the modules in dependency order', (t) => {
  const one = build(join(tempDir(t), 'out'));
  const two = build(join(tempDir(t), 'out'));
  assert.deepEqual(readFileSync(one), readFileSync(two), 'same inputs, same bytes');
  assert.equal(build(join(one, '..')), one, 'a rebuild with the same inputs is the cached file');
  assert.equal(readdirSync(join(one, '..')).filter((f) => f.endsWith('.img')).length, 1);
  const list = spawnSync('sh', ['-c', `zcat '${one}' | cpio -t --quiet`], { encoding: 'utf8' }).stdout.split('\n');
  for (const f of ['init', 'bin/busybox', 'bin/switch_root', 'lib/modules/load-order']) assert.ok(list.includes(f), f);
  const order = spawnSync('sh', ['-c', `zcat '${one}' | cpio -i --to-stdout --quiet lib/modules/load-order`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const at = (name: string) => order.findIndex((l) => l.split(' ')[0]!.endsWith(`/${name}.ko`));
  for (const m of ['virtio_pci', 'virtio_scsi', 'sd_mod', 'virtio_blk', 'overlay', 'virtio_net', 'scsi_mod', 'virtio', 'virtio_ring']) assert.ok(at(m) >= 0, `${m} is in the initrd`);
  assert.ok(at('scsi_mod') < at('sd_mod') && at('scsi_mod') < at('virtio_scsi'), 'dependencies first');
  assert.ok(at('virtio_ring') < at('virtio') || at('virtio') < at('virtio_pci'));
  assert.ok(at('virtio') < at('virtio_pci') && at('virtio') < at('virtio_blk'));
  assert.match(order[at('scsi_mod')]!, / scan=none$/, '/init scans SCSI targets itself, in order');
  // The init script parses under busybox sh (the shell it runs in).
  const syntax = spawnSync('busybox', ['sh', '-n', join(PACKAGE_ROOT, 'initrd', 'init')], { encoding: 'utf8' });
  assert.equal(syntax.status, 0, syntax.stderr);
});
