/**
 * The publisher: from a folder of layers and small JSON descriptors
 * (DIR/appliances/*.json, docs/channel-format.md) write every appliance XML
 * and the feed, with digests and sizes computed here, and sign the feed.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { invalid } from '../../lib/errors.ts';
import { checkParam, IMAGE_FORMATS, VOLUME_NAME_RE, LAYER_ROLES, PARAM_TYPES, parseAppliance, parseFeed, serializeAppliance, serializeFeed, type Appliance, type Blob, type Feed, type Layer, type Parameter } from './format.ts';
import { signFeed, SIGNATURE_SUFFIX } from './sign.ts';
import { ID_RE, VERSION_RE } from './xml.ts';

export const FEED_FILE = 'feed.xml';

export interface PublishResult {
  dir: string;
  feed: string;
  signed: boolean;
  appliances: { id: string; version: string; file: string; sha256: string }[];
  files: { path: string; sha256: string; size: number }[];
}

type Json = Record<string, unknown>;

/** Hash a file streaming (layers may be many GiB). */
export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

async function writeAtomic(path: string, data: string | Buffer): Promise<void> {
  await writeFile(path + '.tmp', data);
  await rename(path + '.tmp', path);
}

/** Publish the channel in `dir`. `baseUrl` is where it will be served (for the feed's absolute links). */
export async function publishChannel(dir: string, opts: { baseUrl: string; privateKeyPem?: string; now?: Date }): Promise<PublishResult> {
  let base: URL;
  try {
    base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : opts.baseUrl + '/');
  } catch {
    throw invalid(`--base-url ${opts.baseUrl}: expected an http(s) URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw invalid(`--base-url ${opts.baseUrl}: expected an http or https URL`);
  const now = opts.now ?? new Date();
  const chan = await readJson(join(dir, 'channel.json'), true);
  const descDir = join(dir, 'appliances');
  let names: string[];
  try {
    names = (await readdir(descDir)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    throw invalid(`${descDir}: no such folder`, { hint: 'a channel folder holds appliances/*.json descriptors (see docs/channel-format.md)' });
  }
  if (!names.length) throw invalid(`${descDir}: no *.json appliance descriptors`);

  const hashes = new Map<string, Promise<{ sha256: string; size: number }>>();
  const files = new Map<string, { sha256: string; size: number }>();
  const fileBlob = async (file: unknown, mirrors: unknown, where: string): Promise<Blob> => {
    if (typeof file !== 'string' || file === '') throw invalid(`${where}: "file" must be a path relative to the channel folder`);
    const rel = normalize(file);
    if (isAbsolute(rel) || rel.startsWith('..' + sep) || rel === '..') throw invalid(`${where}: "file" ${file} is outside the channel folder`);
    const abs = join(dir, rel);
    try {
      if (!(await stat(abs)).isFile()) throw new Error('not a file');
    } catch {
      throw invalid(`${where}: "file" ${file}: no such file in ${dir}`);
    }
    if (!hashes.has(rel)) hashes.set(rel, hashFile(abs));
    const h = await hashes.get(rel)!;
    files.set(rel, h);
    const ms = mirrors === undefined ? [] : mirrors;
    if (!Array.isArray(ms) || !ms.every((m) => typeof m === 'string' && /^https?:\/\//.test(m))) throw invalid(`${where}: "mirrors" must be a list of absolute http(s) URLs`);
    // A mirror given as a folder URL serves the same relative path.
    return { ...h, href: rel.split(sep).join('/'), mirrors: (ms as string[]).map((m) => (m.endsWith('/') ? new URL(rel.split(sep).join('/'), m).href : m)) };
  };

  // An unchanged appliance keeps the date it was first published.
  const previous = new Map<string, string>();
  try {
    for (const it of parseFeed(await readFile(join(dir, FEED_FILE)), FEED_FILE).items) previous.set(it.sha256, it.pubDate);
  } catch {
    /* no earlier feed, or one we cannot read: everything is new */
  }
  // Nothing is written until every descriptor has passed: a bad one leaves the published channel as it was.
  const outputs: [string, string | Buffer][] = [];
  const items: Feed['items'] = [];
  const apps: PublishResult['appliances'] = [];
  const seen = new Set<string>();
  for (const name of names) {
    const where = `appliances/${name}`;
    const d = (await readJson(join(descDir, name), false))!;
    const app = await descriptorToAppliance(d, where, fileBlob);
    const key = `${app.id}@${app.version}`;
    if (seen.has(key)) throw invalid(`${where}: ${key} is already described by another descriptor`);
    seen.add(key);
    const xml = serializeAppliance(app);
    const outName = `${app.id}-${app.version}.xml`;
    parseAppliance(xml, outName); // what we publish must be what we accept
    outputs.push([join(descDir, outName), xml]);
    const sha256 = createHash('sha256').update(xml).digest('hex');
    const href = `appliances/${outName}`;
    apps.push({ id: app.id, version: app.version, file: href, sha256 });
    const pub = typeof d.published === 'string' && !Number.isNaN(Date.parse(d.published)) ? new Date(d.published) : new Date(previous.get(sha256) ?? now.toISOString());
    items.push({ id: app.id, version: app.version, title: `${app.title} ${app.version}`, description: app.description, pubDate: pub.toISOString(), link: new URL(href, base).href, href, sha256, size: Buffer.byteLength(xml) });
  }
  const feed: Feed = {
    title: typeof chan?.title === 'string' ? chan.title : 'STORM channel',
    description: typeof chan?.description === 'string' ? chan.description : '',
    link: base.href,
    lastBuildDate: now.toISOString(),
    items,
  };
  const feedXml = Buffer.from(serializeFeed(feed));
  parseFeed(feedXml, FEED_FILE);
  const sig = opts.privateKeyPem ? signFeed(feedXml, opts.privateKeyPem) : undefined;
  // Appliance XMLs first, then the feed that points at them, then its signature.
  for (const [path, data] of outputs) await writeAtomic(path, data);
  await writeAtomic(join(dir, FEED_FILE), feedXml);
  if (sig) await writeAtomic(join(dir, FEED_FILE + SIGNATURE_SUFFIX), sig);
  return {
    dir,
    feed: join(dir, FEED_FILE),
    signed: Boolean(opts.privateKeyPem),
    appliances: apps,
    files: [...files.entries()].map(([path, h]) => ({ path, ...h })).sort((a, b) => a.path.localeCompare(b.path)),
  };
}

async function readJson(path: string, optional: boolean): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    if (optional) return undefined;
    throw invalid(`${path}: cannot read`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Json;
  } catch (e) {
    throw invalid(`${path}: not a JSON object: ${(e as Error).message}`);
  }
}

const KNOWN = new Set(['id', 'version', 'title', 'description', 'published', 'layers', 'disk', 'boot', 'memory', 'vcpus', 'parameters', 'services', 'volume']);

async function descriptorToAppliance(d: Json, where: string, fileBlob: (file: unknown, mirrors: unknown, where: string) => Promise<Blob>): Promise<Appliance> {
  for (const k of Object.keys(d)) if (!KNOWN.has(k)) throw invalid(`${where}: unknown key "${k}"`, { hint: `known keys: ${[...KNOWN].join(', ')}` });
  const s = (k: string, re?: RegExp, what?: string): string => {
    const v = d[k];
    if (typeof v !== 'string' || v === '' || (re && !re.test(v))) throw invalid(`${where}: "${k}" must be ${what ?? 'a non-empty string'}, got ${JSON.stringify(v)}`);
    return v;
  };
  const n = (k: string, dflt: number, min: number, max: number): number => {
    const v = d[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`${where}: "${k}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    return v;
  };
  const app: Appliance = {
    id: s('id', ID_RE, 'lower-case letters, digits, . _ -'),
    version: s('version', VERSION_RE, 'a version (letters, digits, . _ + ~ -)'),
    title: s('title'),
    description: typeof d.description === 'string' ? d.description : '',
    layers: [],
    boot: {},
    memoryMiB: n('memory', 256, 16, 1024 * 1024),
    vcpus: n('vcpus', 1, 1, 256),
    parameters: [],
    services: {},
  };
  if (d.layers !== undefined && d.disk !== undefined) throw invalid(`${where}: give either "layers" or "disk", not both`);
  if (Array.isArray(d.layers)) {
    for (const [i, l] of (d.layers as Json[]).entries()) {
      const w = `${where}: layers[${i}]`;
      if (!l || typeof l !== 'object') throw invalid(`${w}: expected an object`);
      if (!(LAYER_ROLES as readonly string[]).includes(l.role as string)) throw invalid(`${w}: "role" must be one of ${LAYER_ROLES.join(', ')}`);
      if (typeof l.name !== 'string' || !ID_RE.test(l.name)) throw invalid(`${w}: "name" must be lower-case letters, digits, . _ -`);
      if (typeof l.version !== 'string' || !VERSION_RE.test(l.version)) throw invalid(`${w}: "version" must be a version`);
      const fmt = (l.format as string | undefined) ?? 'raw';
      if (!(IMAGE_FORMATS as readonly string[]).includes(fmt)) throw invalid(`${w}: "format" must be raw or qcow2`);
      app.layers.push({ role: l.role as Layer['role'], name: l.name, version: l.version, format: fmt as Layer['format'], ...(await fileBlob(l.file, l.mirrors, w)) });
    }
  } else if (d.disk && typeof d.disk === 'object') {
    const disk = d.disk as Json;
    const fmt = (disk.format as string | undefined) ?? 'raw';
    if (!(IMAGE_FORMATS as readonly string[]).includes(fmt)) throw invalid(`${where}: disk "format" must be raw or qcow2`);
    app.disk = { format: fmt as 'raw' | 'qcow2', ...(await fileBlob(disk.file, disk.mirrors, `${where}: disk`)) };
  } else throw invalid(`${where}: expected "layers" (a list) or "disk" (an object)`);
  if (d.boot !== undefined) {
    const b = d.boot as Json;
    if (!b || typeof b !== 'object') throw invalid(`${where}: "boot" must be an object`);
    if (b.kernel !== undefined) app.boot.kernel = await fileBlob((b.kernel as Json)?.file, (b.kernel as Json)?.mirrors, `${where}: boot.kernel`);
    if (b.initrd !== undefined) app.boot.initrd = await fileBlob((b.initrd as Json)?.file, (b.initrd as Json)?.mirrors, `${where}: boot.initrd`);
    if (typeof b.cmdline === 'string') app.boot.cmdline = b.cmdline;
  }
  if (d.parameters !== undefined) {
    if (!Array.isArray(d.parameters)) throw invalid(`${where}: "parameters" must be a list`);
    for (const [i, p] of (d.parameters as Json[]).entries()) {
      const w = `${where}: parameters[${i}]`;
      if (!p || typeof p !== 'object' || typeof p.name !== 'string') throw invalid(`${w}: expected an object with "name"`);
      const type = (p.type as string | undefined) ?? 'string';
      if (!(PARAM_TYPES as readonly string[]).includes(type)) throw invalid(`${w}: "type" must be one of ${PARAM_TYPES.join(', ')}`);
      const par: Parameter = { name: p.name, type: type as Parameter['type'], required: p.required === true, description: typeof p.description === 'string' ? p.description : '' };
      if (Array.isArray(p.choices)) par.choices = p.choices.map(String);
      if (p.default !== undefined) {
        par.default = String(p.default);
        const problem = checkParam(par, par.default);
        if (problem) throw invalid(`${w}: "default" ${JSON.stringify(p.default)}: ${problem}`);
      }
      app.parameters.push(par);
    }
  }
  if (d.services !== undefined) {
    const sv = d.services as Json;
    if (!sv || typeof sv !== 'object') throw invalid(`${where}: "services" must be an object`);
    if (sv.dns) app.services.dns = { name: typeof sv.dns === 'string' ? sv.dns : app.id.replace(/[^a-z0-9-]/g, '-') };
    if (sv.mx) app.services.mx = { priority: typeof sv.mx === 'number' ? sv.mx : 10 };
    if (sv.ldap) app.services.ldap = true;
    if (sv.kerberos) app.services.kerberos = { principal: typeof sv.kerberos === 'string' ? sv.kerberos : 'host' };
  }
  if (d.volume !== undefined) {
    const v = d.volume as Json;
    if (!v || typeof v !== 'object' || typeof v.sizeMiB !== 'number' || typeof v.mount !== 'string' || (v.name !== undefined && (typeof v.name !== 'string' || !VOLUME_NAME_RE.test(v.name)))) {
      throw invalid(`${where}: "volume" must be {"sizeMiB": N, "mount": "/path", "name"?: "1-5 of A-Za-z0-9_-"}`);
    }
    app.volume = { sizeMiB: v.sizeMiB, mount: v.mount, ...(typeof v.name === 'string' ? { name: v.name } : {}) };
  }
  return app;
}

/** The files a channel folder serves, relative (for a quick listing). */
export function relPath(dir: string, p: string): string {
  return relative(dir, p).split(sep).join('/');
}
