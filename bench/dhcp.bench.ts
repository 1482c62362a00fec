// DHCP DORA exchanges/s with perfdhcp against our server (the manager, in a child
// process) and against dnsmasq's DHCP (--no-ping), in the same run. Client and
// server sit in two network namespaces joined by a veth pair; the client side has
// an address because perfdhcp talks to a unicast server as a relay (DESIGN.md §6).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';
import { startProcess, type Running } from '../test/helpers/child.ts';
import { createNetnsPair } from '../test/helpers/netns-pair.ts';
import { STORM_BIN } from '../test/helpers/storm.ts';
import { result, type BenchResult } from './result.ts';

const SECONDS = 8;

async function perfdhcp(ns: string, dev: string): Promise<number> {
  // -R: many distinct clients so each exchange is a new lease; -r: offered rate (well above both servers).
  const r = await run('ip', ['netns', 'exec', ns, 'perfdhcp', '-4', '-l', dev, '-r', '8000', '-R', '1000000', '-p', String(SECONDS), '-W', '1000000', '10.78.0.1'], { timeoutMs: (SECONDS + 30) * 1000 });
  const m = /^Rate:\s+([\d.]+)\s+4-way exchanges\/second/m.exec(r.stdout);
  if (!m) throw new Error(`perfdhcp gave no rate (exit ${r.code}): ${(r.stdout + r.stderr).slice(-800)}`);
  return Number(m[1]);
}

export default async function bench(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'storm-bench-dhcp-'));
  const { a: srv, b: cli, cleanup } = createNetnsPair(undefined, { prefix: 'ns', addressA: '10.78.0.1/16', addressB: '10.78.0.2/16' });
  let p: Running | undefined;
  try {
    const state = join(dir, 'state');
    const env = {
      ...process.env,
      STORM_STATE: state,
      STORM_DHCP_INTERFACE: srv.dev,
      STORM_DHCP_SUBNET: '10.78.0.0/16',
      STORM_DHCP_POOL: '10.78.1.1-10.78.254.254',
      STORM_LOG_LEVEL: 'warn',
    };
    p = await startProcess(undefined, 'ip', ['netns', 'exec', srv.name, process.execPath, STORM_BIN, 'manager', 'start', '--state', state], { ready: /storm manager ready/, env });
    const ours = await perfdhcp(cli.name, cli.dev);
    await p.stop();

    p = await startProcess(undefined, 'ip', [
      'netns', 'exec', srv.name, 'dnsmasq', '--no-daemon', '-C', '/dev/null', '--port=0', `--interface=${srv.dev}`, '--bind-interfaces', '--pid-file=', '--user=root',
      '--dhcp-range=10.78.1.1,10.78.254.254,255.255.0.0,1h', '--no-ping', '--dhcp-authoritative', `--dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`, '--quiet-dhcp',
    ], { ready: /DHCP, IP range/ });
    const theirs = await perfdhcp(cli.name, cli.dev);
    return [
      result({ name: 'dhcp DORA exchanges/s (perfdhcp, netns veth)', value: ours, unit: 'exchanges/s', peer: 'dnsmasq --no-ping', peerValue: theirs, bar: '>= 0.5 (goal > 1)', pass: (ratio) => ratio !== null && ratio >= 0.5 }),
    ];
  } finally {
    await p?.stop();
    cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
