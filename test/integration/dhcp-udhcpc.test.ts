import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startProcess, type Running } from '../helpers/child.ts';
import { createNetnsPair } from '../helpers/netns-pair.ts';
import { storm, STORM_BIN } from '../helpers/storm.ts';
import type { TestContext } from 'node:test';

const MAC = '52:54:00:77:00:42';

/** A udhcpc script that logs each event's variables and configures the address (renewal is unicast from it). */
function writeScript(dir: string): { script: string; log: string } {
  const log = join(dir, 'udhcpc.log');
  const script = join(dir, 'udhcpc.sh');
  writeFileSync(
    script,
    `#!/bin/sh
echo "$1 ip=$ip mask=$mask subnet=$subnet router=$router dns=$dns domain=$domain lease=$lease serverid=$serverid hostname=$hostname" >> ${log}
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
`,
  );
  chmodSync(script, 0o755);
  return { script, log };
}

async function waitForLine(log: string, re: RegExp, from = 0): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(from) : [];
    const hit = lines.find((l) => re.test(l));
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`udhcpc never logged ${re}; log:\n${existsSync(log) ? readFileSync(log, 'utf8') : '(none)'}`);
}
const lineCount = (log: string) => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').length - 1 : 0);

test('udhcpc in a namespace: lease, renew, release; a reserved MAC gets its address; leases survive a restart', async (t: TestContext) => {
  const dir = tempDir(t);
  const state = join(dir, 'state');
  const { a: srv, b: cli } = createNetnsPair(t, { prefix: 'ns', addressA: '10.77.0.1/16', macB: MAC });
  const env = {
    ...process.env,
    STORM_STATE: state,
    STORM_DHCP_INTERFACE: srv.dev,
    STORM_DNS_LISTEN: '10.77.0.1:53',
    STORM_DHCP_POOL: '10.77.128.1-10.77.128.20',
    STORM_DHCP_LEASE_TIME: '600',
    STORM_LOG_LEVEL: 'debug',
  };
  const startManager = () =>
    startProcess(t, 'ip', ['netns', 'exec', srv.name, process.execPath, STORM_BIN, 'manager', 'start', '--state', state], { ready: /storm manager ready/, env });
  let manager = await startManager();
  const { script, log } = writeScript(dir);
  const udhcpc = (): Promise<Running> =>
    startProcess(t, 'ip', ['netns', 'exec', cli.name, 'udhcpc', '-f', '-i', cli.dev, '-s', script, '-t', '10', '-T', '1', '-A', '1', '-x', 'hostname:guest1']);

  // 1. A dynamic lease from the pool, with every option.
  let client = await udhcpc();
  const bound = await waitForLine(log, /^bound /);
  assert.match(bound, /ip=10\.77\.128\.\d+ mask=16 subnet=255\.255\.0\.0 router=10\.77\.0\.1 dns=10\.77\.0\.1 domain=storm\.internal lease=600 serverid=10\.77\.0\.1/);
  const ip = /ip=(\S+)/.exec(bound)![1]!;
  let leases = JSON.parse(storm(['dhcp', 'lease', 'list', '-o', 'json'], { env }).stdout);
  assert.deepEqual(leases.map((l: { ip: string; mac: string; state: string; hostname: string }) => [l.ip, l.mac, l.state, l.hostname]), [[ip, MAC, 'bound', 'guest1']]);

  // The guest resolves storm.local through STORM's DNS at the address DHCP gave it.
  const dig = await run('ip', ['netns', 'exec', cli.name, 'dig', '@10.77.0.1', '+short', '+time=2', '+tries=2', 'storm.local']);
  assert.equal(dig.stdout.trim(), '10.77.0.1', dig.stderr);

  // 2. Renew (SIGUSR1: unicast REQUEST from the leased address).
  const before = leases[0].expires;
  let mark = lineCount(log);
  client.child.kill('SIGUSR1');
  assert.match(await waitForLine(log, /^renew /, mark), new RegExp(`ip=${ip.replace(/\./g, '\\.')} `));
  leases = JSON.parse(storm(['dhcp', 'lease', 'list', '-o', 'json'], { env }).stdout);
  assert.ok(leases[0].expires >= before, 'renewal extends the lease');

  // 3. Release (SIGUSR2).
  mark = lineCount(log);
  client.child.kill('SIGUSR2');
  await waitForLine(log, /^deconfig /, mark);
  for (let i = 0; i < 50 && JSON.parse(storm(['dhcp', 'lease', 'list', '-o', 'json'], { env }).stdout)[0].state !== 'released'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(JSON.parse(storm(['dhcp', 'lease', 'list', '-o', 'json'], { env }).stdout)[0].state, 'released');
  await client.stop('SIGKILL');

  // 4. A reservation wins over the old dynamic address, every time.
  const res = storm(['dhcp', 'reservation', 'add', MAC, '10.77.1.50', '--hostname', 'web1'], { env });
  assert.equal(res.code, 0, res.stderr);
  for (let round = 0; round < 2; round++) {
    mark = lineCount(log);
    client = await udhcpc();
    const b = await waitForLine(log, /^bound /, mark);
    assert.match(b, /ip=10\.77\.1\.50 .*hostname=web1/, `round ${round}`);
    await client.stop('SIGKILL');
  }

  // 5. Restart the server: the lease is still there, and the client's renewal is ACKed (not NAKed).
  mark = lineCount(log);
  client = await udhcpc();
  await waitForLine(log, /^bound ip=10\.77\.1\.50/, mark);
  assert.equal(await manager.stop(), 0);
  manager = await startManager();
  leases = JSON.parse(storm(['dhcp', 'lease', 'list', '-o', 'json'], { env }).stdout);
  assert.ok(leases.some((l: { ip: string; mac: string; state: string }) => l.ip === '10.77.1.50' && l.mac === MAC && l.state === 'bound'), JSON.stringify(leases));
  mark = lineCount(log);
  client.child.kill('SIGUSR1');
  assert.match(await waitForLine(log, /^renew /, mark).catch((e) => { throw new Error(e.message + '\nmanager:\n' + manager.output() + '\nudhcpc:\n' + client.output()); }), /ip=10\.77\.1\.50 /);
  await client.stop('SIGKILL');

  // 6. The admin ends that lease from the CLI (destructive: --yes without a terminal); twice is not found.
  assert.equal(storm(['dhcp', 'lease', 'release', '10.77.1.50'], { env }).code, 8);
  const rel = storm(['dhcp', 'lease', 'release', '10.77.1.50', '--yes', '-o', 'json'], { env });
  assert.equal(rel.code, 0, rel.stderr);
  assert.equal(JSON.parse(rel.stdout).state, 'released');
  assert.equal(storm(['dhcp', 'lease', 'release', '10.77.1.50', '--yes'], { env }).code, 3);
  const health = JSON.parse(storm(['dhcp', 'status', '-o', 'json'], { env }).stdout);
  assert.equal(health.status, 'healthy', JSON.stringify(health));
  await manager.stop();
});
