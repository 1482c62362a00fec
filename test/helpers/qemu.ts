import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { PACKAGE_ROOT } from '../../lib/paths.ts';

/** One disk on the guest's virtio-scsi bus: SCSI target `scsiId` (0 → sda, 1 → sdb, ...). */
export interface GuestDisk {
  path: string;
  readonly?: boolean;
  scsiId: number;
}

export interface GuestOptions {
  kernel: string;
  initrd: string;
  disks: GuestDisk[];
  /** Extra kernel command line (after console=ttyS0). */
  append?: string;
  memMiB?: number;
  /** Forward 127.0.0.1:port on the host to the guest's port 80 (QEMU user networking, restrict=on). */
  httpPort?: number;
}

export interface Guest {
  proc: ChildProcess;
  /** Everything the serial console printed so far. */
  output: () => string;
  /** Resolves with the console text once `re` matches it (rejects when QEMU exits first). */
  waitFor: (re: RegExp) => Promise<string>;
  /** Send text to the guest's console (its stdin). */
  send: (s: string) => void;
  /** Resolves with the whole console text when QEMU exits. */
  exited: Promise<string>;
  kill: () => void;
}

/** The fixture manifest written by scripts/build-fixtures. */
export interface FixtureManifest {
  layers: { role: string; name: string; version: string; path: string; sha256: string; size: number }[];
  appliances: { id: string; traditional?: boolean; disk?: { path: string }; layers?: Record<string, string> }[];
  boot: { kernel: { path: string }; initrd: { path: string } };
}

export const FIXTURES = join(PACKAGE_ROOT, 'fixtures', 'build');

/** Build the fixtures (layers, boot files, the signed example channel) unless they are up to date. */
export function buildFixtures(): void {
  const r = spawnSync('sh', [join(PACKAGE_ROOT, 'scripts', 'build-fixtures')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

export function fixtureManifest(): FixtureManifest {
  return JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as FixtureManifest;
}

/** The built image of a fixture layer, by role and name. */
export function fixtureLayer(m: FixtureManifest, role: string, name: string): string {
  const l = m.layers.find((x) => x.role === role && x.name === name);
  if (!l) throw new Error(`fixture layer ${role} ${name} missing: run sh scripts/build-fixtures`);
  return join(FIXTURES, l.path);
}

/** Boot a guest with QEMU TCG straight from -kernel/-initrd; the console is its stdio. Killed in t.after. */
export function bootGuest(t: TestContext | undefined, o: GuestOptions): Guest {
  const args = ['-accel', 'tcg', '-m', String(o.memMiB ?? 192), '-smp', '1', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio', '-monitor', 'none'];
  args.push('-kernel', o.kernel, '-initrd', o.initrd, '-append', `console=ttyS0 panic=-1 ${o.append ?? ''}`.trim());
  args.push('-device', 'virtio-scsi-pci,id=scsi0');
  o.disks.forEach((d, i) => {
    args.push('-drive', `file=${d.path},if=none,id=d${i},format=raw${d.readonly ? ',readonly=on' : ''},cache=unsafe`);
    args.push('-device', `scsi-hd,drive=d${i},bus=scsi0.0,channel=0,scsi-id=${d.scsiId},lun=0`);
  });
  if (o.httpPort) args.push('-nic', `user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:${o.httpPort}-:80`);
  else args.push('-nic', 'none');
  const proc = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let done = false;
  const waiters: { re: RegExp; resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.re.test(out)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(out);
      }
    }
  };
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString('utf8').replace(/\r/g, '');
    check();
  });
  proc.stderr!.on('data', (d: Buffer) => (out += `[qemu stderr] ${d.toString('utf8')}`));
  const exited = new Promise<string>((resolve) => {
    proc.on('exit', () => {
      done = true;
      for (const w of waiters.splice(0)) w.reject(new Error(`guest exited before ${w.re}; console:\n${out.slice(-3000)}`));
      resolve(out);
    });
  });
  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  t?.after(kill);
  return {
    proc,
    output: () => out,
    waitFor: (re) =>
      re.test(out) ? Promise.resolve(out) : done ? Promise.reject(new Error(`guest exited before ${re}; console:\n${out.slice(-3000)}`)) : new Promise((resolve, reject) => waiters.push({ re, resolve, reject })),
    send: (s) => proc.stdin!.write(s),
    exited,
    kill,
  };
}

/** Console lines that start with a marker, e.g. "STORM-INIT: error:". */
export function linesWith(text: string, marker: string): string[] {
  return text.split('\n').filter((l) => l.includes(marker)).map((l) => l.slice(l.indexOf(marker)));
}
