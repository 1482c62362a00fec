/**
 * The console over SSH with the real OpenSSH client inside tmux: log in with
 * a key, drive views by keys, resize, quit; exec with exit codes; read-only keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { SshServer } from '../../tui/ssh/server.ts';
import { authorizedKeysPath } from '../../tui/ssh/host-key.ts';
import { COMMANDS } from '../../tui/cli/commands/index.ts';
import type { CommandDef } from '../../tui/cli/command.ts';
import { fixture, fixtureConfig, until } from '../helpers/console-fixture.ts';
import { EventBus } from '../../manager/events.ts';
import { LocalApi } from '../../manager/api.ts';
import { Registry } from '../../manager/services/registry.ts';
import { registerSystem } from '../../manager/services/system.ts';
import { registerInstances } from '../../manager/services/instances.ts';
import { InstanceService, type ApplianceSource, type HostDirectory } from '../../manager/instances/service.ts';
import { MemoryHostAgent } from '../../manager/instances/memory-host-agent.ts';
import type { ApplianceSpec } from '../../manager/instances/model.ts';
import { Store } from '../../manager/store/store.ts';
import { sha } from '../conformance/host-agent.case.ts';
import { freePort } from '../helpers/ports.ts';
import { startManagerProcess } from '../helpers/storm.ts';
import { tempDir } from '../helpers/tmp.ts';
import { tmux } from '../helpers/tmux.ts';

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
  await full.see(/S start\s+T stop\s+\^D destroy/);

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

test('provision, stop and destroy an instance by keys only, resizing mid-way (OpenSSH, tmux, the real instance service)', async (t) => {
  const state = tempDir(t);
  const store = await Store.open(join(state, 'db'));
  t.after(() => store.close());
  // The instance service as the manager runs it, on in-memory hypervisors and a fixture appliance.
  const APP: ApplianceSpec = {
    id: 'wiki', version: '1.0', memoryMiB: 256, vcpus: 1,
    layers: [{ role: 'substrate', sha256: sha('sub'), size: 100, url: 'http://x/sub' }, { role: 'appliance', sha256: sha('wiki'), size: 50, url: 'http://x/wiki' }],
  };
  const agents = new Map([['hv1', new MemoryHostAgent('hv1')], ['hv2', new MemoryHostAgent('hv2')]]);
  const hosts: HostDirectory = { list: async () => [...agents.keys()].map((name) => ({ name, online: true })), agent: (n) => agents.get(n)! };
  const apps: ApplianceSource = { resolve: async () => APP };
  const bus = new EventBus();
  const reg = new Registry();
  registerSystem(reg, { config: fixtureConfig('/dev/null/storm-fixture-state'), bus, path: '/usr/bin:/bin', startedAt: new Date() });
  registerInstances(reg, new InstanceService(store, hosts, apps, bus, silentLogger), silentLogger);
  const ssh = await SshServer.start({ listen: '127.0.0.1:0', state, api: (ctx) => new LocalApi(reg, bus, ctx), log: silentLogger, env: {} });
  t.after(() => ssh.close());
  const admin = keygen(state, 'admin');
  appendFileSync(authorizedKeysPath(state), admin.pub + '\n');

  const tm = tmux(t, ['ssh', ...sshArgs(ssh.port, admin.key)], { cols: 110, rows: 30 });
  await tm.see(/STORM\s+Dashboard/);
  tm.keys('i');
  await tm.see(/Instances 0\/0[\s\S]*\(none\)[\s\S]*N new instance/);
  tm.keys('N');
  await tm.see(/new instance › appliance:/);
  tm.text('wiki');
  tm.keys('Enter');
  await tm.see(/new instance › wiki › name:/);
  tm.text('web1');
  tm.keys('Enter');
  await tm.see(/host \(empty: automatic\):/);
  tm.keys('Enter');
  await tm.see(/parameters \(key=value \.\.\.\):/);
  tm.text('role=test');
  tm.keys('Enter');
  await tm.see(/create instance web1 of wiki on a host chosen automatically[\s│]*with role=test\?/);
  tm.keys('y');
  await tm.see(/web1\s+running\s+wiki@1\.0\s+hv\d/);

  // Stop (upper-case: a state change, no confirmation).
  tm.keys('T');
  await tm.see(/web1\s+stopped/);

  // Resize mid-way: the table and its border follow the window.
  tm.resize(80, 24);
  await tm.see(new RegExp(`^└${'─'.repeat(78)}┘$`, 'm'));
  assert.match(tm.capture(), /web1\s+stopped/);

  // Destroy (Ctrl: always asks, naming the object); "n" first keeps it.
  tm.keys('C-d');
  await tm.see(/destroy instances web1\?/);
  tm.keys('n');
  await tm.see(/cancelled/);
  assert.match(tm.capture(), /web1\s+stopped/);
  tm.keys('C-d');
  await tm.see(/destroy instances web1\?/);
  tm.keys('y');
  await tm.see(/Instances 0\/0/);
  assert.doesNotMatch(tm.capture(), /web1\s+(stopped|running)/);
  assert.deepEqual(await new LocalApi(reg, bus, { actor: 't', readOnly: true }).call('instance.list'), []);
  tm.keys('q');
  await until(() => !tm.alive(), 'session ends');
});
