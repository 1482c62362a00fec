import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { spawn } from 'node:child_process';
import { STORM_BIN, storm, startManagerProcess } from '../helpers/storm.ts';
import { freePort } from '../helpers/ports.ts';

test('the manager owns its state; the CLI talks to it over the control socket', async (t) => {
  const state = tempDir(t);
  const sshPort = await freePort();
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${sshPort}` };
  const m = await startManagerProcess(t, state, [], env);

  const sock = join(state, 'control.sock');
  assert.equal(statSync(sock).mode & 0o777, 0o600, 'control socket is owner-only');

  const status = storm(['manager', 'status', '-o', 'json'], { env });
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout);
  assert.equal(s.state, state);
  assert.equal(typeof s.pid, 'number');

  const ev = storm(['event', 'list', '-o', 'json'], { env });
  assert.ok(JSON.parse(ev.stdout).some((e: { kind: string }) => e.kind === 'manager.started'));
  assert.match(storm(['event', 'list', '-o', 'yaml'], { env }).stdout, /kind: manager\.started/);
  assert.match(storm(['event', 'list'], { env }).stdout, /^TIME\s+KIND/);
  // --follow over the control socket: the recent matching ones, then each new one as it happens.
  const follow = spawn(process.execPath, [STORM_BIN, 'event', 'list', '--follow', '--kind', 'operation', '-o', 'json'], { env });
  t.after(() => follow.kill('SIGKILL'));
  let streamed = '';
  follow.stdout.on('data', (d: Buffer) => (streamed += d));
  await new Promise((r) => setTimeout(r, 1500)); // subscribed (a CLI start is well under that)
  assert.equal(storm(['dns', 'record', 'add', 'follow-me', 'A', '10.77.0.9'], { env }).code, 0);
  const t0 = Date.now();
  while (!streamed.includes('follow-me') && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
  const lines = streamed.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; message: string });
  assert.ok(lines.every((e) => e.kind.startsWith('operation')), streamed);
  assert.ok(lines.some((e) => /dns\.record\.add follow-me/.test(e.message)), streamed);
  follow.kill('SIGINT');
  assert.equal(await new Promise((r) => follow.on('exit', (code, sig) => r(sig ?? code))), 'SIGINT');

  // A second manager on the same state directory is refused, clearly, with no stack trace.
  const second = storm(['manager', 'start', '--state', state], { env });
  assert.equal(second.code, 5, second.stderr);
  assert.match(second.stderr, /in use by another process/);
  assert.doesNotMatch(second.stderr, /\n\s+at /);

  // Hostile control input: garbage gets an error, the manager keeps serving.
  const reply = await new Promise<string>((resolve) => {
    const c = connect(sock);
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) (c.end(), resolve(buf));
    });
    c.write('this is not json\n');
  });
  assert.match(reply, /"code":"invalid"/);
  assert.equal(storm(['manager', 'status', '-o', 'name'], { env }).stdout.trim(), state);

  // SIGTERM stops it cleanly and removes the socket.
  assert.equal(await m.stop('SIGTERM'), 0);
  assert.equal(existsSync(sock), false);
  const after = storm(['manager', 'status'], { env });
  assert.equal(after.code, 7);
  assert.match(after.stderr, /no manager is running/);
  assert.match(after.stderr, /hint: start one/);
});

test('doctor reports a stopped libvirtd as data, with the fix, and does not crash', (t) => {
  const state = tempDir(t);
  const env = { ...process.env, STORM_STATE: state, STORM_LIBVIRT_URI: 'qemu:///system?socket=/nonexistent/libvirt-sock' };
  const r = storm(['doctor', '-o', 'json'], { env });
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as { component: string; status: string; reason: string; fix?: string }[];
  const lv = rows.find((h) => h.component === 'libvirtd')!;
  assert.equal(lv.status, 'unhealthy');
  assert.match(lv.reason, /not reachable/);
  assert.match(lv.fix ?? '', /libvirtd -d/);
  for (const c of ['node', 'state', 'kvm', 'qemu', 'qemu-img', 'busybox', 'kernel', 'krb5kdc', 'ssh-port']) assert.ok(rows.some((h) => h.component === c), c);
  for (const h of rows) assert.ok(['healthy', 'unhealthy', 'undetected'].includes(h.status));
  const table = storm(['doctor'], { env });
  assert.match(table.stdout, /libvirtd\s+unhealthy\s+not reachable/);
});

test('usage errors name what was wrong and exit 2', () => {
  const r = storm(['manager', 'frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown verb "frobnicate" for manager/);
  const o = storm(['doctor', '-o', 'xml']);
  assert.equal(o.code, 2);
  assert.match(o.stderr, /unknown output format "xml"/);
  assert.match(storm(['--version']).stdout, /^storm \d+\.\d+\.\d+/);
  assert.equal(storm(['--help']).code, 0);
});

test('instance commands reach the instance service; errors are clear', async (t) => {
  const state = tempDir(t);
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}` };
  await startManagerProcess(t, state, [], env);
  const list = storm(['instance', 'list', '-o', 'json'], { env });
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout), []);
  const noApp = storm(['instance', 'create', 'web1'], { env });
  assert.equal(noApp.code, 2);
  assert.match(noApp.stderr, /missing --appliance/);
  const create = storm(['instance', 'create', 'web1', '--appliance', 'nope'], { env });
  assert.equal(create.code, 3, create.stderr);
  assert.match(create.stderr, /appliance "nope" not found/);
  const destroy = storm(['instance', 'destroy', 'web1'], { env });
  assert.equal(destroy.code, 8, 'destructive verb without a terminal needs --yes');
  assert.match(destroy.stderr, /--yes/);
  const missing = storm(['instance', 'destroy', 'web1', '--yes', '-o', 'json'], { env });
  assert.equal(missing.code, 3);
  assert.equal(JSON.parse(missing.stderr).error.code, 'not_found');
});
