import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import ssh2 from 'ssh2';
import { silentLogger } from '../../lib/logger.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { fixture, until } from '../../test/helpers/console-fixture.ts';
import { sshConnect, sshExec, sshShell } from '../../test/helpers/ssh.ts';
import { COMMANDS } from '../cli/commands/index.ts';
import type { CommandDef } from '../cli/command.ts';
import { authorizedKeysPath, hostKeyPath } from './host-key.ts';
import { SshServer } from './server.ts';

/** A mutating CLI command for the fixture's instance service (the real one comes with issue 6). */
const STOP: CommandDef = {
  noun: 'instance', verb: 'stop', args: ['NAME'], summary: 'stop an instance',
  run: async (ctx) => ({ data: await (await ctx.api()).call('instance.stop', { name: ctx.args[0] }) }),
};

async function setup(t: import('node:test').TestContext) {
  const state = tempDir(t);
  const f = fixture({ instances: 3 });
  const ssh = await SshServer.start({ listen: '127.0.0.1:0', state, api: (ctx) => f.api(ctx), log: silentLogger, env: { PATH: '/usr/bin:/bin' }, commands: [...COMMANDS, STOP] });
  t.after(() => ssh.close());
  const admin = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'admin@test' });
  const auditor = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'auditor@test' });
  const stranger = ssh2.utils.generateKeyPairSync('ed25519');
  appendFileSync(authorizedKeysPath(state), `${admin.public}\nstorm-readonly ${auditor.public}\n`);
  return { state, f, ssh, admin: admin.private, auditor: auditor.private, stranger: stranger.private };
}

test('host key is made once and kept (0600); only listed public keys get in', async (t) => {
  const { state, ssh, admin, stranger } = await setup(t);
  assert.equal(statSync(hostKeyPath(state)).mode & 0o777, 0o600);
  assert.equal(statSync(authorizedKeysPath(state)).mode & 0o777, 0o600);
  const key = readFileSync(hostKeyPath(state), 'utf8');
  assert.match(key, /BEGIN OPENSSH PRIVATE KEY/);
  await assert.rejects(sshConnect(ssh.port, { privateKey: stranger }), /authentication methods failed/);
  await assert.rejects(sshConnect(ssh.port, { password: 'admin' }), /authentication methods failed/);
  await assert.rejects(sshConnect(ssh.port, { tryKeyboard: true }), /authentication methods failed/);
  const c = await sshConnect(ssh.port, { privateKey: admin });
  c.end();
  // A second server on the same state keeps the host key.
  const again = await SshServer.start({ listen: '127.0.0.1:0', state, api: () => { throw new Error('unused'); }, log: silentLogger, env: {} });
  await again.close();
  assert.equal(readFileSync(hostKeyPath(state), 'utf8'), key);
});

test('exec runs the CLI in-process and returns its exit code', async (t) => {
  const { ssh, f, admin, auditor } = await setup(t);
  const c = await sshConnect(ssh.port, { privateKey: admin });
  t.after(() => c.end());
  const st = await sshExec(c, 'storm manager status -o json');
  assert.equal(st.code, 0, st.stderr);
  assert.equal(JSON.parse(st.stdout).pid, process.pid);
  const bad = await sshExec(c, 'storm manager frobnicate');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown verb "frobnicate"/);
  assert.equal((await sshExec(c, 'storm instance stop nosuch')).code, 3);
  assert.equal((await sshExec(c, `storm "unterminated`)).code, 2);
  const ok = await sshExec(c, 'instance stop web-0 -o json');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).state, 'stopped');
  assert.equal(f.calls.at(-1)!.ctx.actor, 'ssh:admin (admin@test)');

  // A read-only key: reads work, a state change is refused by the registry (exit 6).
  const ro = await sshConnect(ssh.port, { privateKey: auditor });
  t.after(() => ro.end());
  assert.equal((await sshExec(ro, 'storm event list -o json')).code, 0);
  const before = f.calls.length;
  const refused = await sshExec(ro, 'storm instance stop web-1');
  assert.equal(refused.code, 6);
  assert.match(refused.stderr, /read-only/);
  assert.equal(f.calls.length, before, 'the service never ran');
  assert.equal(f.instances[1]!.state, 'running');
});

test('pty + shell gets the console; read-only sessions are not shown state changes; window-change re-lays out', async (t) => {
  const { ssh, f, admin, auditor } = await setup(t);
  const c = await sshConnect(ssh.port, { privateKey: admin });
  t.after(() => c.end());
  const sh = await sshShell(c, { cols: 100, rows: 30, term: 'tmux-256color' });
  await sh.waitFor(/STORM\s+Dashboard/);
  let mark = sh.output().length;
  sh.stream.write('i');
  await sh.waitFor(/web-0/, mark);
  await sh.waitFor(/S\s*start\s*T\s*stop/);
  mark = sh.output().length;
  sh.stream.setWindow(20, 60, 0, 0);
  await sh.waitFor(new RegExp(`└${'─'.repeat(58)}┘`), mark);

  const ro = await sshConnect(ssh.port, { privateKey: auditor });
  t.after(() => ro.end());
  const rsh = await sshShell(ro, { cols: 120, rows: 30 });
  await rsh.waitFor(/\[read-only\]/);
  mark = rsh.output().length;
  rsh.stream.write('i');
  await rsh.waitFor(/web-0/, mark);
  rsh.stream.write('T\x04y');
  mark = rsh.output().length;
  rsh.stream.write('?');
  await rsh.waitFor(/keys \(esc closes\)/, mark);
  assert.doesNotMatch(rsh.plain(), /S\s*start|T\s*stop|\^D\s*destroy|confirms/);
  assert.ok(!f.calls.some((x) => x.method === 'instance.stop' || x.method === 'instance.destroy'));

  // q ends the session from the server side.
  sh.stream.write('q');
  await sh.closed;

  // `ssh -t manager storm tui` is the console too.
  const tui = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => c.exec('storm tui', { pty: { term: 'xterm', cols: 80, rows: 24 } }, (e, s) => (e ? reject(e) : resolve(s))));
  let out = '';
  tui.on('data', (d: Buffer) => (out += d));
  await until(() => /STORM/.test(out), 'console over exec storm tui');
  tui.write('q');
  await new Promise((r) => tui.on('close', r));
});

test('a shell without a pty is told to use ssh -t; no-pty keys get exec only', async (t) => {
  const { ssh, admin, state } = await setup(t);
  const c = await sshConnect(ssh.port, { privateKey: admin });
  t.after(() => c.end());
  const r = await new Promise<{ code: number | null; err: string }>((resolve, reject) =>
    c.shell(false, (e, s) => {
      if (e) return reject(e);
      let err = '';
      let code: number | null = null;
      s.stderr.on('data', (d: Buffer) => (err += d));
      s.on('data', () => {});
      s.on('exit', (x: number | null) => (code = x));
      s.on('close', () => resolve({ code, err }));
    }),
  );
  assert.equal(r.code, 2);
  assert.match(r.err, /needs a terminal/);

  const scripted = ssh2.utils.generateKeyPairSync('ed25519');
  appendFileSync(authorizedKeysPath(state), `no-pty ${scripted.public} backup-job\n`);
  const b = await sshConnect(ssh.port, { privateKey: scripted.private });
  t.after(() => b.end());
  await assert.rejects(sshShell(b), /pseudo-terminal|pty/i);
  assert.equal((await sshExec(b, 'storm manager status -o name')).code, 0);
});

test('100 sessions opened and closed (some by killing the client) leave no listeners, sessions or memory behind', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { ssh, f, admin } = await setup(t);
  const baseBus = f.bus.listenerCount();
  const procEvents = ['exit', 'uncaughtException', 'SIGTERM', 'SIGINT'] as const;
  const baseProc = procEvents.map((e) => process.listenerCount(e));
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  // Warm up once so module loading and JIT are not counted as growth.
  const w = await sshConnect(ssh.port, { privateKey: admin });
  await (await sshShell(w)).waitFor(/STORM/);
  w.end();
  await until(() => ssh.sessionCount === 0 && f.bus.listenerCount() === baseBus, 'warm-up session freed');
  const heap0 = heap();

  for (let batch = 0; batch < 10; batch++) {
    const open = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const c = await sshConnect(ssh.port, { privateKey: admin });
        const sh = await sshShell(c, { cols: 80, rows: 24 });
        await sh.waitFor(/STORM/);
        return { c, sh };
      }),
    );
    assert.equal(f.bus.listenerCount(), baseBus + 10);
    open.forEach(({ c, sh }, i) => {
      if (i % 3 === 0) (c as unknown as { _sock: { destroy(): void } })._sock.destroy(); // killed client
      else if (i % 3 === 1) sh.stream.write('q'); // quit key
      else c.end(); // clean disconnect
    });
    await until(() => ssh.sessionCount === 0, `batch ${batch} sessions closed`);
    for (const { c } of open) c.end();
    await until(() => ssh.connectionCount === 0, `batch ${batch} connections closed`);
  }
  await until(() => f.bus.listenerCount() === baseBus, 'bus listeners back to baseline');
  assert.deepEqual(procEvents.map((e) => process.listenerCount(e)), baseProc);
  const growth = heap() - heap0;
  // A session's screen is ~1 MB while open; 100 leaked would be far above this bound.
  assert.ok(growth < 20 * 1024 * 1024, `heap grew ${(growth / 1048576).toFixed(1)} MB after 100 sessions`);
  t.diagnostic(`heap growth after 100 sessions: ${(growth / 1048576).toFixed(2)} MB`);
});
