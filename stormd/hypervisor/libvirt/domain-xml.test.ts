import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StormError } from '../../../lib/errors.ts';
import { validateDomainSpec, type DomainSpec } from '../driver.ts';
import { buildDomainXml, parseDomainXml, parseState } from './domain-xml.ts';
import { mapLibvirtError } from './libvirt-driver.ts';
import { quoteArg } from './virsh.ts';

const spec: DomainSpec = {
  name: 'storm-hv-unit',
  uuid: '6f1c2a5e-1b2c-4d3e-8f90-0123456789ab',
  memoryMiB: 256,
  vcpus: 2,
  kernel: '/var/lib/storm/boot/vmlinuz',
  initrd: '/var/lib/storm/boot/initrd.img',
  cmdline: 'console=ttyS0 storm.x=<&>',
  disks: [
    { role: 'substrate', path: '/var/lib/storm/layers/aa', format: 'raw', readonly: true },
    { role: 'deployment', path: '/var/lib/storm/layers/bb', format: 'qcow2', readonly: true },
    { role: 'appliance', path: '/var/lib/storm/layers/cc', format: 'raw', readonly: true },
    { role: 'instance', path: '/var/lib/storm/instances/i1/instance.qcow2', format: 'qcow2', readonly: false },
    { role: 'data', path: '/var/lib/storm/instances/i1/data.qcow2', format: 'qcow2', readonly: false, backing: { path: '/var/lib/storm/layers/dd', format: 'raw' } },
  ],
  network: { bridge: 'br-storm', mac: '52:54:00:01:02:03' },
  consoleLog: '/var/lib/storm/instances/i1/console.log',
};

test('domain XML: one SCSI target per disk with explicit addresses, read-only layers shared and not relabelled', () => {
  const xml = buildDomainXml(spec, 'qemu');
  assert.match(xml, /<domain type="qemu" xmlns:qemu="http:\/\/libvirt.org\/schemas\/domain\/qemu\/1.0">/);
  // The guest CPU is read back with 2 QMP calls, not one per CPU property (start time).
  assert.match(xml, /<qemu:capabilities>\s*<qemu:del capability="cpu-unavailable-features"\/>\s*<\/qemu:capabilities>/);
  assert.match(xml, /<controller type="scsi" index="0" model="virtio-scsi"\/>/);
  const disks = xml.split('<disk ').slice(1);
  assert.equal(disks.length, 5);
  disks.forEach((d, i) => {
    assert.match(d, new RegExp(`<target dev="sd${'abcde'[i]}" bus="scsi"/>`));
    assert.match(d, new RegExp(`<address type="drive" controller="0" bus="0" target="${i}" unit="0"/>`));
    const ro = spec.disks[i]!.readonly;
    assert.equal(d.includes('<readonly/>'), ro);
    assert.equal(d.includes('<shareable/>'), ro);
    assert.equal(d.includes('relabel="no"'), ro || spec.disks[i]!.backing !== undefined);
  });
  assert.match(disks[3]!, /<backingStore\/>/, 'a qcow2 without a declared base gets no backing file at all');
  assert.match(disks[4]!, /<backingStore type="file">\s*<format type="raw"\/>\s*<source file="\/var\/lib\/storm\/layers\/dd">\s*<seclabel model="dac" relabel="no"\/>/);
  assert.match(xml, /<cmdline>console=ttyS0 storm.x=&lt;&amp;&gt;<\/cmdline>/, 'cmdline is escaped');
  assert.match(xml, /<serial type="file">\s*<source path="\/var\/lib\/storm\/instances\/i1\/console.log" append="off"\/>/);
  assert.match(buildDomainXml(spec, 'kvm'), /<domain type="kvm" /);
});

test('domain XML round-trips to the same spec', () => {
  const back = parseDomainXml(buildDomainXml(spec, 'qemu'));
  const { attached, virtType, storm, ...rest } = back;
  assert.equal(virtType, 'qemu');
  assert.equal(storm, true);
  assert.equal(parseDomainXml('<domain type="kvm"><name>other</name></domain>').storm, false);
  assert.deepEqual(rest, spec);
  assert.deepEqual(
    attached.map((a) => `${a.dev}:${a.target}:${a.role}`),
    ['sda:0:substrate', 'sdb:1:deployment', 'sdc:2:appliance', 'sdd:3:instance', 'sde:4:data'],
  );
  assert.deepEqual(validateDomainSpec(JSON.parse(JSON.stringify(spec))), spec, 'a JSON spec validates to itself');
});

test('hostile or malformed domain XML is refused as invalid, never crashes', () => {
  const bad = [
    '',
    'not xml at all',
    '<x/>',
    '<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><domain><name>&b;</name></domain>',
    '<domain>' + '<a>'.repeat(10) + '</domain>',
    '<domain>' + 'x'.repeat(1024 * 1024 + 1) + '</domain>',
  ];
  for (const x of bad) {
    try {
      const r = parseDomainXml(x);
      // Tolerated input must still produce a well-typed, empty-ish spec.
      assert.equal(typeof r.name, 'string');
      assert.ok(Array.isArray(r.disks));
    } catch (e) {
      assert.ok(e instanceof StormError && e.code === 'invalid', `unexpected ${String(e)}`);
    }
  }
  assert.throws(() => parseDomainXml('<!DOCTYPE d><domain/>'), (e: StormError) => e.code === 'invalid');
});

test('virsh states and libvirt errors map to our states and codes', () => {
  assert.equal(parseState('running'), 'running');
  assert.equal(parseState('shut off\n'), 'shut_off');
  assert.equal(parseState('in shutdown'), 'shutting_down');
  assert.equal(parseState('???'), 'unknown');
  assert.equal(mapLibvirtError(["failed to get domain 'x'"], 'state', 'u').code, 'not_found');
  assert.equal(mapLibvirtError(["Requested operation is not valid: domain is already running"], 'start', 'u').code, 'conflict');
  assert.equal(mapLibvirtError(['failed to connect to the hypervisor'], 'list', 'u').code, 'unreachable');
  // libvirt 9's words when a disk named by the domain is gone at start.
  assert.equal(mapLibvirtError(["Path '/s/instances/i1/instance.qcow2' is not accessible: No such file or directory"], 'start', 'u').code, 'not_found');
  assert.equal(mapLibvirtError(['something odd'], 'list', 'u').code, 'internal');
});

test('virsh arguments that could escape quoting are refused', () => {
  assert.equal(quoteArg('storm-hv-1'), "'storm-hv-1'");
  for (const a of ["a'b", 'a\nb', 'a\\b', 'a\0b']) assert.throws(() => quoteArg(a), (e: StormError) => e.code === 'invalid');
});
