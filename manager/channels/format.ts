/**
 * The channel formats (docs/channel-format.md): the RSS 2.0 feed with the
 * `storm:` namespace, and the appliance XML. The publisher writes them with
 * the serializers here and the manager reads them with the parsers here, so
 * both sides agree by construction.
 */
import { invalid } from '../../lib/errors.ts';
import { esc, ID_RE, MAX_APPLIANCE_BYTES, MAX_FEED_BYTES, parseXml, Reader, SHA256_RE, VERSION_RE, type XmlNode } from './xml.ts';

/** A data volume's name: the ext4 label `storm-data-NAME` holds 16 characters. */
export const VOLUME_NAME_RE = /^[A-Za-z0-9_-]{1,5}$/;

export const STORM_NS = 'urn:storm:channel:1';
export const APPLIANCE_NS = 'urn:storm:appliance:1';

export const LAYER_ROLES = ['substrate', 'appliance', 'deployment'] as const;
export type LayerRole = (typeof LAYER_ROLES)[number];
export const PARAM_TYPES = ['string', 'int', 'bool', 'enum', 'hostname', 'email', 'secret'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];
export const IMAGE_FORMATS = ['raw', 'qcow2'] as const;

/** A file the manager downloads by digest: href relative to the channel, mirrors absolute. */
export interface Blob {
  sha256: string;
  size: number;
  href: string;
  mirrors: string[];
}

export interface Layer extends Blob {
  role: LayerRole;
  name: string;
  version: string;
  format: 'raw' | 'qcow2';
}

export interface Disk extends Blob {
  format: 'raw' | 'qcow2';
}

export interface Parameter {
  name: string;
  type: ParamType;
  default?: string;
  required: boolean;
  choices?: string[];
  description: string;
}

export interface ServicesNeeded {
  /** The DNS name the instance gets (a label under the site's domain); empty when none. */
  dns?: { name: string };
  mx?: { priority: number };
  ldap?: boolean;
  kerberos?: { principal: string };
}

export interface Appliance {
  id: string;
  version: string;
  title: string;
  description: string;
  /** Layered appliances have layers; a traditional appliance has one disk instead. */
  layers: Layer[];
  disk?: Disk;
  boot: { kernel?: Blob; initrd?: Blob; cmdline?: string };
  memoryMiB: number;
  vcpus: number;
  parameters: Parameter[];
  services: ServicesNeeded;
  /** A data volume; `name` is the label's suffix (`storm-data-NAME`) the guest's initrd looks for. */
  volume?: { sizeMiB: number; mount: string; name?: string };
}

export interface FeedItem {
  id: string;
  version: string;
  title: string;
  description: string;
  pubDate: string;
  link: string;
  /** Where the appliance XML is, relative to the channel (the feed's folder). */
  href: string;
  sha256: string;
  size: number;
}

export interface Feed {
  title: string;
  description: string;
  link: string;
  lastBuildDate: string;
  items: FeedItem[];
}

const MAX_ITEMS = 10_000;
const NAME_RE = /^[a-z][a-z0-9_-]{0,62}$/;

/** Parse and validate a channel feed. */
export function parseFeed(text: string | Buffer, file = 'feed.xml'): Feed {
  const doc = parseXml(text, file, MAX_FEED_BYTES);
  const r: Reader = new Reader(file);
  const rss = r.node(doc, 'rss', '');
  if (rss['@version'] !== '2.0') r.fail('rss', 'attribute version="2.0"', rss['@version']);
  const ns = Object.entries(rss).find(([k, v]) => k.startsWith('@xmlns:') && v === STORM_NS);
  if (!ns) r.fail('rss', `an xmlns:storm="${STORM_NS}" declaration`);
  const p = ns[0].slice('@xmlns:'.length);
  const ch = r.node(rss, 'channel', 'rss');
  const items = r.list(ch, 'item');
  if (items.length > MAX_ITEMS) r.fail('rss/channel/item', `at most ${MAX_ITEMS} items`, items.length);
  const seen = new Set<string>();
  const out: FeedItem[] = items.map((it, i) => {
    const path = `rss/channel/item[${i + 1}]`;
    const guid = r.text(it, 'guid', path);
    const m = /^([^@]+)@(.+)$/.exec(guid);
    if (!m || !ID_RE.test(m[1]!) || !VERSION_RE.test(m[2]!)) r.fail(`${path}/guid`, 'id@version (id: lower-case letters, digits, . _ -; version: letters, digits, . _ + ~ -)', guid);
    if (seen.has(guid)) r.fail(`${path}/guid`, 'a guid not used by an earlier item', guid);
    seen.add(guid);
    const app = r.node(it, `${p}:appliance`, path);
    const apath = `${path}/${p}:appliance`;
    const pubDate = r.text(it, 'pubDate', path);
    if (Number.isNaN(Date.parse(pubDate))) r.fail(`${path}/pubDate`, 'an RFC 822 date', pubDate);
    return {
      id: m[1]!,
      version: m[2]!,
      title: r.text(it, 'title', path, { max: 200 }),
      description: r.text(it, 'description', path, { optional: true }),
      pubDate: new Date(pubDate).toISOString(),
      link: r.text(it, 'link', path, { max: 2048 }),
      href: r.attr(app, 'href', apath),
      sha256: r.attr(app, 'sha256', apath, { re: SHA256_RE, what: '64 lower-case hex digits' }),
      size: r.int(app, 'size', apath, { min: 1, max: 256 * 1024 })!,
    };
  });
  return {
    title: r.text(ch, 'title', 'rss/channel', { max: 200 }),
    description: r.text(ch, 'description', 'rss/channel', { optional: true }),
    link: r.text(ch, 'link', 'rss/channel', { optional: true, max: 2048 }),
    lastBuildDate: isoOrRaw(r.text(ch, 'lastBuildDate', 'rss/channel', { optional: true })),
    items: out,
  };
}

const isoOrRaw = (s: string) => (s && !Number.isNaN(Date.parse(s)) ? new Date(s).toISOString() : s);

function blob(r: Reader, n: XmlNode, path: string): Blob {
  return {
    sha256: r.attr(n, 'sha256', path, { re: SHA256_RE, what: '64 lower-case hex digits' }),
    size: r.int(n, 'size', path, { min: 1 })!,
    href: r.attr(n, 'href', path),
    mirrors: r.list(n, 'mirror').map((m, i) => r.attr(m, 'href', `${path}/mirror[${i + 1}]`)),
  };
}

function format(r: Reader, n: XmlNode, path: string): 'raw' | 'qcow2' {
  const f = r.attr(n, 'format', path, { optional: true }) || 'raw';
  if (!(IMAGE_FORMATS as readonly string[]).includes(f)) r.fail(path, `attribute format to be one of ${IMAGE_FORMATS.join(', ')}`, f);
  return f as 'raw' | 'qcow2';
}

/** Parse and validate an appliance XML document. */
export function parseAppliance(text: string | Buffer, file = 'appliance.xml'): Appliance {
  const doc = parseXml(text, file, MAX_APPLIANCE_BYTES);
  const r: Reader = new Reader(file);
  const a = r.node(doc, 'appliance', '');
  if (a['@xmlns'] !== APPLIANCE_NS) r.fail('appliance', `xmlns="${APPLIANCE_NS}"`, a['@xmlns']);
  const id = r.attr(a, 'id', 'appliance', { re: ID_RE, what: 'lower-case letters, digits, . _ - (at most 63)' });
  const version = r.attr(a, 'version', 'appliance', { re: VERSION_RE, what: 'letters, digits, . _ + ~ - (at most 63)' });
  const layersNode = r.optNode(a, 'layers', 'appliance');
  const diskNode = r.optNode(a, 'disk', 'appliance');
  if (layersNode && diskNode) r.fail('appliance', 'either <layers> (a layered appliance) or <disk> (a traditional one), not both');
  if (!layersNode && !diskNode) r.fail('appliance', 'either <layers> (a layered appliance) or <disk> (a traditional one)');
  const layers: Layer[] = (layersNode ? r.list(layersNode, 'layer') : []).map((n, i) => {
    const path = `appliance/layers/layer[${i + 1}]`;
    const role = r.attr(n, 'role', path);
    if (!(LAYER_ROLES as readonly string[]).includes(role)) r.fail(path, `attribute role to be one of ${LAYER_ROLES.join(', ')}`, role);
    return {
      role: role as LayerRole,
      name: r.attr(n, 'name', path, { re: ID_RE, what: 'lower-case letters, digits, . _ -' }),
      version: r.attr(n, 'version', path, { re: VERSION_RE, what: 'a version' }),
      format: format(r, n, path),
      ...blob(r, n, path),
    };
  });
  if (layersNode) {
    for (const role of LAYER_ROLES) {
      const n = layers.filter((l) => l.role === role).length;
      if (n > 1) r.fail('appliance/layers', `at most one layer with role="${role}"`, `${n} of them`);
    }
    for (const role of ['substrate', 'appliance'] as const) if (!layers.some((l) => l.role === role)) r.fail('appliance/layers', `a layer with role="${role}"`);
  }
  const res = r.node(a, 'resources', 'appliance');
  const bootNode = r.optNode(a, 'boot', 'appliance');
  const boot: Appliance['boot'] = {};
  if (bootNode) {
    const k = r.optNode(bootNode, 'kernel', 'appliance/boot');
    const i = r.optNode(bootNode, 'initrd', 'appliance/boot');
    if (k) boot.kernel = blob(r, k, 'appliance/boot/kernel');
    if (i) boot.initrd = blob(r, i, 'appliance/boot/initrd');
    const c = r.text(bootNode, 'cmdline', 'appliance/boot', { optional: true, max: 1024 });
    if (c) boot.cmdline = c;
  }
  if (layersNode && (!boot.kernel || !boot.initrd)) r.fail('appliance/boot', 'a <kernel> and an <initrd> (a layered appliance boots through the STORM initrd)');
  const paramsNode = r.optNode(a, 'parameters', 'appliance');
  const names = new Set<string>();
  const parameters: Parameter[] = (paramsNode ? r.list(paramsNode, 'parameter') : []).map((n, i) => {
    const path = `appliance/parameters/parameter[${i + 1}]`;
    const name = r.attr(n, 'name', path, { re: NAME_RE, what: 'lower-case letters, digits, _ - starting with a letter' });
    if (names.has(name)) r.fail(path, `a parameter name not used before`, name);
    names.add(name);
    const type = r.attr(n, 'type', path);
    if (!(PARAM_TYPES as readonly string[]).includes(type)) r.fail(path, `attribute type to be one of ${PARAM_TYPES.join(', ')}`, type);
    const reqS = r.attr(n, 'required', path, { optional: true, re: /^(true|false)$/, what: 'true or false' });
    const choices = r.list(n, 'choice').map((c, j) => r.text({ c }, 'c', `${path}/choice[${j + 1}]`));
    if (type === 'enum' && choices.length === 0) r.fail(path, 'at least one <choice> for type="enum"');
    const p: Parameter = { name, type: type as ParamType, required: reqS === 'true', description: r.text(n, 'description', path, { optional: true, max: 2000 }) };
    const d = n['@default'];
    if (d !== undefined) {
      p.default = String(d);
      const problem = checkParam(p, p.default);
      if (problem) r.fail(path, `attribute default: ${problem}`, p.default);
    }
    if (choices.length) p.choices = choices;
    if (p.choices && p.default !== undefined && !p.choices.includes(p.default)) r.fail(path, `attribute default to be one of the choices (${p.choices.join(', ')})`, p.default);
    return p;
  });
  const sNode = r.optNode(a, 'services', 'appliance') ?? {};
  const services: ServicesNeeded = {};
  const dns = r.optNode(sNode, 'dns', 'appliance/services');
  if (dns) services.dns = { name: r.attr(dns, 'name', 'appliance/services/dns', { re: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, what: 'a DNS label' }) };
  const mx = r.optNode(sNode, 'mx', 'appliance/services');
  if (mx) services.mx = { priority: r.int(mx, 'priority', 'appliance/services/mx', { optional: true, max: 65535 }) ?? 10 };
  if (r.optNode(sNode, 'ldap', 'appliance/services')) services.ldap = true;
  const krb = r.optNode(sNode, 'kerberos', 'appliance/services');
  if (krb) services.kerberos = { principal: r.attr(krb, 'principal', 'appliance/services/kerberos', { optional: true, re: /^[a-z][a-z0-9-]{0,31}$/, what: 'a service name like host' }) || 'host' };
  const vol = r.optNode(a, 'volume', 'appliance');
  const app: Appliance = {
    id,
    version,
    title: r.text(a, 'title', 'appliance', { max: 200 }),
    description: r.text(a, 'description', 'appliance', { optional: true }),
    layers,
    boot,
    memoryMiB: r.int(res, 'memory-mib', 'appliance/resources', { min: 16, max: 1024 * 1024 })!,
    vcpus: r.int(res, 'vcpus', 'appliance/resources', { min: 1, max: 256 })!,
    parameters,
    services,
  };
  if (diskNode) app.disk = { format: format(r, diskNode, 'appliance/disk'), ...blob(r, diskNode, 'appliance/disk') };
  if (vol) {
    app.volume = { sizeMiB: r.int(vol, 'size-mib', 'appliance/volume', { min: 1 })!, mount: r.attr(vol, 'mount', 'appliance/volume', { re: /^\/[A-Za-z0-9._/-]{0,255}$/, what: 'an absolute path' }) };
    const name = r.attr(vol, 'name', 'appliance/volume', { optional: true, re: VOLUME_NAME_RE, what: '1-5 letters, digits, _ or -' });
    if (name) app.volume.name = name;
  }
  return app;
}

/** Check a parameter value against its type; returns the problem or undefined. */
export function checkParam(p: Pick<Parameter, 'type' | 'choices'>, v: string): string | undefined {
  switch (p.type) {
    case 'int':
      return /^-?\d{1,15}$/.test(v) ? undefined : 'expected an integer';
    case 'bool':
      return v === 'true' || v === 'false' ? undefined : 'expected true or false';
    case 'hostname':
      return /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(v) ? undefined : 'expected a host name';
    case 'email':
      return /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v) ? undefined : 'expected an e-mail address';
    case 'enum':
      return !p.choices || p.choices.includes(v) ? undefined : `expected one of ${p.choices.join(', ')}`;
    default:
      return v.length <= 4096 ? undefined : 'expected at most 4096 characters';
  }
}

/** Every downloadable file an appliance needs, each once. */
export function applianceBlobs(a: Appliance): (Blob & { what: string })[] {
  const out: (Blob & { what: string })[] = [];
  for (const l of a.layers) out.push({ ...l, what: `${l.role} ${l.name} ${l.version}` });
  if (a.disk) out.push({ ...a.disk, what: 'disk' });
  if (a.boot.kernel) out.push({ ...a.boot.kernel, what: 'kernel' });
  if (a.boot.initrd) out.push({ ...a.boot.initrd, what: 'initrd' });
  const seen = new Set<string>();
  return out.filter((b) => (seen.has(b.sha256) ? false : (seen.add(b.sha256), true)));
}

function blobXml(tag: string, b: Blob, extra: string, indent: string): string {
  const head = `${indent}<${tag}${extra} sha256="${b.sha256}" size="${b.size}" href="${esc(b.href)}"`;
  if (!b.mirrors.length) return `${head}/>\n`;
  return `${head}>\n${b.mirrors.map((m) => `${indent}  <mirror href="${esc(m)}"/>\n`).join('')}${indent}</${tag}>\n`;
}

/** Write an appliance XML document (the publisher's side of parseAppliance). */
export function serializeAppliance(a: Appliance): string {
  let x = `<?xml version="1.0" encoding="UTF-8"?>\n<appliance xmlns="${APPLIANCE_NS}" id="${esc(a.id)}" version="${esc(a.version)}">\n`;
  x += `  <title>${esc(a.title)}</title>\n  <description>${esc(a.description)}</description>\n`;
  x += `  <resources memory-mib="${a.memoryMiB}" vcpus="${a.vcpus}"/>\n`;
  if (a.boot.kernel || a.boot.initrd || a.boot.cmdline) {
    x += '  <boot>\n';
    if (a.boot.kernel) x += blobXml('kernel', a.boot.kernel, '', '    ');
    if (a.boot.initrd) x += blobXml('initrd', a.boot.initrd, '', '    ');
    if (a.boot.cmdline) x += `    <cmdline>${esc(a.boot.cmdline)}</cmdline>\n`;
    x += '  </boot>\n';
  }
  if (a.layers.length) {
    x += '  <layers>\n';
    for (const l of a.layers) x += blobXml('layer', l, ` role="${l.role}" name="${esc(l.name)}" version="${esc(l.version)}" format="${l.format}"`, '    ');
    x += '  </layers>\n';
  }
  if (a.disk) x += blobXml('disk', a.disk, ` format="${a.disk.format}"`, '  ');
  if (a.parameters.length) {
    x += '  <parameters>\n';
    for (const p of a.parameters) {
      const head = `    <parameter name="${esc(p.name)}" type="${p.type}"${p.default !== undefined ? ` default="${esc(p.default)}"` : ''} required="${p.required}"`;
      if (!p.description && !p.choices?.length) {
        x += `${head}/>\n`;
        continue;
      }
      x += `${head}>\n`;
      if (p.description) x += `      <description>${esc(p.description)}</description>\n`;
      for (const c of p.choices ?? []) x += `      <choice>${esc(c)}</choice>\n`;
      x += '    </parameter>\n';
    }
    x += '  </parameters>\n';
  }
  const s = a.services;
  if (s.dns || s.mx || s.ldap || s.kerberos) {
    x += '  <services>\n';
    if (s.dns) x += `    <dns name="${esc(s.dns.name)}"/>\n`;
    if (s.mx) x += `    <mx priority="${s.mx.priority}"/>\n`;
    if (s.ldap) x += '    <ldap/>\n';
    if (s.kerberos) x += `    <kerberos principal="${esc(s.kerberos.principal)}"/>\n`;
    x += '  </services>\n';
  }
  if (a.volume) x += `  <volume size-mib="${a.volume.sizeMiB}" mount="${esc(a.volume.mount)}"${a.volume.name ? ` name="${esc(a.volume.name)}"` : ''}/>\n`;
  return x + '</appliance>\n';
}

/** Write a channel feed (the publisher's side of parseFeed). */
export function serializeFeed(f: Feed): string {
  let x = `<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:storm="${STORM_NS}">\n  <channel>\n`;
  x += `    <title>${esc(f.title)}</title>\n    <link>${esc(f.link)}</link>\n    <description>${esc(f.description)}</description>\n`;
  x += `    <lastBuildDate>${new Date(f.lastBuildDate).toUTCString()}</lastBuildDate>\n    <generator>storm channel publish</generator>\n`;
  for (const it of f.items) {
    x += '    <item>\n';
    x += `      <title>${esc(it.title)}</title>\n      <description>${esc(it.description)}</description>\n`;
    x += `      <guid isPermaLink="false">${esc(it.id)}@${esc(it.version)}</guid>\n`;
    x += `      <pubDate>${new Date(it.pubDate).toUTCString()}</pubDate>\n      <link>${esc(it.link)}</link>\n`;
    x += `      <storm:appliance href="${esc(it.href)}" sha256="${it.sha256}" size="${it.size}"/>\n`;
    x += '    </item>\n';
  }
  return x + '  </channel>\n</rss>\n';
}

/** Check that an appliance document is the one its feed item announced. */
export function checkItemMatches(item: FeedItem, a: Appliance, file: string): void {
  if (a.id !== item.id || a.version !== item.version) throw invalid(`${file}: <appliance> is ${a.id}@${a.version} but the feed item announced ${item.id}@${item.version}`);
}
