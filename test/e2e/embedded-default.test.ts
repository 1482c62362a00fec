// The embedded default as a new user meets it: `storm up` inside tmux shows the
// console, the CLI against the same state sees the example appliances and the
// local host online, and `q` leaves no process of ours, no namespace, no bridge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';
import { storm, STORM_BIN } from '../helpers/storm.ts';
import { tempDir } from '../helpers/tmp.ts';
import { buildFixtures } from '../helpers/qemu.ts';

const ip = (...args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });
const inNs = (ns: string, cmd: string, ...args: string[]) => spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout: 60_000 });
const tmux = (...args: string[]) => spawnSync('tmux', args, { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll until fn returns a value (no timed assertion: the test timeout bounds it). */
async function until<T>(what: string, fn: () => T | undefined, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    await sleep(200);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Every live process and its parent. */
function processTable(): Map<number, number> {
  const t = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      t.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  return t;
}

function descendants(root: number): number[] {
  const t = processTable();
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [pid, ppid] of t) if (ppid === p) (out.push(pid), walk(pid));
  };
  walk(root);
  return out;
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

/** `storm up` in a tmux session of its own, on its own namespace, bridge and ports; returns once the console shows. */
async function startUp(t: import('node:test').TestContext) {
  const state = tempDir(t, 'storm-embed-');
  const id = randomBytes(3).toString('hex');
  const session = `embed-${id}`;
  const netns = `embed-ns-${id}`;
  const bridge = `embbr${id}`;
  const client = { ns: `embed-cl-${id}`, outer: `embcl${id}o`, inner: `embcl${id}i` };
  t.after(() => {
    // Normally storm up removed its own; these catch a failed run.
    for (const a of [['netns', 'del', client.ns], ['link', 'del', client.outer], ['netns', 'del', netns], ['link', 'del', bridge], ['link', 'del', `${bridge}-o`]]) ip(...a);
  });
  const hp = async () => `127.0.0.1:${await freePort()}`;
  const args = [
    STORM_BIN, 'up', '--state', state,
    '--ssh-listen', await hp(), '--enroll-listen', await hp(), '--ldap-listen', await hp(), '--ldaps-listen', await hp(),
    '--kdc-listen', `127.0.0.1:${await freeTcpUdpPort()}`, '--kadmind-listen', await hp(), '--kpasswd-listen', `127.0.0.1:${await freeTcpUdpPort()}`,
    '--netns', netns, '--bridge', bridge,
  ];
  const quoted = [process.execPath, ...args].map((a) => `'${a}'`).join(' ');
  const r = tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '45', `${quoted}; echo STORM-UP-EXITED $?; sleep 300`);
  assert.equal(r.status, 0, r.stderr);
  t.after(() => void tmux('kill-session', '-t', session));
  const pane = () => tmux('capture-pane', '-p', '-t', session).stdout;
  const upPid = await until('the storm up process', () => {
    const shell = Number(tmux('list-panes', '-t', session, '-F', '#{pane_pid}').stdout.trim());
    return descendants(shell).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${STORM_BIN}\0up`));
  });

  // The console comes up with the component health and the key footer.
  await until('the console', () => /STORM/.test(pane()) && /q quit/.test(pane()));
  const env = { ...process.env, STORM_STATE: state };
  return { state, session, netns, bridge, client, pane, upPid, env };
}

test('storm up: console, example channel subscribed and pulled, local host online; q leaves nothing running', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('storm up makes its guest network (namespace, bridge) only as root');
  buildFixtures();
  const { session, netns, bridge, client, pane, upPid, env } = await startUp(t);

  // The CLI, against the same state, sees the example appliances and the local host.
  const apps = await until('the example appliances', () => {
    const a = storm(['appliance', 'list', '-o', 'json'], { env });
    return a.code === 0 ? (JSON.parse(a.stdout) as { id: string; channel: string }[]) : undefined;
  });
  assert.deepEqual(apps.map((a) => a.id).sort(), ['blog', 'wiki', 'wiki-classic']);
  assert.ok(apps.every((a) => a.channel === 'example'));
  const channels = JSON.parse(storm(['channel', 'list', '-o', 'json'], { env }).stdout) as { name: string; trusted?: string }[];
  assert.match(channels.find((c) => c.name === 'example')?.trusted ?? '', /^[0-9a-f]{64}$/, 'subscribed trusting the fixture publisher key');
  await until('the local host online', () => {
    const h = storm(['host', 'list', '-o', 'json'], { env });
    return h.code === 0 && (JSON.parse(h.stdout) as { name: string; state: string }[]).some((x) => x.name === 'local' && x.state === 'online');
  });
  // The background pull stores every file of every example appliance.
  await until('the appliances pulled', () => {
    const a = storm(['appliance', 'show', 'wiki', '-o', 'json'], { env });
    return a.code === 0 && (JSON.parse(a.stdout) as { stored: boolean[] }).stored.every(Boolean);
  });

  // A guest's view: a client on the bridge gets a lease from the manager and resolves through it.
  for (const dev of [bridge, `${bridge}-o`]) assert.equal(ip('-o', 'addr', 'show', 'dev', dev).stdout.trim(), '', `${dev} has no address (v4 or v6) in the root namespace`);
  for (const a of [['netns', 'add', client.ns], ['link', 'add', client.outer, 'type', 'veth', 'peer', 'name', client.inner], ['link', 'set', client.inner, 'netns', client.ns], ['link', 'set', client.outer, 'master', bridge], ['link', 'set', client.outer, 'up'], ['-n', client.ns, 'link', 'set', client.inner, 'up']]) {
    const r = ip(...a);
    assert.equal(r.status, 0, `ip ${a.join(' ')}: ${r.stderr}`);
  }
  const dhcp = inNs(client.ns, 'udhcpc', '-i', client.inner, '-n', '-q', '-t', '10', '-s', '/bin/true');
  const lease = /lease of (10\.77\.\d+\.\d+) obtained from 10\.77\.0\.1/.exec(dhcp.stdout + dhcp.stderr);
  assert.ok(lease, `udhcpc got a lease from 10.77.0.1: ${dhcp.stdout}${dhcp.stderr}`);
  assert.equal(inNs(client.ns, 'ip', 'addr', 'add', `${lease[1]}/16`, 'dev', client.inner).status, 0);
  const dig = inNs(client.ns, 'dig', '+short', '+time=2', '+tries=3', '@10.77.0.1', 'storm.local');
  assert.equal(dig.stdout.trim(), '10.77.0.1', dig.stderr);
  const leases = JSON.parse(storm(['dhcp', 'lease', 'list', '-o', 'json'], { env }).stdout) as { ip: string }[];
  assert.ok(leases.some((l) => l.ip === lease[1]), 'the lease is in the manager\'s store');
  ip('netns', 'del', client.ns);

  const ours = [upPid, ...descendants(upPid)];
  const cmdlines = ours.map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' '));
  for (const what of ['stormd.js start', 'netsvc-relay.ts', 'krb5kdc']) assert.ok(cmdlines.some((c) => c.includes(what)), `${what} runs under storm up: ${cmdlines.join('; ')}`);
  tmux('send-keys', '-t', session, 'q');
  await until('storm up to exit', () => /STORM-UP-EXITED 0/.test(pane()));
  const left = ours.filter(alive);
  assert.deepEqual(left, [], `processes left running: ${left.map((p) => `${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`).join('; ')}`);
  assert.doesNotMatch(ip('netns', 'list').stdout, new RegExp(netns), 'the guest namespace is gone');
  assert.notEqual(ip('link', 'show', bridge).status, 0, 'the bridge is gone');
});

test('storm up: its terminal closing (SIGHUP, an SSH session dropped) stops and removes everything, as q does', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('storm up makes its guest network (namespace, bridge) only as root');
  buildFixtures();
  const { session, netns, bridge, upPid, env } = await startUp(t);
  await until('the local host online', () => {
    const h = storm(['host', 'list', '-o', 'json'], { env });
    return h.code === 0 && (JSON.parse(h.stdout) as { name: string; state: string }[]).some((x) => x.name === 'local' && x.state === 'online');
  });
  const ours = [upPid, ...descendants(upPid)];
  tmux('kill-session', '-t', session);
  await until('every process of storm up gone', () => ours.every((p) => !alive(p)));
  assert.doesNotMatch(ip('netns', 'list').stdout, new RegExp(netns), 'the guest namespace is gone');
  assert.notEqual(ip('link', 'show', bridge).status, 0, 'the bridge is gone');
});
