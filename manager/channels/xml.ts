import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { invalid } from '../../lib/errors.ts';

/** Feeds and appliance documents are small; anything larger is refused before parsing. */
export const MAX_FEED_BYTES = 1024 * 1024;
export const MAX_APPLIANCE_BYTES = 256 * 1024;

/** A parsed element: attributes under `@name`, text under `#text`, children by tag name. */
export type XmlNode = { [k: string]: unknown };

/** Tags that may repeat, always parsed as arrays so one and many look the same. */
const ARRAYS = new Set(['item', 'layer', 'mirror', 'parameter', 'choice']);

/**
 * Parse untrusted XML, bounded: size limit first, then any DOCTYPE (the door to
 * entity expansion and external entities) is refused, then well-formedness is
 * checked with line and column. `file` names the document in every error.
 */
export function parseXml(text: string | Buffer, file: string, maxBytes: number): XmlNode {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (size > maxBytes) throw invalid(`${file}: document is ${size} bytes, more than the limit of ${maxBytes}`, { hint: 'this is not a STORM channel document, or it is hostile' });
  const s = typeof text === 'string' ? text : text.toString('utf8');
  if (/<!DOCTYPE/i.test(s) || /<!ENTITY/i.test(s)) {
    throw invalid(`${file}: a DOCTYPE or ENTITY declaration is not allowed (entity expansion and external entities are refused)`, { hint: 'remove the <!DOCTYPE ...> from the document' });
  }
  if (s.trim() === '') throw invalid(`${file}: empty document, expected XML`);
  const v = XMLValidator.validate(s, { allowBooleanAttributes: false });
  if (v !== true) {
    const open = /^Invalid '\[(.*)\]' found/s.exec(v.err.msg);
    const msg = open ? `unclosed elements ${open[1]!.replace(/[\s"]+/g, '').split(',').map((t) => `<${t}>`).join(', ')}` : v.err.msg;
    throw invalid(`${file}: malformed XML at line ${v.err.line}, column ${v.err.col}: ${msg}`);
  }
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
    htmlEntities: false,
    ignoreDeclaration: true,
    ignorePiTags: true,
    isArray: (name) => ARRAYS.has(name.replace(/^.*:/, '')),
  });
  try {
    return parser.parse(s) as XmlNode;
  } catch (e) {
    throw invalid(`${file}: malformed XML: ${(e as Error).message}`);
  }
}

/** Escape text for an XML element or attribute value. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/**
 * Reads typed values out of a parsed node, with errors that name the file,
 * the element path and what was expected.
 */
export class Reader {
  constructor(readonly file: string) {}

  fail(path: string, expected: string, got?: unknown): never {
    const g = got === undefined ? 'it is missing' : `got ${JSON.stringify(typeof got === 'string' ? got.slice(0, 80) : got)}`;
    throw invalid(`${this.file}: <${path}>: expected ${expected}, ${g}`);
  }

  node(parent: XmlNode, tag: string, path: string): XmlNode {
    const v = parent[tag];
    if (v === undefined) this.fail(`${path}/${tag}`, 'this element');
    if (Array.isArray(v)) this.fail(`${path}/${tag}`, 'exactly one such element', `${v.length} of them`);
    return typeof v === 'object' && v !== null ? (v as XmlNode) : { '#text': String(v) };
  }

  optNode(parent: XmlNode, tag: string, path: string): XmlNode | undefined {
    return parent[tag] === undefined ? undefined : this.node(parent, tag, path);
  }

  list(parent: XmlNode, tag: string): XmlNode[] {
    const v = parent[tag];
    if (v === undefined) return [];
    const arr = Array.isArray(v) ? v : [v];
    return arr.map((x) => (typeof x === 'object' && x !== null ? (x as XmlNode) : { '#text': String(x) }));
  }

  /** Text content of a child element. */
  text(parent: XmlNode, tag: string, path: string, opts: { optional?: boolean; max?: number } = {}): string {
    const v = parent[tag];
    if (v === undefined || v === '') {
      if (opts.optional) return '';
      this.fail(`${path}/${tag}`, 'a non-empty text element', v);
    }
    if (Array.isArray(v)) this.fail(`${path}/${tag}`, 'exactly one such element', `${v.length} of them`);
    const t = typeof v === 'object' && v !== null ? (v as XmlNode)['#text'] : v;
    if (typeof t === 'object' && t !== null) this.fail(`${path}/${tag}`, 'text, not child elements');
    const s = t === undefined ? '' : String(t);
    if (s === '' && !opts.optional) this.fail(`${path}/${tag}`, 'a non-empty text element', s);
    if (s.length > (opts.max ?? 64 * 1024)) this.fail(`${path}/${tag}`, `at most ${opts.max ?? 64 * 1024} characters`, `${s.length} characters`);
    return s;
  }

  attr(node: XmlNode, name: string, path: string, opts: { optional?: boolean; re?: RegExp; what?: string } = {}): string {
    const v = node[`@${name}`];
    if (v === undefined || v === '') {
      if (opts.optional) return '';
      this.fail(path, `attribute ${name}${opts.what ? ` (${opts.what})` : ''}`);
    }
    const s = String(v);
    if (opts.re && !opts.re.test(s)) this.fail(path, `attribute ${name} to be ${opts.what ?? opts.re.source}`, s);
    return s;
  }

  int(node: XmlNode, name: string, path: string, opts: { optional?: boolean; min?: number; max?: number } = {}): number | undefined {
    const s = this.attr(node, name, path, { optional: opts.optional ?? false, re: /^\d{1,16}$/, what: 'a non-negative integer' });
    if (s === '') return undefined;
    const n = Number(s);
    if (!Number.isSafeInteger(n) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
      this.fail(path, `attribute ${name} between ${opts.min ?? 0} and ${opts.max ?? Number.MAX_SAFE_INTEGER}`, s);
    }
    return n;
  }
}

export const SHA256_RE = /^[0-9a-f]{64}$/;
export const ID_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,62}$/;
