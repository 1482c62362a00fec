/**
 * The manager's content-addressed image store: STATE/images/sha256/<hex>,
 * written once, read-only, entered only after the digest verified. Partial
 * downloads live in STATE/images/partial/ and never count as stored.
 */
import { mkdirSync } from 'node:fs';
import { readdir, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { invalid } from '../../lib/errors.ts';

const HEX = /^[0-9a-f]{64}$/;

export interface StoredImage {
  sha256: string;
  size: number;
  storedAt: string;
}

export class ImageStore {
  readonly root: string;
  readonly blobs: string;
  readonly partials: string;

  constructor(root: string) {
    this.root = root;
    this.blobs = join(root, 'sha256');
    this.partials = join(root, 'partial');
    mkdirSync(this.blobs, { recursive: true, mode: 0o755 });
    mkdirSync(this.partials, { recursive: true, mode: 0o700 });
  }

  /** Where a verified image lives (whether or not it is there yet). */
  path(sha256: string): string {
    if (!HEX.test(sha256)) throw invalid(`not a sha256 digest: "${sha256}"`);
    return join(this.blobs, sha256);
  }

  partialPath(sha256: string): string {
    if (!HEX.test(sha256)) throw invalid(`not a sha256 digest: "${sha256}"`);
    return join(this.partials, `${sha256}.part`);
  }

  async get(sha256: string): Promise<StoredImage | undefined> {
    const st = await stat(this.path(sha256)).catch(() => undefined);
    return st?.isFile() ? { sha256, size: st.size, storedAt: st.mtime.toISOString() } : undefined;
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.get(sha256)) !== undefined;
  }

  async list(): Promise<StoredImage[]> {
    const out: StoredImage[] = [];
    for (const name of await readdir(this.blobs)) {
      if (!HEX.test(name)) continue;
      const img = await this.get(name);
      if (img) out.push(img);
    }
    return out.sort((a, b) => a.sha256.localeCompare(b.sha256));
  }

  /** Partial downloads and how far each got. */
  async listPartials(): Promise<{ sha256: string; bytes: number }[]> {
    const out: { sha256: string; bytes: number }[] = [];
    for (const name of await readdir(this.partials)) {
      const m = /^([0-9a-f]{64})\.part$/.exec(name);
      if (!m) continue;
      const st = await stat(join(this.partials, name)).catch(() => undefined);
      if (st) out.push({ sha256: m[1]!, bytes: st.size });
    }
    return out;
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.path(sha256), { force: true });
  }

  async removePartial(sha256: string): Promise<void> {
    await rm(this.partialPath(sha256), { force: true });
  }

  /** Bytes free for an unprivileged writer on the store's filesystem. */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.root);
    return s.bavail * s.bsize;
  }

  /** Bytes stored (verified images only). */
  async usage(): Promise<number> {
    return (await this.list()).reduce((n, i) => n + i.size, 0);
  }
}
