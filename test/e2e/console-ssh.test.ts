/**
 * The console over SSH with the real OpenSSH client inside tmux: log in with
 * a key, drive views by keys, resize, quit; exec with exit codes; read-only
 * keys; and an appliance provisioned by keys that really boots (a manager and
 * an enrolled stormd on qemu:///system, QEMU TCG), stopped and destroyed.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { SshServer } from '../../tui/ssh/server.ts';
import { authorizedKeysPath } from '../../tui/ssh/host-key.ts';
import { COMMANDS } from '../../tui/cli/commands/index.ts';
import type { CommandDef } from '../../tui/cli/command.ts';
import { fixture, until } from '../helpers/console-fixture.ts';
import { freePort } from '../helpers/ports.ts';
import { startManagerProcess, storm, managerEnv, serveChannel } from '../helpers/storm.ts';
import { enrolStormd } from '../helpers/stormd.ts';
import { tempDir } from '../helpers/tmp.ts';
import { tmux } from '../helpers/tmux.ts';
import { FIXTURES as CHANNEL, buildFixtures } from '../helpers/qemu.ts';

const URI = 'qemu:///system';
const virsh = (...args: string[]) => spawnSync('virsh', ['-c', URI, ...args], { encoding: 'utf8' });

// The real-boot test provisions the example channel's wiki: its layers must be built.
before(buildFixtures);

const SSH_OPTS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none'];

function keygen(dir: string, name: string): { key: string; pub: string } {
  const key = join(dir, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', key]);
  assert.equal(r.status, 0, String(r.stderr));
  return { key, pub: readFileSync(key + '.pub', 'utf8').trim() };
}

const sshArgs = (port: number, key: string, ...rest: string[]) => [...SSH_OPTS, '-p', String(port), '-i', key, 'admin@127.0.0.1', ...rest];
/** Async on purpose: the second test's SSH server runs in this process and must keep serving. */
const sshRun = (port: number, key: string, ...cmd: string[]) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn('ssh', ['-o', 'BatchMode=yes', ...sshArgs(port, key), ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });

test('the manager serves the console and the CLI over SSH to the OpenSSH client', async (t) => {
  const state = tempDir(t);
  const port = await freePort();
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${port}` };
  const m = await startManagerProcess(t, state, [], env);
  assert.match(m.output(), new RegExp(`ssh 127\\.0\\.0\\.1:${port}`));
  const admin = keygen(state, 'admin');
  const stranger = keygen(state, 'stranger');
  appendFileSync(authorizedKeysPath(state), admin.pub + '\n');

  // A wrong key is refused; password and keyboard-interactive are not offered.
  const refused = await sshRun(port, stranger.key, 'storm', 'manager', 'status');
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /Permission denied \(publickey\)/);

  // Exec: the same headless CLI, its data on stdout, its exit code back.
  const st = await sshRun(port, admin.key, 'storm', 'manager', 'status', '-o', 'json');
  assert.equal(st.code, 0, st.stderr);
  assert.equal(JSON.parse(st.stdout).state, state);
  const bad = await sshRun(port, admin.key, 'storm', 'manager', 'frobnicate');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown verb "frobnicate" for manager/);
  const host = await sshRun(port, admin.key, 'storm', 'manager', 'start');
  assert.equal(host.code, 6);
  assert.match(host.stderr, /runs on the manager's host only/);

  // Following events over SSH: each new one arrives as it happens; closing the client ends it there.
  const follow = spawn('ssh', ['-o', 'BatchMode=yes', ...sshArgs(port, admin.key, 'storm', 'event', 'list', '-f', '--kind', 'operation', '-o', 'json')], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => follow.kill('SIGKILL'));
  let streamed = '';
  follow.stdout.on('data', (d: Buffer) => (streamed += d));
  const added = await sshRun(port, admin.key, 'storm', 'dns', 'record', 'add', 'follow-me', 'A', '10.77.0.9');
  assert.equal(added.code, 0, added.stderr);
  const t0 = Date.now();
  while (!streamed.includes('follow-me') && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
  assert.match(streamed, /"message":"ssh:admin \(admin@test\): dns\.record\.add follow-me"/);
  follow.kill('SIGTERM');
  await new Promise((r) => follow.on('close', r));
  assert.equal((await sshRun(port, admin.key, 'storm', 'manager', 'status', '-o', 'name')).stdout.trim(), state, 'the manager serves on');

  // The console, in tmux, by keys only.
  const tm = tmux(t, ['ssh', ...sshArgs(port, admin.key)], { cols: 100, rows: 30 });
  await tm.see(/STORM\s+Dashboard/);
  await tm.see(/service health[\s\S]*healthy/);
  await tm.see(/hosts[\s\S]*(no hosts enrolled|online|pending|offline)/);
  tm.keys('e');
  await tm.see(/Events[\s\S]*manager\.started/);
  tm.keys('d');
  await tm.see(/COMPONENT\s+STATUS\s+REASON[\s\S]*libvirtd/);
  tm.keys('i');
  await tm.see(/Instances 0\/0[\s\S]*\(none\)/);
  tm.keys('h');
  await tm.see(/Hosts \d+\/\d+/);
  tm.text(':ev');
  tm.keys('Tab');
  await tm.see(/:ev█\s+ev events/);
  tm.keys('e', 'n', 't', 's', 'Enter');
  await tm.see(/Events \d+\/\d+/);
  tm.text('/started');
  tm.keys('Enter');
  await tm.see(/STORM\s+Events\s+\/started/);
  tm.keys('?');
  await tm.see(/keys \(esc closes\)/);
  tm.keys('Escape');
  await until(() => !/keys \(esc closes\)/.test(tm.capture()), 'help closed');

  // Resize mid-way: the layout follows the window.
  assert.match(tm.capture(), new RegExp(`└${'─'.repeat(98)}┘`));
  tm.resize(70, 20);
  await tm.see(new RegExp(`^└${'─'.repeat(68)}┘$`, 'm'));
  assert.equal(tm.capture().split('\n').filter((l) => l.length > 70).length, 0);
  tm.keys('q');
  await until(() => !tm.alive(), 'ssh exits when the console quits');
});

/** A mutating command against the fixture's instance service (the real one arrives with issue 6). */
const STOP: CommandDef = {
  noun: 'instance', verb: 'stop', args: ['NAME'], summary: 'stop an instance',
  run: async (ctx) => ({ data: await (await ctx.api()).call('instance.stop', { name: ctx.args[0] }) }),
};

test('a read-only key sees no state-changing key and cannot change state (OpenSSH, tmux)', async (t) => {
  const state = tempDir(t);
  const f = fixture({ instances: 3 });
  const ssh = await SshServer.start({ listen: '127.0.0.1:0', state, api: (ctx) => f.api(ctx), log: silentLogger, env: {}, commands: [...COMMANDS, STOP] });
  t.after(() => ssh.close());
  const admin = keygen(state, 'admin');
  const auditor = keygen(state, 'auditor');
  appendFileSync(authorizedKeysPath(state), `${admin.pub}\nstorm-readonly ${auditor.pub}\n`);

  const full = tmux(t, ['ssh', ...sshArgs(ssh.port, admin.key)], { cols: 120, rows: 30 });
  await full.see(/STORM\s+Dashboard/);
  full.keys('i');
  await full.see(/S start\s+T stop\s+N new instance\s+\^D destroy/);

  const ro = tmux(t, ['ssh', ...sshArgs(ssh.port, auditor.key)], { cols: 120, rows: 30 });
  await ro.see(/\[read-only\]/);
  ro.keys('i');
  await ro.see(/web-0\s+running/);
  ro.keys('T', 'S', 'C-d', 'y', '?');
  await ro.see(/keys \(esc closes\)/);
  assert.doesNotMatch(ro.capture(), /start|stop\b|destroy|confirms/);
  ro.keys('Escape');
  assert.ok(!f.calls.some((c) => c.ctx.readOnly && c.method.startsWith('instance.') && c.method !== 'instance.list'));

  const denied = await sshRun(ssh.port, auditor.key, 'storm', 'instance', 'stop', 'web-0');
  assert.equal(denied.code, 6);
  assert.match(denied.stderr, /read-only/);
  assert.equal(f.instances[0]!.state, 'running');

  // The full key can; the read-only session sees the change.
  const ok = await sshRun(ssh.port, admin.key, 'storm', 'instance', 'stop', 'web-0', '-o', 'json');
  assert.equal(ok.code, 0, ok.stderr);
  await ro.see(/web-0\s+stopped/);
  ro.keys('q');
  full.keys('q');
  await until(() => !ro.alive() && !full.alive(), 'both sessions end');
  await until(() => ssh.sessionCount === 0, 'sessions freed');
});

test('provision an appliance that really boots, by keys only over OpenSSH in tmux: wizard, running, resize, stop, destroy (manager, stormd, libvirt TCG)', async (t) => {
  const root = tempDir(t, 'storm-tb-boot-');
  const state = join(root, 'manager');
  const hv = join(root, 'stormd');
  // Whatever happens, no domain of ours outlives the test (names are storm-<id>; ids learnt below).
  const ours = new Set<string>();
  t.after(() => {
    for (const d of ours) {
      virsh('destroy', d);
      virsh('undefine', d);
    }
  });
  const sshPort = await freePort();
  const env = await managerEnv(state, { STORM_SSH_LISTEN: `127.0.0.1:${sshPort}` });
  // Every server is a child process: the CLI may block this one.
  const ok = (...args: string[]) => {
    const r = storm(args, { env });
    assert.equal(r.code, 0, `storm ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
    return r.stdout;
  };
  const json = <T>(...args: string[]) => JSON.parse(ok(...args, '-o', 'json')) as T;

  // The example channel on loopback, a manager, and a stormd on qemu:///system enrolled with a token.
  const { base } = await serveChannel(t, CHANNEL, env);
  await startManagerProcess(t, state, [], env);
  await enrolStormd(t, env, 'hv1', hv, URI);
  await until(() => json<{ state: string }>('host', 'show', 'hv1').state === 'online', 'hv1 online', 60_000);
  ok('channel', 'add', `${base}feed.xml`, '--name', 'fixtures');
  // A site deployment of the wiki (version 1: its published deployment layer plus one file), for the wizard to offer.
  const corp = json<{ versions: { sha256: string }[] }>('deployment', 'create', 'corp', '--appliance', 'wiki', '--set', '/etc/motd=corp site');

  const admin = keygen(root, 'admin');
  const auditor = keygen(root, 'auditor');
  const stranger = keygen(root, 'stranger');
  appendFileSync(authorizedKeysPath(state), `${admin.pub}\nstorm-readonly ${auditor.pub}\n`);
  const refused = await sshRun(sshPort, stranger.key, 'storm', 'instance', 'list');
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /Permission denied \(publickey\)/);

  // The dashboard: the host's figures and its CPU sparkline, from the real stormd's polls.
  const tm = tmux(t, ['ssh', ...sshArgs(sshPort, admin.key)], { cols: 110, rows: 30 });
  await tm.see(/STORM\s+Dashboard/);
  await tm.see(/hv1  online  cpu \d+%  mem \d+%  disk \d+%\s*│[^\n]*\n│[▁▂▃▄▅▆▇█]+\s*│/);

  // The wizard, by keys: appliance (tab completes from the catalog) → deployment (tab completes the site's; empty would be
  // the wiki's own) → name → (the wiki takes no parameters) → automatic placement → confirm naming the deployment and its version.
  tm.keys('i');
  await tm.see(/Instances 0\/0[\s\S]*\(none\)[\s\S]*N new instance/);
  tm.keys('N');
  await tm.see(/new instance › appliance:/);
  tm.text('wi');
  tm.keys('Tab');
  await tm.see(/new instance › appliance: wiki█/);
  tm.keys('Enter');
  await tm.see(/new instance › wiki › deployment \(empty: its own, wiki-example-corp 1\.0; tab completes: corp\): █/);
  tm.text('c');
  tm.keys('Tab');
  await tm.see(/tab completes: corp\): corp█/);
  tm.keys('Enter');
  await tm.see(/new instance › wiki@1\.0 \(site deployment corp version 1\) › name:/);
  tm.text('web1');
  tm.keys('Enter');
  // The wiki declares no parameters: the wizard goes on to the host.
  await tm.see(/new instance › web1 › host \(empty: automatic; tab completes\):/);
  tm.keys('Enter');
  await tm.see(/create instance web1 of wiki@1\.0 \(site deployment corp version 1\) on a host chosen[\s│]*automatically\?/);
  tm.keys('y');
  // Provisioning shows as a gauge (layers fetched one by one) while the console stays usable.
  await tm.see(/provision web1/);
  const inst = (await until(() => json<{ id: string; name: string }[]>('instance', 'list').find((i) => i.name === 'web1'), 'web1 recorded', 30_000))!;
  ours.add(`storm-${inst.id}`);

  // The real boot: layers into stormd's cache, a domain under libvirtd, the guest up (generous bounds, not assertions of speed).
  await tm.see(/web1\s+running\s+deployment:corp@1\s+hv1/, 240_000);
  assert.equal(virsh('domstate', `storm-${inst.id}`).stdout.trim(), 'running');
  // Created as `storm instance create web1 --deployment corp` does: the deployment's layer, not the wiki's own.
  assert.equal(json<{ layers: { deployment?: string } }>('instance', 'show', 'web1').layers.deployment, corp.versions[0]!.sha256);
  await until(() => /STORM-GUEST: ready/.test(storm(['instance', 'console', 'web1'], { env }).stdout), 'the guest is up', 180_000);

  // A second admin, read-only, watching the same instances: the change shows there; its keys change nothing.
  const ro = tmux(t, ['ssh', ...sshArgs(sshPort, auditor.key)], { cols: 110, rows: 30 });
  await ro.see(/\[read-only\]/);
  ro.keys('i');
  await ro.see(/web1\s+running\s+deployment:corp@1\s+hv1/);
  // The deployments view (read-only is fine): corp, its version, versions kept, one instance on it.
  ro.keys('p');
  await ro.see(/corp\s+wiki@1\.0\s+1\s+1\s+1\s/);
  ro.keys('i');
  await ro.see(/web1\s+running/);
  ro.keys('T', 'C-d', 'y', 'N', '?');
  // Keys are handled in order: once help is up, the others were handled (and offered nothing).
  await ro.see(/keys \(esc closes\)/);
  assert.doesNotMatch(ro.capture(), /destroy instances|new instance ›|start|stop\b|destroy|confirms/);
  ro.keys('Escape');

  // Resize mid-way: the table and its border follow the window.
  tm.resize(80, 24);
  await tm.see(new RegExp(`^└${'─'.repeat(78)}┘$`, 'm'));
  assert.match(tm.capture(), /web1\s+running/);
  assert.equal(tm.capture().split('\n').filter((l) => l.length > 80).length, 0);

  // Stop (upper-case: a state change, no confirmation): ACPI, the guest powers off.
  assert.equal(json<{ state: string }>('instance', 'show', 'web1').state, 'running', 'the read-only keys changed nothing');
  tm.keys('T');
  await tm.see(/web1\s+stopped/, 120_000);
  await ro.see(/web1\s+stopped/);
  assert.equal(virsh('domstate', `storm-${inst.id}`).stdout.trim(), 'shut off');

  // Destroy (Ctrl: always asks, naming the object); "n" first keeps it.
  tm.keys('C-d');
  await tm.see(/destroy instances web1\?/);
  tm.keys('n');
  await tm.see(/cancelled/);
  assert.match(tm.capture(), /web1\s+stopped/);
  tm.keys('C-d');
  await tm.see(/destroy instances web1\?/);
  tm.keys('y');
  await tm.see(/Instances 0\/0/, 60_000);
  await tm.see(/destroy: done \(web1\)/);
  await ro.see(/Instances 0\/0/);
  // Who did what, in the operations log both sessions see.
  ro.keys('e');
  await ro.see(/operation\s+web1\s+ssh:admin \(admin@test\): instance\.destr/);
  ro.keys('q');

  // Afterwards, from outside the console: no record, no domain, no instance layer.
  assert.deepEqual(json<unknown[]>('instance', 'list'), []);
  assert.ok(!virsh('list', '--all', '--name').stdout.split('\n').map((s) => s.trim()).includes(`storm-${inst.id}`), 'libvirt has no domain for web1');
  assert.ok(!existsSync(join(hv, 'instances', inst.id)), 'stormd holds no instance layer for web1');
  tm.keys('q');
  await until(() => !tm.alive(), 'session ends');
});
