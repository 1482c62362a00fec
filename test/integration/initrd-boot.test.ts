// Real guests: QEMU TCG boots the Debian cloud kernel with the STORM initrd and
// the example channel's layers (fixtures/build), and we read the serial console.
// Each boot checks several things; the guests run a script given as storm.test=.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { freePort } from '../helpers/ports.ts';
import { bootGuest, fixtureLayer, fixtureManifest, linesWith, FIXTURES, type FixtureManifest, type Guest, type GuestDisk, buildFixtures } from '../helpers/qemu.ts';
import { buildDataVolume, buildInstanceDisk } from '../../manager/images/instance-disk.ts';
import { digestFile } from '../../manager/images/layer-build.ts';
import { diffLayer } from '../../manager/images/layer-diff.ts';

let m: FixtureManifest;
let kernel: string;
let initrd: string;

before(() => {
  buildFixtures();
  m = fixtureManifest();
  kernel = m.boot.kernel.path;
  initrd = m.boot.initrd.path;
});

/** `T: key=value` lines the guest's test script printed. */
function facts(out: string): Record<string, string> {
  const f: Record<string, string> = {};
  for (const l of linesWith(out, 'T: ')) {
    const m = /^T: ([a-z0-9-]+)=(.*)$/.exec(l);
    if (m) f[m[1]!] = m[2]!.trim();
  }
  return f;
}

/** A file's text inside an ext4 image (offset for a partitioned instance disk). */
function catImage(image: string, path: string, offset = 0): string {
  const spec = offset ? `${image}?offset=${offset}` : image;
  const r = spawnSync('debugfs', ['-R', `cat "${path}"`, spec], { encoding: 'utf8' });
  return r.stdout;
}

/** Put a local file into an ext4 image (debugfs write), for roots that have no instance layer. */
function writeIntoImage(image: string, local: string, path: string): void {
  const r = spawnSync('debugfs', ['-w', '-R', `write ${local} ${path}`, image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

function instanceSource(dir: string, hostname: string, script: string): string {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'hostname'), hostname + '\n');
  writeFileSync(join(dir, 't.sh'), script);
  return dir;
}

const wikiLayers = (): GuestDisk[] => [
  { path: fixtureLayer(m, 'substrate', 'busybox-substrate'), readonly: true, scsiId: 0 },
  { path: fixtureLayer(m, 'deployment', 'wiki-example-corp'), readonly: true, scsiId: 1 },
  { path: fixtureLayer(m, 'appliance', 'wiki'), readonly: true, scsiId: 2 },
];

const errorLines = (out: string) => linesWith(out, 'STORM-INIT: error:');

const WIKI_SCRIPT = `
n=$(hostname)
echo "T: name=$n"
echo "T: motd=$(cat /etc/motd)"
. /etc/wiki/site.conf; echo "T: site=$SITE_NAME"
if [ -e /usr/share/wiki/pages/Sandbox ]; then echo "T: sandbox=visible"; else echo "T: sandbox=hidden"; fi
if [ -f /.layers/appliance/root/usr/share/wiki/pages/Sandbox ]; then echo "T: sandbox-in-appliance=yes"; fi
echo "$n" > /etc/written-by
echo "note by $n" > /var/lib/wiki/pages/Note
for l in substrate appliance deployment; do
  if echo x 2>/dev/null > /.layers/$l/root/etc/motd; then echo "T: lower-write-$l=allowed"; else echo "T: lower-write-$l=refused"; fi
done
echo "T: swap=$(awk '$1=="/dev/sdd4"{print "active"}' /proc/swaps)"
echo "T: upper=$(awk '$1=="overlay"{print $4}' /proc/mounts | tr ',' '\\n' | sed -n 's/^upperdir=//p')"
echo "T: waiting"
read -r go
echo "T: after=$(cat /etc/written-by) $(cat /var/lib/wiki/pages/Note)"
sync
`;

test('two wiki instances share the lower layers at the same time: shadowing, whiteouts, writes only in each instance layer, swap, service over DHCP', async (t) => {
  const dir = tempDir(t);
  const lowersBefore = await Promise.all(wikiLayers().map((d) => digestFile(d.path)));
  const inst = { a: join(dir, 'a.img'), b: join(dir, 'b.img') };
  await buildInstanceDisk({ dir: instanceSource(join(dir, 'src-a'), 'wiki-a', WIKI_SCRIPT), out: inst.a, name: 'wiki-a' });
  await buildInstanceDisk({ dir: instanceSource(join(dir, 'src-b'), 'wiki-b', WIKI_SCRIPT), out: inst.b, name: 'wiki-b' });
  const port = await freePort();
  const append = 'storm.test=/t.sh';
  const a = bootGuest(t, { kernel, initrd, append, httpPort: port, disks: [...wikiLayers(), { path: inst.a, scsiId: 3 }] });
  const b = bootGuest(t, { kernel, initrd, append, disks: [...wikiLayers(), { path: inst.b, scsiId: 3 }] });
  // Both guests are up at once on the same lower-layer files before either goes on.
  await Promise.all([a.waitFor(/T: waiting/), b.waitFor(/T: waiting/)]);
  assert.match(a.output(), /STORM-GUEST: eth0 10\.0\.2\.\d+\//, 'the substrate got a DHCP lease on eth0');
  const page = await (await fetch(`http://127.0.0.1:${port}/cgi-bin/wiki?page=Note`)).text();
  assert.match(page, /<h1>Example Corp Wiki: Note<\/h1>/, 'the wiki CGI answers with the deployment\'s site name');
  assert.match(page, /note by wiki-a/);
  // An edit through the service: the CGI writes the page into the union, so into A's instance layer.
  const post = await fetch(`http://127.0.0.1:${port}/cgi-bin/wiki?page=HostNote`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'text=Hello+from+the+host%21&save=1' });
  assert.match(await post.text(), /Hello from the host!/);
  a.send('go\n');
  b.send('go\n');
  const [outA, outB] = await Promise.all([a.exited, b.exited]);

  for (const [name, out] of [['wiki-a', outA], ['wiki-b', outB]] as const) {
    const f = facts(out);
    assert.deepEqual(errorLines(out), [], out);
    assert.match(out, /STORM-INIT: union: lowers deployment:appliance:substrate, upper instance \(mode labels\)/);
    // Disks are named in SCSI target order: sda substrate, sdb deployment, sdc appliance, sdd instance.
    for (const l of ['substrate layer /dev/sda (ro)', 'deployment layer /dev/sdb (ro)', 'appliance layer /dev/sdc (ro)', 'instance layer /dev/sdd1 (rw)']) assert.ok(out.includes(`STORM-INIT: ${l}`), l);
    assert.equal(f.name, name, 'the instance layer\'s /etc/hostname shadows the substrate\'s');
    assert.equal(f.motd, 'Welcome to the STORM wiki appliance.', 'the appliance layer shadows the substrate\'s /etc/motd');
    assert.equal(f.site, 'Example Corp Wiki', 'the deployment layer shadows the appliance\'s site.conf');
    assert.equal(f.sandbox, 'hidden', 'the deployment\'s whiteout hides the appliance\'s Sandbox page');
    assert.equal(f['sandbox-in-appliance'], 'yes', 'the page is still in the appliance layer');
    for (const l of ['substrate', 'appliance', 'deployment']) assert.equal(f[`lower-write-${l}`], 'refused', `writing to the ${l} layer fails`);
    assert.equal(f.swap, 'active', 'swap on /dev/sdd4');
    assert.equal(f.upper, '/.layers/instance/root');
    assert.equal(f.after, `${name} note by ${name}`, 'each instance sees only its own writes');
    assert.match(out, /STORM-GUEST: test exit 0/);
  }
  // The writes landed in each instance layer and nowhere else.
  const lowersAfter = await Promise.all(wikiLayers().map((d) => digestFile(d.path)));
  assert.deepEqual(lowersAfter, lowersBefore, 'the shared lower layers are byte-for-byte unchanged');
  const offset = 1024 * 1024;
  assert.equal(catImage(inst.a, '/root/etc/written-by', offset), 'wiki-a\n');
  assert.equal(catImage(inst.b, '/root/etc/written-by', offset), 'wiki-b\n');
  assert.equal(catImage(inst.a, '/root/var/lib/wiki/pages/HostNote', offset), 'Hello from the host!\n');
  assert.equal(catImage(inst.b, '/root/var/lib/wiki/pages/HostNote', offset), '', 'B never saw A\'s edit');
  const lowers = [fixtureLayer(m, 'deployment', 'wiki-example-corp'), fixtureLayer(m, 'appliance', 'wiki'), fixtureLayer(m, 'substrate', 'busybox-substrate')];
  const d = await diffLayer(inst.a, lowers);
  const byPath = new Map(d.changes.map((c) => [c.path, c]));
  assert.deepEqual(byPath.get('/etc/hostname'), { path: '/etc/hostname', change: 'modified', type: 'file', shadows: 'substrate' });
  assert.equal(byPath.get('/etc/written-by')?.change, 'added');
  assert.equal(byPath.get('/var/lib/wiki/pages/Note')?.change, 'added');
  assert.equal(byPath.get('/etc/motd'), undefined, 'the refused lower writes left no trace');
});

test('storm.fallback applies the rule as written (sdaX ro, sdbX rw, sdcX ro, sddX rw, sdd4 swap); a data volume is mounted outside the union', async (t) => {
  const dir = tempDir(t);
  const deployment = join(dir, 'deployment.img');
  copyFileSync(fixtureLayer(m, 'deployment', 'blog-example-corp'), deployment);
  const inst = join(dir, 'inst.img');
  const script = `
echo "T: mounts=$(awk '$2 ~ /^\\/\\.layers\\// || $2=="/var/lib/blog/posts" {split($4,o,","); print $1"@"$2"@"o[1]}' /proc/mounts | sort | tr '\\n' ' ')"
echo "T: swap=$(awk '$1=="/dev/sdd4"{print "active"}' /proc/swaps)"
echo "T: blog=$(wget -qO- http://127.0.0.1/cgi-bin/blog | grep -o 'Example Corp News\\|Hello from Example Corp' | sort -u | tr '\\n' ',')"
echo "Written by the test" > /var/lib/blog/posts/0002-test
echo "T: in-union=$(ls /.layers/instance/root/var/lib/blog/posts 2>/dev/null | wc -l)"
sync
`;
  await buildInstanceDisk({ dir: instanceSource(join(dir, 'src'), 'blog-1', script), out: inst });
  const data = await buildDataVolume({ out: join(dir, 'posts.img'), name: 'posts' });
  const g = bootGuest(t, {
    kernel, initrd, append: 'storm.fallback storm.test=/t.sh',
    disks: [
      { path: fixtureLayer(m, 'substrate', 'busybox-substrate'), readonly: true, scsiId: 0 },
      { path: deployment, scsiId: 1 },
      { path: fixtureLayer(m, 'appliance', 'blog'), readonly: true, scsiId: 2 },
      { path: inst, scsiId: 3 },
      { path: data.path, scsiId: 4 },
    ],
  });
  const out = await g.exited;
  const f = facts(out);
  assert.deepEqual(errorLines(out), [], out);
  assert.match(out, /mode fallback/);
  assert.equal(f.mounts, '/dev/sda@/.layers/substrate@ro /dev/sdb@/.layers/deployment@rw /dev/sdc@/.layers/appliance@ro /dev/sdd1@/.layers/instance@rw /dev/sde@/var/lib/blog/posts@rw', out);
  assert.equal(f.swap, 'active');
  assert.equal(f.blog, 'Example Corp News,Hello from Example Corp,', 'the blog serves the deployment\'s title and seeded post');
  assert.equal(f['in-union'], '0', 'data volume writes bypass the instance layer');
  assert.match(out, /STORM-INIT: data volume posts \/dev\/sde at \/var\/lib\/blog\/posts/);
  assert.equal(catImage(data.path, '/0002-test'), 'Written by the test\n');
  assert.match(catImage(data.path, '/0001-welcome'), /^Hello from Example Corp/);
});

test('a traditional single-disk appliance boots as a plain root; storm.maintenance makes the deployment the writable upper layer', async (t) => {
  const dir = tempDir(t);
  // Traditional: the wiki as one disk (a copy: the root is writable).
  const classic = m.appliances.find((a) => a.traditional)!;
  const disk = join(dir, 'classic.img');
  copyFileSync(join(FIXTURES, classic.disk!.path), disk);
  const tscript = join(dir, 't.sh');
  writeFileSync(tscript, `
echo "T: root=$(awk '$2=="/"{print $1}' /proc/mounts)"
echo "T: layers=$(grep -c ' /.layers/' /proc/mounts)"
. /etc/wiki/site.conf; echo "T: site=$SITE_NAME"
if [ -e /usr/share/wiki/pages/Sandbox ]; then echo "T: sandbox=visible"; else echo "T: sandbox=hidden"; fi
echo "T: wiki=$(wget -qO- 'http://127.0.0.1/cgi-bin/wiki?page=Home' | grep -o 'Example Corp Wiki: Home')"
`);
  writeIntoImage(disk, tscript, '/t.sh');
  // Maintenance: a copy of the deployment layer is attached writable and takes the writes.
  const deployment = join(dir, 'deployment.img');
  copyFileSync(fixtureLayer(m, 'deployment', 'wiki-example-corp'), deployment);
  const mscript = join(dir, 'm.sh');
  writeFileSync(mscript, `
echo "T: upper=$(awk '$1=="overlay"{print $4}' /proc/mounts | tr ',' '\\n' | sed -n 's/^upperdir=//p')"
echo "Site edited in maintenance" > /etc/wiki/motd-note
sync
`);
  writeIntoImage(deployment, mscript, '/root/m.sh');
  const inst = join(dir, 'inst.img');
  await buildInstanceDisk({ out: inst });
  const trad = bootGuest(t, { kernel, initrd, append: 'storm.test=/t.sh', disks: [{ path: disk, scsiId: 0 }] });
  const maint = bootGuest(t, {
    kernel, initrd, append: 'storm.maintenance storm.test=/m.sh',
    disks: [
      { path: fixtureLayer(m, 'substrate', 'busybox-substrate'), readonly: true, scsiId: 0 },
      { path: deployment, scsiId: 1 },
      { path: fixtureLayer(m, 'appliance', 'wiki'), readonly: true, scsiId: 2 },
      { path: inst, scsiId: 3 },
    ],
  });
  const [tout, mout] = await Promise.all([trad.exited, maint.exited]);
  const tf = facts(tout);
  assert.deepEqual(errorLines(tout), [], tout);
  assert.match(tout, /STORM-INIT: traditional appliance: root \/dev\/sda \(rw\)/);
  assert.equal(tf.root, '/dev/sda');
  assert.equal(tf.layers, '0');
  assert.equal(tf.site, 'Example Corp Wiki');
  assert.equal(tf.sandbox, 'hidden');
  assert.equal(tf.wiki, 'Example Corp Wiki: Home');
  const mf = facts(mout);
  assert.deepEqual(errorLines(mout), [], mout);
  assert.equal(mf.upper, '/.layers/deployment/root');
  assert.equal(catImage(deployment, '/root/etc/wiki/motd-note'), 'Site edited in maintenance\n');
  assert.equal(catImage(inst, '/root/etc/wiki/motd-note', 1024 * 1024), '', 'the instance layer is not written in maintenance mode');
});

/** Boot a broken set of disks; expect one error line matching `re`, no switch_root, and the machine halted. */
async function expectHalt(g: Guest, re: RegExp): Promise<void> {
  const out = await g.exited;
  const errs = errorLines(out);
  assert.equal(errs.length, 1, `exactly one error line; console:\n${out.slice(-2500)}`);
  assert.match(errs[0]!, re);
  assert.doesNotMatch(out, /STORM-INIT: switch_root|STORM-GUEST:/, 'a half-built root is never booted');
  assert.match(out, /reboot: Power down/, 'the machine halts');
}

test('each failure prints one STORM-INIT: error line naming the layer and the device, and halts', async (t) => {
  const dir = tempDir(t);
  // Each guest needs its own writable instance disk (QEMU locks it).
  const insts = [1, 2, 3, 4, 5, 6, 7].map((i) => join(dir, `inst${i}.img`));
  await buildInstanceDisk({ out: insts[0]! });
  for (const i of insts.slice(1)) copyFileSync(insts[0]!, i);
  // A layer whose superblock carries an unknown incompatible feature: labelled, but unmountable.
  const broken = join(dir, 'broken-appliance.img');
  copyFileSync(fixtureLayer(m, 'appliance', 'wiki'), broken);
  const bad = spawnSync('debugfs', ['-w', '-R', 'ssv feature_incompat 0x80000000', broken], { encoding: 'utf8' });
  assert.equal(bad.status, 0, bad.stderr);
  // An instance layer whose root/ is a file: overlayfs refuses the upper directory.
  const badUpperSrc = join(dir, 'bad-upper');
  mkdirSync(join(badUpperSrc, 'work'), { recursive: true });
  writeFileSync(join(badUpperSrc, 'root'), 'not a directory\n');
  const badUpper = join(dir, 'bad-upper.img');
  const mk = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'storm-instance', '-d', badUpperSrc, badUpper, '16M'], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  // A substrate relabelled with an escape sequence: no layer of ours, and never printed raw.
  const hostile = join(dir, 'hostile-label.img');
  copyFileSync(fixtureLayer(m, 'substrate', 'busybox-substrate'), hostile);
  const lbl = spawnSync('tune2fs', ['-L', '\x1b[2Jstorm-substr', hostile], { encoding: 'utf8' });
  assert.equal(lbl.status, 0, lbl.stderr);
  const [sub, dep, app] = wikiLayers();
  const cases: [GuestDisk[], RegExp][] = [
    [[sub!, app!, { path: insts[0]!, scsiId: 3 }], /^STORM-INIT: error: deployment layer \(label storm-deployment\) not found \(device: none; seen: .*=storm-substrate/],
    [[sub!, dep!, { path: broken, readonly: true, scsiId: 2 }, { path: insts[1]!, scsiId: 3 }], /^STORM-INIT: error: appliance layer on \/dev\/sdc: mount \(ro\) failed/],
    [[sub!, dep!, app!, { path: badUpper, scsiId: 3 }], /^STORM-INIT: error: overlay failed: upper instance on \/dev\/sdd, lowers deployment=\/dev\/sdb appliance=\/dev\/sdc substrate=\/dev\/sda/],
    [[sub!, dep!, app!, { path: insts[3]!, readonly: true, scsiId: 3 }], /^STORM-INIT: error: instance layer on \/dev\/sdd1 is read-only \(sysfs\)/],
    [[sub!, dep!, app!, { path: insts[4]!, scsiId: 3 }, { ...sub!, scsiId: 4 }], /^STORM-INIT: error: substrate layer: label storm-substrate is on two devices \(\/dev\/sd[a-e], \/dev\/sd[a-e]\)/],
    [
      [sub!, { path: fixtureLayer(m, 'deployment', 'blog-example-corp'), readonly: true, scsiId: 1 }, { path: fixtureLayer(m, 'appliance', 'blog'), readonly: true, scsiId: 2 }, { path: insts[5]!, scsiId: 3 }],
      /^STORM-INIT: error: data volume posts \(label storm-data-posts\) not found \(device: none;/,
    ],
    [[{ path: hostile, readonly: true, scsiId: 0 }, dep!, app!, { path: insts[6]!, scsiId: 3 }], /^STORM-INIT: error: substrate layer \(label storm-substrate\) not found \(device: none; seen: sda=\? sdb=storm-deployment/],
  ];
  // Two at a time: each stops within a few seconds of boot.
  for (let i = 0; i < cases.length; i += 2) {
    await Promise.all(cases.slice(i, i + 2).map(([disks, re]) => expectHalt(bootGuest(t, { kernel, initrd, append: 'storm.wait=2', disks }), re)));
  }
  // storm.rescue: the same one error line, then a shell on the console; leaving it halts.
  copyFileSync(insts[0]!, join(dir, 'inst-rescue.img'));
  const rescue = bootGuest(t, { kernel, initrd, append: 'storm.wait=2 storm.rescue', disks: [sub!, app!, { path: join(dir, 'inst-rescue.img'), scsiId: 3 }] });
  await rescue.waitFor(/STORM-INIT: rescue: shell on the console/);
  rescue.send('echo RESCUE-$((6*7))\nexit\n');
  await expectHalt(rescue, /^STORM-INIT: error: deployment layer \(label storm-deployment\) not found/);
  assert.match(rescue.output(), /RESCUE-42/);
});
