/**
 * The manager's content-addressed image store: STATE/images/sha256/<hex>,
 * written once, read-only, entered only after the digest verified. Partial
 * downloads live in STATE/images/partial/ and never count as stored.
 *
 * Entering is durable without waiting for the disk: a marker in
 * STATE/images/unsynced/ is flushed before the rename, the image's own flush
 * runs in the background and then drops the marker, and `recover` (at start)
 * verifies again every image still marked. So a verified image is usable at
 * once, and after a crash no unflushed (unverified) byte stays under a digest.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { chmod, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { invalid } from '../../lib/errors.ts';
import { fsyncPath } from '../../lib/fsync.ts';

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
  readonly unsynced: string;
  readonly #flushing = new Map<string, Promise<void>>();

  constructor(root: string) {
    this.root = root;
    this.blobs = join(root, 'sha256');
    this.partials = join(root, 'partial');
    this.unsynced = join(root, 'unsynced');
    mkdirSync(this.blobs, { recursive: true, mode: 0o755 });
    mkdirSync(this.partials, { recursive: true, mode: 0o700 });
    mkdirSync(this.unsynced, { recursive: true, mode: 0o700 });
  }

  /**
   * Make a verified partial download the stored image: marker (flushed), then
   * the read-only file renamed in; its flush follows in the background.
   */
  async enter(sha256: string): Promise<string> {
    const final = this.path(sha256);
    await (await open(join(this.unsynced, sha256), 'w')).close();
    await fsyncPath(this.unsynced);
    const part = this.partialPath(sha256);
    await chmod(part, 0o444);
    await rename(part, final);
    const p = this.#flush(sha256).finally(() => this.#flushing.delete(sha256));
    this.#flushing.set(sha256, p);
    return final;
  }

  /** Flush an entered image and its directory, then drop its marker; a failure keeps the marker (recover decides). */
  async #flush(sha256: string): Promise<void> {
    try {
      await fsyncPath(this.path(sha256), true);
      await fsyncPath(this.blobs);
    } catch (e) {
      // Removed meanwhile (gc): nothing left to make durable.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return;
    }
    await rm(join(this.unsynced, sha256), { force: true });
  }

  /** Resolves when every image entered so far is on disk (shutdown, benches, tests). */
  async flushed(): Promise<void> {
    await Promise.all([...this.#flushing.values()]);
  }

  /**
   * After a crash: every image entered but not known to be flushed is hashed
   * again; a match is flushed and kept, anything else removed. Run before the
   * store is used.
   */
  async recover(): Promise<{ kept: string[]; removed: string[] }> {
    const out = { kept: [] as string[], removed: [] as string[] };
    for (const name of await readdir(this.unsynced)) {
      if (HEX.test(name) && !this.#flushing.has(name)) {
        const file = this.path(name);
        const digest = await sha256File(file).catch(() => undefined);
        if (digest === name) {
          await fsyncPath(file, true);
          await fsyncPath(this.blobs);
          out.kept.push(name);
        } else {
          const existed = await stat(file).then(() => true, () => false);
          await rm(file, { force: true });
          if (existed) out.removed.push(name);
        }
      }
      if (!this.#flushing.has(name)) await rm(join(this.unsynced, name), { force: true });
    }
    return out;
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

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), h);
  return h.digest('hex');
}
