// DNS queries/s with dnsperf (-c 4, loopback) against our server (the manager,
// in a child process) and against dnsmasq serving the same records, in the same run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';
import { silentLogger } from '../lib/logger.ts';
import { Store } from '../manager/store/store.ts';
import { DnsService } from '../manager/netsvc/dns/service.ts';
import { startProcess, type Running } from '../test/helpers/child.ts';
import { freeTcpUdpPort, freePort } from '../test/helpers/ports.ts';
import { STORM_BIN } from '../test/helpers/storm.ts';
import { median, result, type BenchResult } from './result.ts';

const HOSTS = 200;
const SECONDS = 5;
const ROUNDS = 3;

async function dnsperf(port: number, file: string): Promise<number> {
  const r = await run('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-c', '4', '-l', String(SECONDS), '-q', '200'], { timeoutMs: (SECONDS + 30) * 1000 });
  const m = /Queries per second:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`dnsperf gave no figure (exit ${r.code}): ${r.stderr || r.stdout}`);
  const lost = /Queries lost:\s+(\d+)/.exec(r.stdout);
  if (lost && Number(lost[1]) > 0) console.error(`dnsperf: ${lost[1]} queries lost against port ${port}`);
  return Number(m[1]);
}

export default async function bench(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'storm-bench-dns-'));
  const procs: Running[] = [];
  try {
    const hosts = Array.from({ length: HOSTS }, (_, i) => ({ name: `h${i}`, ip: `10.77.${1 + (i >> 8)}.${1 + (i & 0xff)}` }));
    // The same data for both: our store (written before the manager starts) and dnsmasq's --host-record.
    const store = await Store.open(join(dir, 'state', 'db'));
    const svc = new DnsService({ store, log: silentLogger, domain: 'storm.internal', managerAddress: '10.77.0.1', reverseZones: ['77.10.in-addr.arpa'], ttl: 60 });
    await svc.start();
    for (const h of hosts) await svc.setHost(h.name, h.ip);
    await svc.stop();
    await store.close();

    const queries = join(dir, 'queries.txt');
    writeFileSync(queries, [...hosts.map((h) => `${h.name}.storm.internal A`), 'storm.local A', ...hosts.slice(0, 50).map((h) => `${h.ip.split('.').reverse().join('.')}.in-addr.arpa PTR`)].join('\n') + '\n');

    const ours = await freeTcpUdpPort();
    const env = { ...process.env, STORM_STATE: join(dir, 'state'), STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}`, STORM_DNS_LISTEN: `127.0.0.1:${ours}`, STORM_MANAGER_ADDRESS: '10.77.0.1', STORM_LOG_LEVEL: 'warn' };
    procs.push(await startProcess(undefined, process.execPath, [STORM_BIN, 'manager', 'start', '--state', join(dir, 'state')], { ready: /storm manager ready/, env }));

    const theirs = await freeTcpUdpPort();
    const records = [`--host-record=storm.local,10.77.0.1`, ...hosts.map((h) => `--host-record=${h.name}.storm.internal,${h.ip}`)];
    procs.push(await startProcess(undefined, 'dnsmasq', ['--no-daemon', '-C', '/dev/null', `--port=${theirs}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root', '--local=/storm.internal/', '--local=/77.10.in-addr.arpa/', ...records], { ready: /started, version/ }));

    // Warm both, then alternate rounds so neither gets a quieter machine.
    await run('dnsperf', ['-s', '127.0.0.1', '-p', String(ours), '-d', queries, '-c', '1', '-n', '1']);
    await run('dnsperf', ['-s', '127.0.0.1', '-p', String(theirs), '-d', queries, '-c', '1', '-n', '1']);
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      b.push(await dnsperf(theirs, queries));
      a.push(await dnsperf(ours, queries));
    }
    return [
      result({ name: 'dns queries/s (dnsperf -c 4, udp, loopback)', value: median(a), unit: 'q/s', peer: 'dnsmasq', peerValue: median(b), bar: '>= 0.5 (goal > 1)', pass: (ratio) => ratio !== null && ratio >= 0.5 }),
    ];
  } finally {
    for (const p of procs) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
