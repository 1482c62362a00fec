import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../lib/exec.ts';
import { tempDir } from '../helpers/tmp.ts';
import { storm, startManagerProcess } from '../helpers/storm.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';

test('storm dns record add|list|remove against a running manager; dig sees the changes', async (t) => {
  const state = tempDir(t);
  const port = await freeTcpUdpPort();
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}`, STORM_DNS_LISTEN: `127.0.0.1:${port}`, STORM_MANAGER_ADDRESS: '10.77.0.1' };
  const m = await startManagerProcess(t, state, [], env);
  const dig = async (...args: string[]) => (await run('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', '+short', ...args])).stdout.trim();

  assert.equal(await dig('storm.local'), '10.77.0.1');
  const add = storm(['dns', 'record', 'add', 'mail', 'A', '10.77.5.5', '-o', 'json'], { env });
  assert.equal(add.code, 0, add.stderr);
  assert.equal(JSON.parse(add.stdout).name, 'mail.storm.internal');
  assert.equal(storm(['dns', 'record', 'add', '@', 'MX', 'mail', '--priority', '5'], { env }).code, 0);
  assert.equal(await dig('storm.internal', 'MX'), '5 mail.storm.internal.');
  assert.equal(await dig('mail.storm.internal'), '10.77.5.5');

  const list = storm(['dns', 'record', 'list'], { env });
  assert.match(list.stdout, /^NAME\s+TYPE\s+VALUE\s+OWNER/);
  assert.match(list.stdout, /mail\.storm\.internal\s+A\s+10\.77\.5\.5\s+admin/);
  assert.match(list.stdout, /storm\.internal\s+MX\s+5 mail\.storm\.internal/);

  const bad = storm(['dns', 'record', 'add', 'x', 'A', 'not-an-ip'], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /not an IPv4 address/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);

  const noYes = storm(['dns', 'record', 'remove', 'mail', 'A'], { env });
  assert.equal(noYes.code, 8, noYes.stderr);
  assert.equal(storm(['dns', 'record', 'remove', 'mail', 'A', '--yes'], { env }).code, 0);
  assert.equal(await dig('mail.storm.internal'), '');

  // Records survive a manager restart.
  assert.equal(await m.stop(), 0);
  await startManagerProcess(t, state, [], env);
  assert.equal(await dig('storm.internal', 'MX'), '5 mail.storm.internal.');
  const st = storm(['dns', 'status', '-o', 'json'], { env });
  assert.equal(JSON.parse(st.stdout).status, 'healthy', st.stdout);
});

test('DNS and DHCP are off by default, and say how to turn them on', async (t) => {
  const state = tempDir(t);
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}` };
  await startManagerProcess(t, state, [], env);
  const dns = JSON.parse(storm(['dns', 'status', '-o', 'json'], { env }).stdout);
  assert.equal(dns.status, 'undetected');
  assert.match(dns.fix, /dnsListen/);
  const dhcp = JSON.parse(storm(['dhcp', 'status', '-o', 'json'], { env }).stdout);
  assert.equal(dhcp.status, 'undetected');
  // For people: the state and why, then the fix.
  assert.match(storm(['dns', 'status'], { env }).stdout, /^dns: +undetected: .+\nfix: +.*dnsListen/);
  // Settings and reservations are managed even while the server is off.
  assert.match(storm(['dhcp', 'pool', 'show'], { env }).stdout, /10\.77\.0\.0\/16\s+10\.77\.128\.1-10\.77\.255\.254/);
  assert.equal(storm(['dhcp', 'reservation', 'add', '52:54:00:aa:bb:cc', '10.77.1.10', '--hostname', 'web'], { env }).code, 0);
  assert.match(storm(['dhcp', 'reservation', 'list'], { env }).stdout, /52:54:00:aa:bb:cc\s+10\.77\.1\.10\s+web/);
  const dup = storm(['dhcp', 'reservation', 'add', '52:54:00:aa:bb:dd', '10.77.1.10'], { env });
  assert.equal(dup.code, 4, dup.stderr);
  const outside = storm(['dhcp', 'pool', 'set', '--start', '192.168.1.1'], { env });
  assert.equal(outside.code, 2);
  assert.match(outside.stderr, /not an address inside 10\.77\.0\.0\/16/);
});
