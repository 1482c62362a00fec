import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';

export interface NsEnd {
  /** Namespace name. */
  name: string;
  /** The veth end inside it. */
  dev: string;
  /** Run a command inside the namespace (synchronously: not for talking to servers in this process). */
  exec: (cmd: string, args: string[]) => string;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/**
 * Two network namespaces joined by one veth pair: nothing touches the root
 * namespace (DESIGN.md §7). `a` gets `addressA` (CIDR) when given, `b` gets
 * `addressB`; `macB` fixes b's MAC (DHCP reservations). Removed after the test.
 */
export function createNetnsPair(t: TestContext | undefined, opts: { prefix: string; addressA?: string; addressB?: string; macB?: string }): { a: NsEnd; b: NsEnd; cleanup: () => void } {
  const id = randomBytes(3).toString('hex');
  const p = opts.prefix;
  const na = `${p}-a-${id}`;
  const nb = `${p}-b-${id}`;
  const da = `${p}a${id}`;
  const db = `${p}b${id}`;
  const cleanup = () => {
    for (const n of [na, nb]) {
      try {
        ip('netns', 'del', n);
      } catch {
        /* already gone */
      }
    }
  };
  t?.after(cleanup);
  try {
    ip('netns', 'add', na);
    ip('netns', 'add', nb);
    ip('link', 'add', da, 'netns', na, 'type', 'veth', 'peer', 'name', db, 'netns', nb);
    for (const [n, d, addr] of [[na, da, opts.addressA], [nb, db, opts.addressB]] as const) {
      ip('-n', n, 'link', 'set', 'lo', 'up');
      if (d === db && opts.macB) ip('-n', n, 'link', 'set', d, 'address', opts.macB);
      if (addr) ip('-n', n, 'addr', 'add', addr, 'dev', d);
      ip('-n', n, 'link', 'set', d, 'up');
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  const end = (name: string, dev: string): NsEnd => ({ name, dev, exec: (cmd, args) => execFileSync('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString() });
  return { a: end(na, da), b: end(nb, db), cleanup };
}
