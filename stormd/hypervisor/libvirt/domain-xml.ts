/**
 * DomainSpec ⇄ libvirt domain XML, with fast-xml-parser. Only this module
 * knows the XML; everything else speaks DomainSpec. Disks go on one
 * virtio-scsi controller, one SCSI target per disk (unit 0) with explicit
 * addresses, so the guest names them sda, sdb, ... in spec order (DESIGN §2).
 */
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { invalid } from '../../../lib/errors.ts';
import type { AttachedDisk, DiskRole, DomainSpec, DomainState } from '../driver.ts';

export const STORM_NS = 'urn:storm:domain:1';
const QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';
export type VirtType = 'kvm' | 'qemu';

/** Guest device name for SCSI target N: sda, sdb, ... (16 disks at most). */
export const devName = (target: number): string => `sd${String.fromCharCode(97 + target)}`;

/** Build the domain XML for a validated spec. */
export function buildDomainXml(spec: DomainSpec, virtType: VirtType): string {
  const disks = spec.disks.map((d, target) => ({
    '@_type': 'file',
    '@_device': 'disk',
    driver: { '@_name': 'qemu', '@_type': d.format, ...(d.readonly ? {} : { '@_discard': 'unmap' }) },
    // Shared read-only layers keep their owner (root, mode 0444): libvirt would chown them
    // to libvirt-qemu and never give them back (DESIGN §6). Writable disks are relabelled.
    source: { '@_file': d.path, ...(d.readonly ? { seclabel: { '@_model': 'dac', '@_relabel': 'no' } } : {}) },
    // A shared base under an overlay: declared, and never relabelled either.
    ...(d.backing
      ? { backingStore: { '@_type': 'file', format: { '@_type': d.backing.format }, source: { '@_file': d.backing.path, seclabel: { '@_model': 'dac', '@_relabel': 'no' } }, backingStore: '' } }
      : d.format === 'qcow2'
        ? // No backing file, whatever the image's header says: a crafted qcow2 cannot reach host files.
          { backingStore: '' }
        : {}),
    target: { '@_dev': devName(target), '@_bus': 'scsi' },
    ...(d.readonly ? { readonly: '', shareable: '' } : {}),
    address: { '@_type': 'drive', '@_controller': '0', '@_bus': '0', '@_target': String(target), '@_unit': '0' },
  }));
  const devices: Record<string, unknown> = {
    // No USB controller (libvirt would add one): fewer devices, faster start.
    controller: [
      { '@_type': 'scsi', '@_index': '0', '@_model': 'virtio-scsi' },
      { '@_type': 'usb', '@_model': 'none' },
    ],
    disk: disks,
    ...(spec.network
      ? { interface: { '@_type': 'bridge', source: { '@_bridge': spec.network.bridge }, mac: { '@_address': spec.network.mac }, model: { '@_type': 'virtio' } } }
      : {}),
    serial: { '@_type': 'file', source: { '@_path': spec.consoleLog, '@_append': 'off' }, target: { '@_port': '0' } },
    memballoon: { '@_model': 'none' },
  };
  const doc = {
    domain: {
      '@_type': virtType,
      '@_xmlns:qemu': QEMU_NS,
      name: spec.name,
      ...(spec.uuid ? { uuid: spec.uuid } : {}),
      metadata: {
        'storm:domain': {
          '@_xmlns:storm': STORM_NS,
          'storm:disk': spec.disks.map((d, i) => ({ '@_dev': devName(i), '@_role': d.role })),
        },
      },
      memory: { '@_unit': 'MiB', '#text': String(spec.memoryMiB) },
      vcpu: String(spec.vcpus),
      os: {
        type: { '@_arch': 'x86_64', '#text': 'hvm' },
        kernel: spec.kernel,
        initrd: spec.initrd,
        cmdline: spec.cmdline,
      },
      features: { acpi: '' },
      ...(virtType === 'kvm' ? { cpu: { '@_mode': 'host-passthrough' } } : {}),
      on_poweroff: 'destroy',
      on_reboot: 'restart',
      on_crash: 'destroy',
      devices,
      // libvirt 9 reads the started guest's CPU back with one QMP qom-get per CPU property
      // (~400 calls, ~220 ms of a ~380 ms start under TCG); without this capability it asks
      // for the x86 feature words instead (2 calls). libvirt logs the domain as tainted
      // "custom-hypervisor-feature" for it; the guest and its CPU are the same.
      'qemu:capabilities': { 'qemu:del': { '@_capability': 'cpu-unavailable-features' } },
    },
  };
  const b = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true, processEntities: true });
  return b.build(doc) as string;
}

const ARRAYS = new Set(['domain.devices.disk', 'domain.devices.interface', 'domain.devices.serial', 'domain.metadata.storm:domain.storm:disk']);

/** What dumpxml tells us, as a spec plus the attachment facts. Bounded: rejects huge or odd XML. */
export function parseDomainXml(xml: string): DomainSpec & { attached: AttachedDisk[]; virtType: string; storm: boolean } {
  if (xml.length > 1024 * 1024) throw invalid('domain XML larger than 1 MiB');
  // libvirt never emits a DTD; refusing one rules out entity-expansion tricks.
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw invalid('domain XML must not carry a DOCTYPE or entities');
  const p = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    parseTagValue: false,
    parseAttributeValue: false,
    processEntities: true,
    isArray: (_n, jpath) => ARRAYS.has(jpath as string),
  });
  let doc: Record<string, any>;
  try {
    doc = p.parse(xml) as Record<string, any>;
  } catch (e) {
    throw invalid(`domain XML does not parse: ${(e as Error).message}`);
  }
  const d = doc.domain;
  if (!d || typeof d !== 'object') throw invalid('domain XML has no <domain> element');
  const text = (v: unknown): string => (typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as any)['#text'] === 'string' ? (v as any)['#text'] : '');
  const roles = new Map<string, DiskRole>();
  const meta = d.metadata?.['storm:domain']?.['storm:disk'];
  if (Array.isArray(meta)) for (const m of meta) if (m && typeof m['@_dev'] === 'string') roles.set(m['@_dev'], m['@_role']);
  const attached: AttachedDisk[] = [];
  for (const disk of (d.devices?.disk ?? []) as any[]) {
    if (disk?.['@_device'] !== 'disk') continue;
    const dev = String(disk.target?.['@_dev'] ?? '');
    const bs = disk.backingStore;
    attached.push({
      role: roles.get(dev) ?? 'data',
      path: String(disk.source?.['@_file'] ?? ''),
      format: disk.driver?.['@_type'] === 'qcow2' ? 'qcow2' : 'raw',
      readonly: disk.readonly !== undefined,
      ...(bs && typeof bs === 'object' && bs.source?.['@_file'] ? { backing: { path: String(bs.source['@_file']), format: bs.format?.['@_type'] === 'qcow2' ? 'qcow2' : 'raw' } } : {}),
      dev,
      target: Number(disk.address?.['@_target'] ?? -1),
    } as AttachedDisk);
  }
  const mem = d.memory;
  const unit = String(mem?.['@_unit'] ?? 'KiB');
  const memVal = Number(text(mem));
  const memoryMiB = unit === 'MiB' ? memVal : unit === 'GiB' ? memVal * 1024 : Math.round(memVal / 1024);
  const serial = (d.devices?.serial ?? [])[0];
  const iface = (d.devices?.interface ?? [])[0];
  const out: DomainSpec & { attached: AttachedDisk[]; virtType: string; storm: boolean } = {
    name: text(d.name),
    uuid: text(d.uuid),
    memoryMiB,
    vcpus: Number(text(d.vcpu)),
    kernel: text(d.os?.kernel),
    initrd: text(d.os?.initrd),
    cmdline: text(d.os?.cmdline),
    disks: attached.map(({ role, path, format, readonly, backing }) => ({ role, path, format, readonly, ...(backing ? { backing } : {}) })),
    consoleLog: String(serial?.source?.['@_path'] ?? serial?.log?.['@_file'] ?? ''),
    attached,
    virtType: String(d['@_type'] ?? ''),
    // Defined by STORM (our metadata namespace), as opposed to any other domain on the host.
    storm: d.metadata?.['storm:domain']?.['@_xmlns:storm'] === STORM_NS,
  };
  if (iface?.source?.['@_bridge']) out.network = { bridge: String(iface.source['@_bridge']), mac: String(iface.mac?.['@_address'] ?? '') };
  return out;
}

/** virsh domstate text → our state names. */
export function parseState(s: string): DomainState {
  const t = s.trim().toLowerCase();
  const map: Record<string, DomainState> = {
    running: 'running',
    idle: 'running',
    paused: 'paused',
    'in shutdown': 'shutting_down',
    'shut off': 'shut_off',
    crashed: 'crashed',
    pmsuspended: 'suspended',
  };
  return map[t] ?? 'unknown';
}
