/**
 * HypervisorDriver over libvirt, through one long-lived `virsh` session
 * (virsh.ts) against a configurable URI. Domain XML is built and read only
 * in domain-xml.ts.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, constants, mkdtemp, open, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { StormError, conflict, internal, invalid, notFound, unreachable } from '../../../lib/errors.ts';
import { run } from '../../../lib/exec.ts';
import { healthy, unhealthy, undetected, type Health } from '../../../lib/health.ts';
import { checkConsoleRead, consoleChunk, consoleWindow } from '../../../lib/console-window.ts';
import { validateDomainSpec, validateName, type AttachedDisk, type ConsoleChunk, type ConsoleReadOptions, type DomainInfo, type DomainSpec, type HypervisorDriver } from '../driver.ts';
import { buildDomainXml, parseDomainXml, parseState, type VirtType } from './domain-xml.ts';
import { checkReachable, lookupQemuUser, type QemuUser } from './reach.ts';
import { VirshSession, type VirshResult } from './virsh.ts';

export interface LibvirtDriverOptions {
  /** libvirt connection URI; default qemu:///system. */
  uri?: string;
  /** 'auto' (default) picks kvm when KVM is usable, else qemu (TCG). */
  virtType?: 'auto' | VirtType;
  virsh?: string;
  /** Check files exist and are reachable by the QEMU user before define; default on for qemu:// URIs. */
  checkPaths?: boolean;
  qemuUser?: string;
  commandTimeoutMs?: number;
  /** Interval between state polls while waiting for a graceful shutdown. */
  pollMs?: number;
}

export interface AccelChoice {
  virtType: VirtType;
  reason: string;
}

/**
 * KVM is usable when /dev/kvm opens read-write, the CPU advertises VT-x/AMD-V
 * (a nested guest without it may still have /dev/kvm, and QEMU then fails or
 * hangs) and libvirt offers the kvm domain type.
 */
export async function detectAccel(session: VirshSession): Promise<AccelChoice> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { virtType: 'qemu', reason: '/dev/kvm is missing or not accessible: using TCG' };
  }
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  if (!/^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo)) return { virtType: 'qemu', reason: 'the CPU does not advertise vmx/svm (nested virtualisation off): using TCG' };
  const caps = await session.exec(['domcapabilities', '--virttype', 'kvm']).catch(() => undefined);
  if (!caps || caps.errors.length) return { virtType: 'qemu', reason: 'libvirt does not offer the kvm domain type: using TCG' };
  return { virtType: 'kvm', reason: 'KVM usable' };
}

const STATE_LINE = /^State:\s+(.+)$/m;
const UUID_LINE = /^UUID:\s+(\S+)$/m;

export class LibvirtDriver implements HypervisorDriver {
  readonly kind: string;
  readonly uri: string;
  readonly #session: VirshSession;
  readonly #opts: LibvirtDriverOptions;
  #accel: Promise<AccelChoice> | undefined;
  #qemuUser: Promise<QemuUser | undefined> | undefined;

  constructor(opts: LibvirtDriverOptions = {}) {
    this.#opts = opts;
    this.uri = opts.uri ?? 'qemu:///system';
    this.kind = `libvirt ${this.uri}`;
    this.#session = new VirshSession(this.uri, { ...(opts.virsh ? { virsh: opts.virsh } : {}), timeoutMs: opts.commandTimeoutMs ?? 60_000 });
  }

  get #isQemu(): boolean {
    return this.uri.startsWith('qemu');
  }

  /** kvm or qemu for this connection (detected once). */
  accel(): Promise<AccelChoice> {
    if (!this.#accel) {
      const forced = this.#opts.virtType;
      if (forced && forced !== 'auto') this.#accel = Promise.resolve({ virtType: forced, reason: 'configured' });
      else if (!this.#isQemu) this.#accel = Promise.resolve({ virtType: 'qemu', reason: `${this.uri} is not a QEMU connection` });
      else this.#accel = detectAccel(this.#session);
    }
    return this.#accel;
  }

  /** Run a virsh command; libvirt errors become StormErrors with codes. */
  async #virsh(args: string[], what: string, timeoutMs?: number): Promise<string> {
    const r: VirshResult = await this.#session.exec(args, timeoutMs ? { timeoutMs } : {});
    if (r.errors.length) throw mapLibvirtError(r.errors, what, this.uri);
    return r.stdout;
  }

  async define(input: DomainSpec): Promise<DomainInfo> {
    const valid = validateDomainSpec(input);
    // Our own UUID when none is given: the answer is then known without asking libvirt again.
    const spec = { ...valid, uuid: valid.uuid ?? randomUUID() };
    if (await this.#exists(spec.name)) throw conflict(`domain ${spec.name} already exists on ${this.uri}`, { hint: 'undefine it first or pick another name' });
    if (this.#opts.checkPaths ?? this.#isQemu) await this.#checkPaths(spec);
    const { virtType } = await this.accel();
    const xml = buildDomainXml(spec, virtType);
    // virsh reads the XML from a file; a private temp dir keeps it ours.
    const dir = await mkdtemp(join(tmpdir(), 'storm-virsh-'));
    try {
      const file = join(dir, 'domain.xml');
      await writeFile(file, xml, { mode: 0o600 });
      await this.#virsh(['define', file], `define ${spec.name}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return { name: spec.name, uuid: spec.uuid, state: 'shut_off' };
  }

  async #checkPaths(spec: DomainSpec): Promise<void> {
    if (!this.#qemuUser) this.#qemuUser = lookupQemuUser(this.#opts.qemuUser ?? 'libvirt-qemu');
    const user = await this.#qemuUser;
    const root: QemuUser = { name: 'root', uid: 0, gids: [0] };
    const u = user ?? root;
    // The files share directories (the layer cache): each directory is checked once.
    const searchable = new Set<string>();
    await checkReachable('kernel', spec.kernel, u, { searchable });
    await checkReachable('initrd', spec.initrd, u, { searchable });
    for (const [i, d] of spec.disks.entries()) {
      await checkReachable(`disks[${i}] (${d.role})`, d.path, u, { read: d.readonly, searchable });
      if (d.backing) await checkReachable(`disks[${i}].backing`, d.backing.path, u, { read: true, searchable });
    }
    // libvirt creates the console log itself; its directory must exist.
    try {
      const st = await stat(join(spec.consoleLog, '..'));
      if (!st.isDirectory()) throw new Error('not a directory');
    } catch {
      throw notFound(`the directory for consoleLog ${spec.consoleLog} does not exist`);
    }
  }

  async #exists(name: string): Promise<boolean> {
    const r = await this.#session.exec(['domuuid', name]);
    if (!r.errors.length) return true;
    const e = mapLibvirtError(r.errors, `look up ${name}`, this.uri);
    if (e.code === 'not_found') return false;
    throw e;
  }

  async start(name: string): Promise<DomainInfo> {
    validateName(name);
    // No state check first (it is on every provisioning's path): libvirt refuses an active
    // domain itself ("already active" → conflict) and an unknown one (not_found).
    await this.#virsh(['start', name], `start ${name}`);
    return this.state(name);
  }

  async shutdown(name: string, opts: { timeoutMs?: number } = {}): Promise<DomainInfo> {
    validateName(name);
    let cur = await this.state(name);
    if (cur.state === 'shut_off') return cur;
    // QEMU: the ACPI power button, never the guest agent; other drivers take no mode.
    const press = () => this.#virsh(['shutdown', name, ...(this.#isQemu ? ['--mode', 'acpi'] : [])], `shutdown ${name}`);
    await press();
    const waitMs = opts.timeoutMs ?? 60_000;
    const limit = Date.now() + waitMs;
    const poll = this.#opts.pollMs ?? 100;
    // A guest still booting may not listen yet: press the button again now and then (harmless).
    let nextPress = Date.now() + 5000;
    for (;;) {
      cur = await this.state(name);
      if (cur.state === 'shut_off' || cur.state === 'crashed') return cur;
      if (Date.now() >= limit) {
        throw new StormError('timeout', `domain ${name} did not shut down within ${waitMs} ms (still ${cur.state})`, {
          hint: 'the guest may ignore ACPI; power it off instead',
          details: { name, state: cur.state },
        });
      }
      if (Date.now() >= nextPress) {
        nextPress = Date.now() + 5000;
        await press().catch(() => undefined); // it may have just gone off
      }
      await new Promise((r) => setTimeout(r, poll));
    }
  }

  async poweroff(name: string): Promise<DomainInfo> {
    validateName(name);
    const cur = await this.state(name);
    if (cur.state === 'shut_off') return cur;
    await this.#virsh(['destroy', name], `power off ${name}`);
    return this.state(name);
  }

  async undefine(name: string): Promise<void> {
    validateName(name);
    const cur = await this.state(name);
    // libvirt would turn a running domain transient; we refuse instead.
    if (cur.state !== 'shut_off' && cur.state !== 'crashed') throw conflict(`domain ${name} is ${cur.state}; power it off before undefining it`);
    await this.#virsh(['undefine', name], `undefine ${name}`);
  }

  async list(opts: { prefix?: string } = {}): Promise<DomainInfo[]> {
    const uuids = await this.#virsh(['list', '--all', '--uuid', '--name'], 'list domains');
    const table = await this.#virsh(['list', '--all'], 'list domains');
    const states = new Map<string, string>();
    for (const line of table.split('\n')) {
      const m = /^\s*(\S+)\s+(.*?)\s{2,}(\S.*?)\s*$/.exec(line);
      if (m) states.set(m[2]!, m[3]!);
    }
    const out: DomainInfo[] = [];
    for (const line of uuids.split('\n')) {
      const m = /^([0-9a-f-]{36})\s+(.+)$/.exec(line.trim());
      if (!m) continue;
      const name = m[2]!;
      if (opts.prefix && !name.startsWith(opts.prefix)) continue;
      out.push({ name, uuid: m[1]!, state: parseState(states.get(name) ?? '') });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async reattachNetwork(name: string): Promise<string[]> {
    validateName(name);
    const nics = parseIfList(await this.#virsh(['domiflist', name], `list the interfaces of ${name}`));
    // Only a local QEMU domain has host taps (test:///default reports names that do not exist).
    if (!this.#isQemu) return [];
    const fixed: string[] = [];
    for (const nic of nics) {
      if (nic.type !== 'bridge' || !existsSync(`/sys/class/net/${nic.iface}`) || !existsSync(`/sys/class/net/${nic.source}/bridge`)) continue;
      const master = await readlink(`/sys/class/net/${nic.iface}/master`).then(basename, () => undefined);
      if (master === nic.source) continue;
      const r = await run('ip', ['link', 'set', 'dev', nic.iface, 'master', nic.source, 'up']);
      if (r.code !== 0) throw internal(`could not put ${name}'s interface ${nic.iface} back on bridge ${nic.source}: ${r.stderr.trim() || `ip exited ${r.code}`}`, { hint: 'stormd needs root (CAP_NET_ADMIN) for this' });
      fixed.push(nic.iface);
    }
    return fixed;
  }

  async state(name: string): Promise<DomainInfo> {
    validateName(name);
    const info = await this.#virsh(['dominfo', name], `state of ${name}`);
    return { name, uuid: UUID_LINE.exec(info)?.[1] ?? '', state: parseState(STATE_LINE.exec(info)?.[1] ?? '') };
  }

  async inspect(name: string): Promise<DomainSpec & { attached: AttachedDisk[] }> {
    validateName(name);
    const xml = await this.#virsh(['dumpxml', name], `read ${name}`);
    const { virtType: _v, storm: _s, ...spec } = parseDomainXml(xml);
    return spec;
  }

  async consoleRead(name: string, opts: ConsoleReadOptions): Promise<ConsoleChunk> {
    const read = checkConsoleRead(opts);
    validateName(name);
    const xml = await this.#virsh(['dumpxml', name], `read ${name}`);
    const { consoleLog, storm } = parseDomainXml(xml);
    // libvirt numbers each run of a domain (<domain id='N'>, only while it runs); a start truncates the log.
    const boot = /^<domain\b[^>]*\sid='(\d+)'/m.exec(xml)?.[1];
    // Only our domains: another domain's "console" could name any file on the host.
    if (!storm) throw invalid(`domain ${name} was not defined by STORM; its console is not ours to read`);
    const none: ConsoleChunk = { text: '', from: 0, next: 0, ...(boot ? { boot } : {}) };
    if (!consoleLog) return none;
    let fh;
    try {
      fh = await open(consoleLog, 'r');
    } catch {
      return none; // not booted yet
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw invalid(`console log of ${name} is not a regular file`);
      // One stat, one read: the chunk and `next` describe the same moment of the log.
      const { start, n } = consoleWindow(st.size, read, boot);
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, start);
      return consoleChunk(buf.subarray(0, bytesRead), start, read, boot);
    } finally {
      await fh.close();
    }
  }

  async health(): Promise<Health> {
    const component = 'libvirt';
    let r: VirshResult;
    try {
      r = await this.#session.exec(['version'], { timeoutMs: 10_000 });
    } catch (e) {
      const err = e as StormError;
      if (err.code === 'unavailable') return undetected(component, err.message, 'install libvirt-clients and libvirt-daemon-system (scripts/setup)');
      return unhealthy(component, `libvirt at ${this.uri} is not reachable: ${err.message}`, 'start libvirtd (as root: virtlogd -d && libvirtd -d; scripts/setup does it)', { uri: this.uri });
    }
    if (r.errors.length) return unhealthy(component, `libvirt at ${this.uri}: ${r.errors.join('; ')}`, 'start libvirtd (as root: virtlogd -d && libvirtd -d; scripts/setup does it)', { uri: this.uri });
    const lib = /Using library: libvirt (\S+)/.exec(r.stdout)?.[1];
    const hv = /Running hypervisor: (.+)/.exec(r.stdout)?.[1]?.trim();
    const accel = await this.accel();
    return healthy(component, `libvirt ${lib ?? '?'} at ${this.uri}, ${hv ?? 'hypervisor ?'}, ${accel.virtType === 'kvm' ? 'KVM' : 'TCG (no KVM)'}`, {
      uri: this.uri,
      libvirtVersion: lib ?? null,
      hypervisor: hv ?? null,
      virtType: accel.virtType,
      kvmUsable: accel.virtType === 'kvm',
      accelReason: accel.reason,
    });
  }

  close(): Promise<void> {
    return this.#session.close();
  }
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** `virsh domiflist` rows (Interface, Type, Source, Model, MAC); rows whose names could not be interfaces are dropped. */
export function parseIfList(out: string): { iface: string; type: string; source: string; mac: string }[] {
  const rows: { iface: string; type: string; source: string; mac: string }[] = [];
  for (const line of out.split('\n').slice(0, 1000)) {
    const c = line.trim().split(/\s+/);
    if (c.length !== 5 || c[0] === 'Interface' || !IFNAME.test(c[0]!) || c[0] === '-' || !IFNAME.test(c[2]!)) continue;
    rows.push({ iface: c[0]!, type: c[1]!, source: c[2]!, mac: c[4]! });
  }
  return rows;
}

/** libvirt's error text → our codes (the one place that reads libvirt's messages). */
export function mapLibvirtError(errors: string[], what: string, uri: string): StormError {
  const text = errors.join('; ');
  const msg = `${what} failed on ${uri}: ${text}`;
  const details = { uri, libvirt: text };
  if (/failed to get domain|Domain not found|no domain with matching/i.test(text)) return notFound(msg, { details });
  // A disk the domain names went missing after define (a removed instance layer, say).
  if (/is not accessible: No such file|Cannot access storage file .*No such file/i.test(text)) return notFound(msg, { details, hint: 'restore or recreate the missing disk, or redefine the domain' });
  if (/already exists|already defined|is already active|domain is not running|Requested operation is not valid|Failed to get "write" lock/i.test(text)) return conflict(msg, { details });
  if (/failed to connect|Failed to connect socket|no connection driver|Cannot recv data|End of file while reading/i.test(text)) return unreachable(msg, { details, hint: 'is libvirtd running? scripts/setup starts it' });
  if (/XML error|unsupported configuration|invalid argument/i.test(text)) return invalid(msg, { details });
  return new StormError('internal', msg, { details });
}
