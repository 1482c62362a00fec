/**
 * authorized_keys for the manager's SSH server: OpenSSH's line format
 * (`[options] type base64 [comment]`) with STORM's own options:
 *
 *   storm-readonly   the session may read everything and change nothing
 *   no-pty           no console (exec only)
 *
 * A line with any other option is skipped (with a warning): an option we do
 * not enforce, such as `from=`, must not silently grant more than intended.
 */
import { timingSafeEqual } from 'node:crypto';

export interface AuthorizedKey {
  /** Key type from the line, e.g. ssh-ed25519. */
  type: string;
  /** The public key blob (SSH wire format). */
  blob: Buffer;
  comment: string;
  readOnly: boolean;
  noPty: boolean;
  line: number;
}

export interface ParsedKeys {
  keys: AuthorizedKey[];
  /** Lines skipped, with why (logged by the server). */
  warnings: string[];
}

/** Bounds: a hostile or corrupted file cannot make the server allocate without limit. */
export const MAX_FILE_BYTES = 1 << 20;
const MAX_LINE = 16 * 1024;
const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;
const KNOWN_OPTIONS = new Set(['storm-readonly', 'no-pty']);

/** Split the options field on commas outside double quotes. */
function splitOptions(s: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && quoted && i + 1 < s.length) {
      cur += c + s[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) return undefined;
  out.push(cur);
  return out;
}

/** Read the options token at the start of a line (it may hold quoted spaces). */
function takeOptions(line: string): { options: string; rest: string } | undefined {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && quoted) {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if ((c === ' ' || c === '\t') && !quoted) return { options: line.slice(0, i), rest: line.slice(i).trimStart() };
  }
  return undefined;
}

export function parseAuthorizedKeys(text: string): ParsedKeys {
  const keys: AuthorizedKey[] = [];
  const warnings: string[] = [];
  if (text.length > MAX_FILE_BYTES) {
    warnings.push(`authorized_keys is larger than ${MAX_FILE_BYTES} bytes: only the first ${MAX_FILE_BYTES} are read`);
    text = text.slice(0, MAX_FILE_BYTES);
  }
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n]!.replace(/\r$/, '').trim();
    if (!raw || raw.startsWith('#')) continue;
    const where = `authorized_keys line ${n + 1}`;
    if (raw.length > MAX_LINE) {
      warnings.push(`${where}: longer than ${MAX_LINE} characters, skipped`);
      continue;
    }
    let options: string[] = [];
    let rest = raw;
    const first = raw.split(/\s+/, 1)[0]!;
    if (!KEY_TYPES.test(first)) {
      const t = takeOptions(raw);
      const opts = t && splitOptions(t.options);
      if (!t || !opts) {
        warnings.push(`${where}: not a key (unknown key type or unterminated quote), skipped`);
        continue;
      }
      options = opts.map((o) => o.trim()).filter(Boolean);
      rest = t.rest;
    }
    const [type, b64, ...comment] = rest.split(/\s+/);
    if (!type || !KEY_TYPES.test(type) || !b64) {
      warnings.push(`${where}: expected "[options] TYPE BASE64 [comment]", skipped`);
      continue;
    }
    const unknown = options.filter((o) => !KNOWN_OPTIONS.has(o.toLowerCase()));
    if (unknown.length) {
      warnings.push(`${where}: option ${unknown.map((o) => `"${o.slice(0, 40)}"`).join(', ')} is not supported by STORM's SSH server (supported: storm-readonly, no-pty), key skipped`);
      continue;
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      warnings.push(`${where}: key data is not base64, skipped`);
      continue;
    }
    const blob = Buffer.from(b64, 'base64');
    // The blob starts with its own type as an SSH string; a mismatch is a corrupted line.
    const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
    if (len < 0 || len > blob.length - 4 || blob.subarray(4, 4 + len).toString('latin1') !== type) {
      warnings.push(`${where}: key data does not match its type ${type}, skipped`);
      continue;
    }
    const lower = options.map((o) => o.toLowerCase());
    keys.push({ type, blob, comment: comment.join(' '), readOnly: lower.includes('storm-readonly'), noPty: lower.includes('no-pty'), line: n + 1 });
  }
  return { keys, warnings };
}

/** The entry whose public key blob equals the one the client offered. */
export function findKey(keys: readonly AuthorizedKey[], blob: Buffer): AuthorizedKey | undefined {
  return keys.find((k) => k.blob.length === blob.length && timingSafeEqual(k.blob, blob));
}
