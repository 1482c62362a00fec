/**
 * Can libvirt's QEMU user reach a file? libvirt runs QEMU as `libvirt-qemu`:
 * every directory on the path needs search (x) permission for that user, and
 * files libvirt does not relabel (our shared read-only layers) need read
 * permission. We check before define, so the admin gets one clear error
 * naming the directory instead of a QEMU failure at start (DESIGN §6).
 */
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { invalid, notFound } from '../../../lib/errors.ts';
import { run } from '../../../lib/exec.ts';

export interface QemuUser {
  uid: number;
  gids: number[];
  name: string;
}

/** Look up the QEMU user (default libvirt-qemu); undefined when it does not exist. */
export async function lookupQemuUser(name = 'libvirt-qemu'): Promise<QemuUser | undefined> {
  const [u, g] = await Promise.all([run('id', ['-u', name]), run('id', ['-G', name])]);
  if (u.code !== 0 || g.code !== 0) return undefined;
  return { name, uid: Number(u.stdout.trim()), gids: g.stdout.trim().split(/\s+/).map(Number) };
}

function allows(st: { uid: number; gid: number; mode: number }, user: QemuUser, bit: 1 | 4): boolean {
  if (user.uid === 0) return true;
  if (st.uid === user.uid) return (st.mode & (bit << 6)) !== 0;
  if (user.gids.includes(st.gid)) return (st.mode & (bit << 3)) !== 0;
  return (st.mode & bit) !== 0;
}

/**
 * Throw `not_found` if `path` is missing, `invalid` if `user` cannot search a
 * directory on its path (or, with `read`, cannot read the file itself).
 * `searchable` holds directories already found searchable (with all above
 * them): several files under one tree are checked without walking it again.
 */
export async function checkReachable(field: string, path: string, user: QemuUser, opts: { read?: boolean; mustExist?: boolean; searchable?: Set<string> } = {}): Promise<void> {
  if (opts.mustExist !== false) {
    try {
      await stat(path);
    } catch {
      throw notFound(`${field} ${path} does not exist on this hypervisor`, { hint: 'fetch the layer first (layers ensure) or fix the path' });
    }
  }
  const walked: string[] = [];
  let dir = dirname(path);
  for (;;) {
    if (opts.searchable?.has(dir)) break;
    walked.push(dir);
    const st = await stat(dir);
    if (!allows(st, user, 1)) {
      throw invalid(`${user.name} cannot search ${dir} (mode ${(st.mode & 0o7777).toString(8)}), so QEMU cannot open ${field} ${path}`, {
        hint: `chmod o+x ${dir}, or keep stormd's state under a path every user can traverse (docs/hypervisor.md)`,
        details: { field, path, dir },
      });
    }
    if (dir === '/') break;
    dir = dirname(dir);
  }
  for (const d of walked) opts.searchable?.add(d);
  if (opts.read) {
    const st = await stat(path);
    if (!allows(st, user, 4)) {
      throw invalid(`${user.name} cannot read ${field} ${path} (mode ${(st.mode & 0o7777).toString(8)})`, { hint: `chmod a+r ${path}: shared read-only layers are not relabelled by libvirt`, details: { field, path } });
    }
  }
}
