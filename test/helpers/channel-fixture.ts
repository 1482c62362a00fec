import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';

/** Deterministic non-zero bytes (xorshift), so layers differ and compress badly. */
export function prng(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (i + 4 <= size) b.writeUInt32LE(x, i);
    else for (let j = i; j < size; j++) b[j] = (x >>> ((j - i) * 8)) & 0xff;
  }
  return b;
}

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface TestChannel {
  dir: string;
  files: Record<string, Buffer>;
}

/**
 * A small channel folder: two layered appliances (web, mail) sharing one
 * substrate, plus one traditional appliance (legacy) with a single disk.
 */
export function makeTestChannel(dir: string, opts: { substrateSize?: number; mirrors?: string[] } = {}): TestChannel {
  const files: Record<string, Buffer> = {
    'layers/jeos-1.0.img': prng(opts.substrateSize ?? 300_000, 1),
    'layers/web-1.0.img': prng(70_000, 2),
    'layers/mail-2.1.img': prng(50_000, 3),
    'boot/vmlinuz': prng(20_000, 4),
    'boot/initrd.img': prng(10_000, 5),
    'disks/legacy-0.9.qcow2': prng(120_000, 6),
  };
  for (const [p, b] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), b);
  }
  mkdirSync(join(dir, 'appliances'), { recursive: true });
  writeFileSync(join(dir, 'channel.json'), JSON.stringify({ title: 'Test channel', description: 'tiny layers for tests' }));
  const boot = { kernel: { file: 'boot/vmlinuz' }, initrd: { file: 'boot/initrd.img' }, cmdline: 'console=ttyS0' };
  const substrate = { role: 'substrate', name: 'jeos', version: '1.0', file: 'layers/jeos-1.0.img', ...(opts.mirrors ? { mirrors: opts.mirrors } : {}) };
  writeFileSync(
    join(dir, 'appliances', 'web.json'),
    JSON.stringify({
      id: 'web', version: '1.0', title: 'Web server', description: 'nginx & friends <static>',
      layers: [substrate, { role: 'appliance', name: 'web', version: '1.0', file: 'layers/web-1.0.img' }],
      boot, memory: 256, vcpus: 1,
      parameters: [{ name: 'site-title', type: 'string', default: 'Hello' }, { name: 'workers', type: 'int', default: 2 }, { name: 'tls', type: 'enum', choices: ['off', 'on'], default: 'off' }],
      services: { dns: 'www', ldap: true, kerberos: 'host' },
    }),
  );
  writeFileSync(
    join(dir, 'appliances', 'mail.json'),
    JSON.stringify({
      id: 'mail', version: '2.1', title: 'Mail server',
      layers: [substrate, { role: 'appliance', name: 'mail', version: '2.1', file: 'layers/mail-2.1.img' }],
      boot, memory: 512, vcpus: 2,
      parameters: [{ name: 'postmaster', type: 'email', required: true }],
      services: { dns: 'mail', mx: 10, ldap: true, kerberos: 'host' },
      volume: { sizeMiB: 1024, mount: '/var/mail' },
    }),
  );
  writeFileSync(
    join(dir, 'appliances', 'legacy.json'),
    JSON.stringify({ id: 'legacy', version: '0.9', title: 'Legacy box', disk: { file: 'disks/legacy-0.9.qcow2', format: 'qcow2' }, memory: 128 }),
  );
  return { dir, files };
}
