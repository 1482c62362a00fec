import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { TestContext } from 'node:test';

export interface Netns {
  name: string;
  /** The veth end inside the namespace. */
  inner: string;
  /** The veth end in the root namespace (enslaved to `bridge` when one was asked for). */
  outer: string;
  bridge?: string;
  /** Run a command inside the namespace. */
  exec: (cmd: string, args: string[]) => string;
}

function noIpv6(dev: string): void {
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
  } catch {
    /* IPv6 off in this kernel */
  }
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** A bridge in the root namespace with `ports` on it, and no address: IPv6 goes off before it is up (DESIGN.md §7). */
export function addBridge(name: string, ports: readonly string[] = []): void {
  ip('link', 'add', name, 'type', 'bridge');
  noIpv6(name);
  for (const p of ports) ip('link', 'set', p, 'master', name);
  ip('link', 'set', name, 'up');
}

/**
 * A network namespace with a veth pair: `address` (CIDR) goes on the inner end;
 * the outer end gets no address and, with `bridge: true`, joins a new bridge that
 * has no address either (a plain L2 switch; DESIGN.md §7). Removed after the test.
 */
export function createNetns(t: TestContext | undefined, opts: { address?: string; bridge?: boolean; prefix?: string } = {}): Netns {
  const id = randomBytes(3).toString('hex');
  const p = opts.prefix ?? 'st';
  const name = `${p}-ns-${id}`;
  const inner = `${p}i${id}`;
  const outer = `${p}o${id}`;
  const bridge = opts.bridge ? `${p}br${id}` : undefined;
  const cleanup = () => {
    for (const args of [['netns', 'del', name], ['link', 'del', outer], ...(bridge ? [['link', 'del', bridge]] : [])]) {
      try {
        ip(...args);
      } catch {
        /* already gone */
      }
    }
  };
  t?.after(cleanup);
  try {
    ip('netns', 'add', name);
    ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner);
    ip('link', 'set', inner, 'netns', name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    if (opts.address) ip('-n', name, 'addr', 'add', opts.address, 'dev', inner);
    ip('-n', name, 'link', 'set', inner, 'up');
    // The root namespace gets no address on a guest network, not even an IPv6 link-local one (DESIGN.md §7).
    noIpv6(outer);
    if (bridge) addBridge(bridge, [outer]);
    ip('link', 'set', outer, 'up');
  } catch (e) {
    cleanup();
    throw e;
  }
  return {
    name,
    inner,
    outer,
    ...(bridge ? { bridge } : {}),
    exec: (cmd, args) => execFileSync('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString(),
  };
}
