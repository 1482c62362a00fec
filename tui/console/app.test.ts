import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeTerm, screenText } from '../../test/helpers/term.ts';
import { fixture, until, type Fixture } from '../../test/helpers/console-fixture.ts';
import { Registry } from '../../manager/services/registry.ts';
import { EventBus } from '../../manager/events.ts';
import { LocalApi } from '../../manager/api.ts';
import { unavailable } from '../../lib/errors.ts';
import { createConsole, blessedTerminal, paramsHint, wizardFacts, type Console } from './app.ts';
import { VIEW_LIST } from './views/index.ts';

const KEY = { esc: '\x1b', enter: '\r', tab: '\t', ctrlD: '\x04', ctrlR: '\x12', space: ' ' };

function open(t: import('node:test').TestContext, f: Fixture, o: { view?: string; readOnly?: boolean; cols?: number; rows?: number } = {}) {
  const term = fakeTerm(o.cols ?? 120, o.rows ?? 36);
  const c = createConsole({ api: f.api({ readOnly: o.readOnly ?? false }), input: term.input, output: term.output, ...(o.view ? { view: o.view } : {}), readOnly: o.readOnly ?? false });
  t.after(() => c.destroy());
  const text = () => screenText(c.screen).join('\n');
  const press = async (...keys: string[]) => {
    for (const k of keys) {
      term.type(k);
      await new Promise((r) => setImmediate(r));
    }
    await c.settled();
  };
  const see = (re: RegExp, what = String(re)) => until(() => re.test(text()), `${what} on screen:\n${text()}`);
  return { c, term, text, press, see };
}

/** One row of expected text per view, from the fixture's data. */
const EXPECT: Record<string, RegExp> = {
  dashboard: /memory[\s\S]*disk[\s\S]*total 3[\s\S]*running\s+2[\s\S]*│\s+50%\s+││\s+50%\s+│[\s\S]*hv2\s+online\s+cpu\s+-\s+mem\s+75%\s+disk\s+30%/,
  instances: /web-0\s+running\s+nginx@1\.2\s+hv1\s+60m/,
  hosts: /hv1\s+127\.0\.0\.1:7001\s+online\s+4\s+40%\s+8\.0G\s+30\.0G\s+tcg/,
  channels: /example\s+ok\s+2\s+unsigned/,
  appliances: /example\s+nginx\s+1\.2\s+appliance\s+51(\.0)? ?Mi?B?\s+1\/2\s+1 of 2\s+web server/,
  deployments: /NAME\s+APPLIANCE\s+VERSION\s+VERSIONS\s+INSTANCES[\s\S]*corp\s+nginx@1\.2\s+3\s+3\s+0\s+333333333333[\s\S]*ops\s+mail@2\.1\s+1\s+1\s+0/,
  layers: /Layers and cache 1\/1 · 1 file, 50(\.0)? ?M\S* stored[\s\S]*abababababababab\s+50(\.0)? ?M\S*\s+example\/nginx@1\.2/,
  updates: /web-0\s+nginx\s+hv1\s+1\.2\s+1\.3\s+appliance/,
  dns: /web-0\.storm\.internal\s+A\s+10\.77\.0\.10\s+instance/,
  dhcp: /10\.77\.0\.10\s+52:54:00:00:00:00\s+web-0\s+bound/,
  users: /alice\s+10001\s+10000\s+Alice Admin\s+active\s+admins/,
  groups: /admins\s+10000\s+alice/,
  principals: /alice@STORM\.INTERNAL\s+user/,
  events: /TIME\s+KIND\s+OBJECT\s+MESSAGE/,
  health: /COMPONENT\s+STATUS\s+REASON/,
};

test('every view renders its rows without a terminal', async (t) => {
  const f = fixture();
  for (const v of VIEW_LIST) {
    const { c, text } = open(t, f, { view: v.id });
    await c.settled();
    assert.ok(EXPECT[v.id], `test covers view ${v.id}`);
    assert.match(text(), EXPECT[v.id]!, `view ${v.id}:\n${text()}`);
    assert.match(text(), new RegExp(v.title), v.id);
    c.destroy();
  }
});

test("instances view, with room: each instance's address from one lease list (ADDRESS), then MAC and the rest", async (t) => {
  const f = fixture();
  const { c, text } = open(t, f, { view: 'instances', cols: 170 });
  await c.settled();
  assert.match(text(), /NAME\s+STATE\s+APPLIANCE\s+HOST\s+AGE\s+ADDRESS\s+MAC/);
  assert.match(text(), /web-0\s+running\s+nginx@1\.2\s+hv1\s+60m\s+10\.77\.0\.10\s+52:54:00:00:00:00/);
  assert.equal(f.calls.filter((x) => x.method === 'dhcp.lease.list').length, 1, 'one lease list for the whole table');
});

test('dashboard: a CPU sparkline per host from its series, fitted to the pane, following new samples', async (t) => {
  const f = fixture({ services: false });
  const host = (name: string, cpuHistory?: number[]) => ({ name, state: 'online', info: { memoryBytes: 100, freeMemoryBytes: 50, ...(cpuHistory ? { cpuPercent: cpuHistory.at(-1) } : {}) }, ...(cpuHistory ? { cpuHistory } : {}) });
  const hosts = [host('hv1', [0, 5, 100, 50, 40]), host('hv2')];
  f.reg.add({ name: 'host.list', mutates: false, summary: '', handler: async () => hosts });
  const { c, text, press, see } = open(t, f, { cols: 100, rows: 30 });
  await c.settled();
  assert.match(text(), /│hv1  online  cpu 40%  mem 50%  disk -\s*│/);
  assert.match(text(), /│▁▁█▅▄\s*│/);
  assert.match(text(), /│hv2  online  cpu -  mem 50%  disk -\s*│[\s\S]*│\(no CPU figures from this host yet\)/);
  assert.match(text(), /cpu[\s\S]*40%/, 'the cpu gauge averages the hosts that report it');
  // A new poll's sample arrives: the line grows on the right.
  hosts[0] = host('hv1', [0, 5, 100, 50, 40, 100]);
  await press('r');
  await see(/│▁▁█▅▄█\s*│/);
  // A long series shows its newest samples, one bar per column, never wrapping.
  hosts[0] = host('hv1', Array.from({ length: 200 }, (_, i) => (i % 2 ? 100 : 0)));
  await press('r');
  await see(/│(?:▁█|█▁){20,}/);
  assert.ok(screenText(c.screen).every((l) => l.length <= 100));
  // More hosts than the pane holds: as many as fit, then how many more.
  hosts.splice(0, hosts.length, ...Array.from({ length: 12 }, (_, i) => host(`hv${i}`, [i * 8])));
  await press('r');
  await see(/… \d+ more hosts \(h: hosts view\)/);
  assert.match(text(), /hv0  online/);
  assert.doesNotMatch(text(), /hv11  online/);
});

test('views whose service is missing say "not available" and light up when it lands', async (t) => {
  const f = fixture({ services: false });
  const { c, text, press } = open(t, f, { view: 'instances' });
  await c.settled();
  assert.match(text(), /not available: this manager does not offer instance\.list yet/);
  await press('o');
  assert.match(text(), /not available \(host\.list\)[\s\S]*not available \(instance\.list\)/);
  assert.match(text(), /service health/);
  // Keys for missing methods are not offered.
  await press('i');
  assert.doesNotMatch(text(), /S start|\^D destroy/);

  // An older manager without system.methods: the view still degrades by the error code.
  const reg = new Registry();
  const bus = new EventBus();
  reg.add({ name: 'events.recent', mutates: false, summary: '', handler: async () => [] });
  const term = fakeTerm(100, 30);
  const old = createConsole({ api: new LocalApi(reg, bus, { actor: 't', readOnly: false }), input: term.input, output: term.output, view: 'hosts' });
  t.after(() => old.destroy());
  await old.settled();
  assert.match(screenText(old.screen).join('\n'), /not available: this manager does not offer host\.list yet \(unknown method "host\.list"\)/);
});

test('sort, filter, marks and drill-down by keys; esc goes back', async (t) => {
  const f = fixture({ instances: 12 });
  // Tall enough for the whole detail pane.
  const { c, text, press } = open(t, f, { view: 'instances', rows: 80 });
  await c.settled();
  await press('2'); // sort by STATE
  assert.match(text(), /STATE▲/);
  const states = () => c.state().model!.window(100, 40).lines.map((l) => l.text.trim().split(/\s+/)[1]);
  assert.deepEqual(states(), [...states()].sort());
  await press('2');
  assert.match(text(), /STATE▼/);

  await press('/', 's', 't', 'o', 'p');
  assert.match(text(), /\/stop█/); // live filter while typing
  await press(KEY.enter);
  assert.equal(c.state().model!.size, 4);
  assert.match(text(), /Instances\s+\/stop/);
  await press(KEY.space, KEY.space);
  assert.match(text(), /\[2 marked\]/);
  await press(KEY.esc); // clears the filter, keeps marks
  assert.equal(c.state().model!.size, 12);
  assert.equal(c.state().model!.marks.size, 2);
  await press(KEY.esc);
  assert.equal(c.state().model!.marks.size, 0);

  // Drill-down: a host's instances, then back.
  await press('h');
  await press('j', KEY.enter); // hv2
  assert.equal(c.state().view, 'instances');
  assert.match(text(), /Hosts › Instances \(host=hv2\)/);
  await c.settled();
  assert.ok(c.state().model!.size > 0);
  for (const r of c.state().model!.targets()) assert.equal((r.row as { host: string }).host, 'hv2');
  await press(KEY.esc);
  assert.equal(c.state().view, 'hosts');

  // Detail pane for objects without a drill-down: the facts as `storm instance show` prints them, then what the view adds.
  await press('i', KEY.enter);
  assert.equal(c.state().mode, 'detail');
  assert.match(text(), /Instances: web-0[\s\S]*name: +web-0 [\s\S]*state: +running [\s\S]*appliance: +nginx@1\.2 /);
  await until(() => /snapshots:[\s\S]*before-upgrade[\s\S]*events:/.test(text()), 'snapshots and events in the detail pane');
  // Its layers with their versions, its addresses, and the console log as lines (no control characters).
  assert.match(text(), /substrate: jeos 1\.0 \(aaaaaaaaaaaa\)[\s\S]*appliance: nginx 1\.2 \(bbbbbbbbbbbb\)/);
  assert.match(text(), /ip: "10\.77\.0\.10"[\s\S]*- web-0\.storm\.internal A/);
  assert.match(text(), /console: \|[\s│]+\[    0\.000000\] Linux version 6\.1[\s│]+STORM-INIT: layers mounted[\s│]+STORM-GUEST: web-0 ready/);
  await press(KEY.esc);
  assert.equal(c.state().mode, 'normal');
});

test('state changes: upper-case keys act, Ctrl keys confirm naming the objects', async (t) => {
  const f = fixture({ instances: 4 });
  f.reg.add({ name: 'host.remove', mutates: true, summary: '', handler: async () => ({}) });
  const { c, text, press, see } = open(t, f, { view: 'instances' });
  await c.settled();
  assert.match(text(), /S start\s+T stop\s+N new instance\s+\^D destroy/);
  await press('T'); // upper-case T: stop web-0
  await until(() => f.calls.some((x) => x.method === 'instance.stop'), 'stop called');
  assert.deepEqual(f.calls.find((x) => x.method === 'instance.stop')!.params, { name: 'web-0' });
  await see(/web-0\s+stopped/);

  await press(KEY.space, KEY.space, KEY.ctrlD);
  assert.equal(c.state().mode, 'confirm');
  assert.match(text(), /destroy instances 2 objects: web-0, web-1\?/);
  await press('n');
  assert.equal(c.state().flash, 'cancelled');
  assert.ok(!f.calls.some((x) => x.method === 'instance.destroy'));

  await press(KEY.ctrlD, 'y');
  await until(() => f.calls.filter((x) => x.method === 'instance.destroy').length === 2, 'two destroys');
  await see(/Instances 1\/2/);
  assert.doesNotMatch(screenText(c.screen).slice(1, -2).join('\n'), /web-0|web-1/);
  await press(KEY.ctrlD);
  assert.match(text(), /destroy instances web-2\?/);
  await press(KEY.esc);
  assert.equal(f.instances.length, 2);
  await press('h', KEY.ctrlD);
  assert.match(text(), /remove host hv1\?/);
  await press('n');
  // A DHCP lease: ^D releases it, after naming it.
  await press(':', ...'dhcp', KEY.enter);
  await see(/10\.77\.0\.10\s+52:54:00:00:00:00\s+web-0\s+bound/);
  await press(KEY.ctrlD);
  assert.match(text(), /release lease 10\.77\.0\.10\?/);
  await press('y');
  await see(/10\.77\.0\.10\s+52:54:00:00:00:00\s+web-0\s+released/);
  assert.deepEqual(f.calls.find((x) => x.method === 'dhcp.lease.release')!.params, { name: '10.77.0.10' });
});

test('keys that need a value ask for it first: snapshot (named by the time), migrate (to a host), restore (tab completes the snapshot, then confirms)', async (t) => {
  const f = fixture({ instances: 3 });
  const { c, text, press } = open(t, f, { view: 'instances' });
  await c.settled();
  const params = (m: string) => f.calls.filter((x) => x.method === m).map((x) => x.params);

  await press('Z');
  assert.equal(c.state().mode, 'input');
  assert.match(text(), /snapshot web-0 › name: s-\d{8}-\d{4}/);
  await press(KEY.enter);
  await until(() => params('instance.snapshot.take').length === 1, 'snapshot taken');
  assert.equal(params('instance.snapshot.take')[0]!.name, 'web-0');
  assert.match(String(params('instance.snapshot.take')[0]!.snapshot), /^s-\d{8}-\d{4}$/);

  await press('M', KEY.enter);
  assert.equal(c.state().flash, 'migrate: cancelled', 'empty: nothing happens');
  await press('M', ...'hv2', KEY.enter);
  await until(() => params('instance.migrate').length === 1, 'migrate called');
  assert.deepEqual(params('instance.migrate')[0], { name: 'web-0', host: 'hv2' });

  await press(KEY.ctrlR);
  assert.match(text(), /restore snapshot web-0 › snapshot:/);
  await until(() => f.calls.some((x) => x.method === 'instance.snapshot.list'), 'snapshots listed for completion');
  await press(KEY.tab, KEY.enter);
  assert.equal(c.state().mode, 'confirm');
  assert.match(text(), /restore snapshot web-0 to before-upgrade\?/);
  await press('y');
  await until(() => params('instance.snapshot.restore').length === 1, 'restore called');
  assert.deepEqual(params('instance.snapshot.restore')[0], { name: 'web-0', snapshot: 'before-upgrade' });

  // One object at a time: with marks, the key says so and asks nothing.
  await press(KEY.space, KEY.space, 'Z');
  assert.match(c.state().flash, /snapshot: one at a time \(2 marked/);
  assert.equal(c.state().mode, 'normal');
});

test('read-only sessions are never offered a state change, and the registry refuses one anyway', async (t) => {
  const f = fixture({ instances: 3 });
  const { c, text, press } = open(t, f, { view: 'instances', readOnly: true });
  await c.settled();
  assert.match(text(), /\[read-only\]/);
  assert.doesNotMatch(text(), /S start|T stop|\^D destroy/);
  await press('S', 'T', KEY.ctrlD, 'y', '?');
  assert.equal(c.state().mode, 'help');
  assert.doesNotMatch(text(), /start|stop|destroy|confirms/);
  // Reads only (the instances and their leases, system, events): no method that changes state.
  assert.ok(f.calls.some((x) => x.ctx.readOnly && x.method === 'instance.list'));
  assert.deepEqual(f.calls.filter((x) => x.ctx.readOnly && f.reg.get(x.method)?.mutates !== false).map((x) => x.method), []);
  await assert.rejects(f.api({ readOnly: true }).call('instance.destroy', { name: 'web-0' }), (e: { code?: string }) => e.code === 'unauthorized');
});

test('the new-instance wizard: appliance, deployment (empty: its own), name, parameters checked against the appliance, host, confirm', async (t) => {
  const f = fixture({ instances: 2 });
  const { c, text, press } = open(t, f, { view: 'instances' });
  await c.settled();
  await press('N', 'n', 'g', KEY.tab);
  assert.match(text(), /new instance › appliance: nginx█/);
  await press(KEY.enter);
  // The deployment step: the default is the appliance's own published deployment; the site's of nginx are offered.
  await until(() => /new instance › nginx › deployment \(empty: its own, nginx-example 1\.0; tab completes: corp, staging\): █/.test(text()), `deployment prompt:\n${text()}`);
  await press(KEY.enter);
  await until(() => /new instance › nginx \(deployment nginx-example 1\.0\) › name:/.test(text()), 'name prompt');
  await press('w', 'e', 'b', '9', KEY.enter);
  // Defaults filled in; the required one named.
  assert.match(text(), /parameters \(key=value; required: admin; optional: title, tls, token\): title=Hello tls=off█/);
  await press(KEY.enter);
  assert.match(text(), /parameters \(key=value; required: admin; optional: title, tls, token\): title=Hello tls=off█/, 'asked again, the line kept');
  assert.match(c.state().flash, /required: admin/);
  await press(...' bogus=1', KEY.enter);
  assert.match(c.state().flash, /there is no parameter "bogus" \(it takes: title, tls, admin, token\)/);
  await press(...'\x7f'.repeat(8), ...' admin=ops@example.org tls=maybe', KEY.enter);
  assert.match(c.state().flash, /parameter tls: expected one of off, on, not "maybe"/);
  await press(...'\x7f'.repeat(5), 'o', 'n', ...' token=s3cr3t', KEY.enter);
  assert.match(text(), /host \(empty: automatic; tab completes\):/);
  await press('h', KEY.tab, '2', KEY.enter);
  assert.equal(c.state().mode, 'confirm');
  assert.match(text(), /create instance web9 of nginx \(deployment nginx-example 1\.0\) on hv2 with title=Hello tls=on[\s│]*admin=ops@example\.org[\s│]*token=\(secret\)\?/);
  assert.doesNotMatch(text(), /s3cr3t/, 'a secret is not shown back');
  await press('y');
  await until(() => f.calls.some((x) => x.method === 'instance.create'), 'instance.create called');
  assert.deepEqual(f.calls.find((x) => x.method === 'instance.create')!.params, { name: 'web9', appliance: 'nginx', host: 'hv2', params: { title: 'Hello', tls: 'on', admin: 'ops@example.org', token: 's3cr3t' } });
  await until(() => /web9\s+running/.test(text()), 'web9 listed');

  // An appliance the catalog does not have: said, nothing created; esc cancels at any step.
  await press('N', ...'nope', KEY.enter);
  await until(() => /new instance › nope: appliance "nope" not found/.test(c.state().flash), 'not found');
  await press('N', ...'nginx', KEY.enter);
  await until(() => c.state().mode === 'input' && /deployment \(empty/.test(text()), 'deployment prompt again');
  await press(KEY.enter);
  await until(() => c.state().mode === 'input' && /name:/.test(text()), 'name prompt again');
  await press(KEY.esc);
  assert.equal(c.state().flash, 'new instance: cancelled');
  assert.equal(f.calls.filter((x) => x.method === 'instance.create').length, 1);
});

test('the wizard on a site deployment: tab completes it, the confirm names it and its version, the CLI request creates the instance on it', async (t) => {
  const f = fixture({ instances: 2 });
  const { c, text, press, see } = open(t, f, { view: 'instances' });
  await c.settled();
  await press('N', ...'nginx@1.2', KEY.enter);
  await until(() => /deployment \(empty: its own, nginx-example 1\.0; tab completes: corp, staging\): █/.test(text()), 'deployment prompt');
  // A name that is no deployment of nginx (ops is mail's): said, asked again with the line kept.
  await press(...'ops', KEY.enter);
  assert.match(c.state().flash, /no deployment "ops" of this appliance \(there is: corp, staging, nginx-example \(its own\)\); empty keeps its own/);
  assert.match(text(), /deployment \(empty[^\n]*\): ops█/);
  await press('\x7f', '\x7f', '\x7f', 'c', KEY.tab);
  assert.match(text(), /\): corp█/);
  await press(KEY.enter);
  await until(() => /new instance › nginx@1\.2 \(site deployment corp version 3\) › name:/.test(text()), 'name prompt');
  // Parameters are still the appliance's own (the deployment's edits are files, not parameters).
  await press(...'web7', KEY.enter);
  assert.match(text(), /parameters \(key=value; required: admin; optional: title, tls, token\): title=Hello tls=off█/);
  await press(...' admin=ops@example.org', KEY.enter);
  await press(KEY.enter);
  assert.equal(c.state().mode, 'confirm');
  assert.match(text(), /create instance web7 of nginx@1\.2 \(site deployment corp version 3\) on a host chosen[\s│]*automatically with title=Hello/);
  await press('y');
  await until(() => f.calls.some((x) => x.method === 'instance.create'), 'instance.create called');
  // Exactly what `storm instance create web7 --deployment corp --param ...` sends: the deployment instead of the appliance, no host.
  assert.deepEqual(f.calls.find((x) => x.method === 'instance.create')!.params, { name: 'web7', deployment: 'corp', params: { title: 'Hello', tls: 'off', admin: 'ops@example.org' } });
  await see(/web7\s+running\s+deployment:corp@3\s+hv1/);
  // Its detail pane names its layers: the appliance's lower ones, and the deployment's version for its deployment layer.
  await press('j', 'j');
  assert.equal(c.state().model!.selectedName(), 'web7');
  await press(KEY.enter);
  await until(() => /substrate: jeos 1\.0 \(aaaaaaaaaaaa\)[\s\S]*appliance: nginx 1\.2 \(bbbbbbbbbbbb\)[\s\S]*deployment: corp 3 \(333333333333\)/.test(text()), `layers in the detail pane:\n${text()}`);
  await press(KEY.esc);
  // The deployments view counts it.
  await press('p');
  await see(/corp\s+nginx@1\.2\s+3\s+3\s+1\s/);
});

test('the wizard from the deployments view starts on the selected deployment; a deployment of another appliance version brings that version\'s parameters', async (t) => {
  const f = fixture({ instances: 1 });
  const now = '2026-11-26T08:00:00Z';
  f.deployments.push({ name: 'legacy', appliance: 'nginx', applianceVersion: '1.1', version: 2, versions: [1, 2].map((version) => ({ version, sha256: 'f'.repeat(64), size: 1, createdAt: now, via: 'files', changed: [], changedCount: 0 })), createdAt: now, updatedAt: now });
  const { c, text, press } = open(t, f, { view: 'deployments' });
  await c.settled();
  assert.match(text(), /N new instance/);
  assert.equal(c.state().model!.selectedName(), 'corp');
  await press('N');
  assert.match(text(), /new instance › appliance: nginx@1\.2█/);
  await press(KEY.enter);
  await until(() => /deployment \(empty[^\n]*\): corp█/.test(text()), 'deployment prefilled');
  await press(KEY.esc);
  assert.equal(c.state().flash, 'new instance: cancelled');
  await press('j', 'j', 'j');
  assert.equal(c.state().model!.selectedName(), 'legacy');
  await press('N');
  assert.match(text(), /new instance › appliance: nginx@1\.1█/);
  await press(KEY.enter);
  await until(() => /\): legacy█/.test(text()), 'legacy prefilled');
  await press(KEY.enter);
  await until(() => /new instance › nginx@1\.1 \(site deployment legacy version 2\) › name:/.test(text()), 'name prompt');
  await press(KEY.esc);
  const shows = () => f.calls.filter((x) => x.method === 'appliance.show').map((x) => x.params.ref);
  assert.deepEqual(shows(), ['nginx@1.2', 'nginx@1.1']);
  // Picked after choosing plain nginx (1.2): its parameters come from the version legacy was made from.
  await press('i', 'N', ...'nginx', KEY.enter);
  await until(() => /deployment \(empty[^\n]*\): █/.test(text()), 'deployment prompt');
  await press(...'legacy', KEY.enter);
  await until(() => /new instance › nginx@1\.1 \(site deployment legacy version 2\) › name:/.test(text()), 'name prompt');
  assert.deepEqual(shows(), ['nginx@1.2', 'nginx@1.1', 'nginx', 'nginx@1.1']);
  assert.ok(!f.calls.some((x) => x.method === 'instance.create'));
});

test('a manager without deployments: the wizard goes appliance → name as before', async (t) => {
  const f = fixture({ instances: 1, deployments: false });
  const { c, text, press } = open(t, f, { view: 'instances' });
  await c.settled();
  await press('N', ...'nginx', KEY.enter);
  await until(() => /new instance › nginx \(deployment nginx-example 1\.0\) › name:/.test(text()), 'name prompt');
  await press(...'web3', KEY.enter, KEY.enter, ...' admin=a@b.c', KEY.enter, KEY.enter, 'y');
  await until(() => f.calls.some((x) => x.method === 'instance.create'), 'instance.create called');
  assert.deepEqual(f.calls.find((x) => x.method === 'instance.create')!.params, { name: 'web3', appliance: 'nginx', params: { title: 'Hello', tls: 'off', admin: 'a@b.c' } });
  // Its view says so instead of failing.
  await press('p');
  assert.match(text(), /not available: this manager does not offer deployment\.list yet/);
});

test('deployments view: read-only rows, enter shows the versions as storm deployment show lists them, : aliases reach it', async (t) => {
  const f = fixture();
  const { c, text, press } = open(t, f, { view: 'events', rows: 110 });
  await c.settled();
  await press(':', ...'dep', KEY.tab);
  assert.match(text(), /:dep█\s+dep deploy deployment deployments/);
  await press(KEY.enter);
  assert.equal(c.state().view, 'deployments');
  assert.match(text(), /Deployments 1\/3/);
  await press(KEY.enter);
  assert.equal(c.state().mode, 'detail');
  await until(() => /versions: \|[\s\S]*VERSION\s+VIA\s+CHANGED[\s\S]*3\*\s+files\s+2\s+4\.0 ?Mi?B?\s+333333333333[\s\S]*1\s+create\s+0/.test(text()), `versions in the pane:\n${text()}`);
  await press(KEY.esc);
  // Read-only: no state-changing key here, the rows still show.
  const ro = open(t, f, { view: 'deployments', readOnly: true });
  await ro.c.settled();
  assert.match(ro.text(), /corp\s+nginx@1\.2\s+3\s+3\s+0/);
  assert.doesNotMatch(ro.text(), /N new instance/);
});

test('layer updates: the plan per appliance, apply (canary first) with a gauge, roll back one instance', async (t) => {
  const f = fixture({ instances: 3 });
  const { c, text, press, see } = open(t, f, { view: 'updates' });
  await c.settled();
  assert.match(text(), /Layer updates 1\/3/);
  assert.match(text(), /A apply update/);
  await press('A');
  await until(() => f.calls.some((x) => x.method === 'update.apply'), 'apply called');
  assert.deepEqual(f.calls.find((x) => x.method === 'update.apply')!.params, { name: 'web-0', appliance: 'nginx' });
  await see(/Layer updates 0\/0/);
  await press('i', 'B');
  await until(() => f.calls.some((x) => x.method === 'update.rollback'), 'rollback called');
  await press('u');
  await see(/web-0\s+nginx\s+hv1\s+1\.2\s+1\.3/);
});

test('a failing service shows in the flash line, the full text is one key away, the console lives on', async (t) => {
  const f = fixture();
  f.reg.add({ name: 'channel.refresh', mutates: true, summary: '', handler: async () => { throw unavailable('feed http://127.0.0.1:8080/feed.rss answered 503', { hint: 'is the channel server up?' }); } });
  const { c, text, press } = open(t, f, { view: 'channels' });
  await c.settled();
  await press('U');
  await until(() => /refresh feed example: feed/.test(c.state().flash), 'flash');
  assert.match(text(), /\(x: full text\)/);
  await press('x');
  assert.match(text(), /code: unavailable[\s\S]*hint: is the channel server up\?/);
  await press(KEY.esc, 'i');
  assert.equal(c.state().view, 'instances');
  assert.match(text(), /web-0/);
});

test(': command mode with aliases and tab completion; ? help generated from the key table', async (t) => {
  const f = fixture();
  const { c, text, press } = open(t, f, { view: 'events' });
  await c.settled();
  await press(':', 'h', 'o', 's', KEY.tab);
  assert.match(text(), /:host█\s+host hosts/);
  await press('s', KEY.enter);
  assert.equal(c.state().view, 'hosts');
  await press(':', 'k', 'r', 'b', KEY.enter);
  assert.equal(c.state().view, 'principals');
  await press(':', 'b', 'o', 'g', 'u', 's', KEY.enter);
  assert.match(c.state().flash, /unknown command ":bogus"/);
  await press(KEY.tab);
  assert.equal(c.state().view, 'events');
  await press('?');
  assert.match(text(), /keys \(esc closes\)[\s\S]*\?\s+help[\s\S]*:\s+command/);
  await press('?');
  assert.equal(c.state().mode, 'normal');
});

test('progress of long work shows as gauges from events, without blocking keys', async (t) => {
  const f = fixture();
  const { c, text, press, see } = open(t, f, { view: 'instances' });
  await c.settled();
  f.bus.emit({ kind: 'layer.download', object: 'nginx', message: 'downloading', data: { operation: 'dl-1', progress: 40, label: 'download nginx' } });
  await see(/download nginx[\s\S]*40%/);
  await press('h');
  assert.equal(c.state().view, 'hosts');
  assert.match(text(), /download nginx/);
  f.bus.emit({ kind: 'layer.download', object: 'nginx', message: 'done', data: { operation: 'dl-1', progress: 100, label: 'download nginx' } });
  await see(/100%/);
  await until(() => c.state().progress.size === 0, 'finished gauge removed');
});

test('downloads into the image store show as gauges by bytes, and go when stored or failed', async (t) => {
  const f = fixture();
  const { c, see } = open(t, f, { view: 'layers' });
  await c.settled();
  const sha = 'cd'.repeat(32);
  f.bus.emit({ kind: 'image.download', object: 'image/cdcd', message: 'downloading', data: { kind: 'started', sha256: sha, what: 'wiki appliance layer', size: 4000, from: 0 } });
  await see(/download wiki appliance layer[\s\S]*0%/);
  f.bus.emit({ kind: 'image.progress', object: 'image/cdcd', message: '1000 of 4000', data: { kind: 'progress', sha256: sha, what: 'wiki appliance layer', bytes: 1000, size: 4000, url: 'http://x/' } });
  await see(/25%/);
  f.bus.emit({ kind: 'image.retry', object: 'image/cdcd', message: 'retrying', level: 'warn', data: { kind: 'retry', sha256: sha, what: 'wiki appliance layer', bytes: 1000, url: 'http://x/', reason: 'reset' } });
  assert.equal(c.state().progress.get(`image:${sha}`)?.percent, 25, 'a retry keeps the figure');
  f.bus.emit({ kind: 'image.stored', object: 'image/cdcd', message: 'stored', data: { kind: 'stored', sha256: sha, what: 'wiki appliance layer', size: 4000, received: 4000 } });
  await see(/100%/);
  await until(() => c.state().progress.size === 0, 'finished download gauge removed');
  f.bus.emit({ kind: 'image.failed', object: 'image/efef', message: 'failed', level: 'error', data: { kind: 'failed', sha256: 'ef'.repeat(32), what: 'blog layer', error: '404' } });
  assert.equal(c.state().progress.get(`image:${'ef'.repeat(32)}`)?.stroke, 'red');
  await until(() => c.state().progress.size === 0, 'failed download gauge removed');
});

test('provisioning shows as a gauge from instance.state events, in every session', async (t) => {
  const f = fixture();
  const { c, see } = open(t, f, { view: 'hosts' });
  await c.settled();
  f.bus.emit({ kind: 'instance.state', object: 'instance/web-9', message: 'web-9 is provisioning', data: { id: 'x', state: 'provisioning' } });
  await see(/provision web-9[\s\S]*50%/);
  // Any progress event for the same operation moves the gauge on.
  f.bus.emit({ kind: 'instance.progress', object: 'instance/web-9', message: 'web-9 on hv1: appliance 3/5', data: { operation: 'provision:instance/web-9', progress: 52, label: 'provision web-9: appliance 3/5' } });
  await see(/provision web-9: appliance 3\/5[\s\S]*52%/);
  f.bus.emit({ kind: 'instance.state', object: 'instance/web-9', message: 'web-9 is provisioning', data: { id: 'x', state: 'provisioning' } });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(c.state().progress.get('provision:instance/web-9')?.percent, 52, 'a repeated state does not move the gauge back');
  assert.equal(c.state().progress.size, 1);
  f.bus.emit({ kind: 'instance.state', object: 'instance/web-9', message: 'web-9 is running', data: { id: 'x', state: 'running' } });
  await see(/provision web-9: running[\s\S]*100%/);
  await until(() => c.state().progress.size === 0, 'gauge removed');
  // A state change that is not provisioning (a stop) shows no gauge.
  f.bus.emit({ kind: 'instance.state', object: 'instance/web-1', message: 'web-1 is stopped', data: { id: 'y', state: 'stopped' } });
  assert.equal(c.state().progress.size, 0);
});

test('two sessions on one service layer: a change in one shows in the other; resize re-lays out', async (t) => {
  const f = fixture({ instances: 3 });
  const a = open(t, f, { view: 'instances' });
  const b = open(t, f, { view: 'instances', cols: 80, rows: 24 });
  await Promise.all([a.c.settled(), b.c.settled()]);
  await a.press('T');
  await b.see(/web-0\s+stopped/, 'web-0 stopped in the other session');
  // A service that emits no event of its own: the operations log still tells the other session.
  f.reg.add({ name: 'instance.rename', mutates: true, summary: '', handler: async (p) => ((f.instances.find((i) => i.name === p.name)!.name = 'quiet-1'), {}) });
  await f.api().call('instance.rename', { name: 'web-1' });
  await b.see(/quiet-1\s+running/, 'a silent change in the other session');
  await until(() => /quiet-1/.test(a.text()), 'and in the first');
  b.term.resize(60, 20);
  await until(() => b.c.screen.width === 60, 'resize');
  await b.see(/^└─{58}┘$/m, 'a 60-column border');
  assert.equal(screenText(b.c.screen).length, 20);
});

test('closing frees everything: listeners, timers, the screen', async (t) => {
  const f = fixture();
  const base = f.bus.listenerCount();
  const procBase = process.listenerCount('exit');
  const cs: Console[] = [];
  for (let i = 0; i < 5; i++) cs.push(open(t, f).c);
  await Promise.all(cs.map((c) => c.settled()));
  assert.equal(f.bus.listenerCount(), base + 5);
  for (const c of cs) c.destroy();
  assert.equal(f.bus.listenerCount(), base);
  assert.equal(process.listenerCount('exit'), procBase);
});

test('hostile or malformed service data never takes the console down nor reaches the terminal raw', async (t) => {
  const f = fixture({ services: false });
  const evil = '\x1b]0;pwned\x07\x1b[2J{red-fg}x{/red-fg}';
  f.reg.add({ name: 'instance.list', mutates: false, summary: '', handler: async () => [null, 42, 'str', { name: evil, state: { nested: [1, 2] }, addresses: [null, { a: 1 }] }, { name: 'ok', state: 'running' }] });
  f.reg.add({ name: 'host.list', mutates: false, summary: '', handler: async () => ({ not: 'an array' }) });
  f.bus.emit({ kind: 'x', message: evil, object: evil });
  const { c, text, press, term } = open(t, f, { view: 'instances' });
  await c.settled();
  assert.match(text(), /\{red-fg\}x\{\/red-fg\}/, 'tags in data are shown, not interpreted');
  assert.match(text(), /ok\s+running/);
  await press('o');
  await press('e', '\r');
  assert.equal(c.state().mode, 'detail');
  const out = term.take();
  assert.doesNotMatch(out, /\x1b\]0;pwned|\x1b\[2J\{red/, 'no escape sequence from data reaches the terminal');
  await press('\x1b', 'h');
  assert.equal(c.state().view, 'hosts');
});

test('a slow service does not hold up the other views', async (t) => {
  const f = fixture({ services: false });
  let release = () => {};
  let released = false;
  const late = [{ name: 'late-host' }];
  let asked = false;
  f.reg.add({ name: 'host.list', mutates: false, summary: '', handler: () => ((asked = true), released ? Promise.resolve(late) : new Promise((r) => (release = () => ((released = true), r(late))))) });
  f.reg.add({ name: 'instance.list', mutates: false, summary: '', handler: async () => [{ name: 'quick', state: 'running', createdAt: new Date().toISOString() }] });
  const { c, text, press, see } = open(t, f, { view: 'hosts' });
  await see(/Hosts 0\/0/);
  await until(() => asked, 'host.list asked (and hanging)');
  await press('i');
  await see(/quick\s+running/);
  release();
  await press('h');
  await see(/late-host/);
  assert.equal(c.state().view, 'hosts');
  assert.doesNotMatch(text(), /quick/);
});

test('TERM mapping for blessed', () => {
  assert.equal(blessedTerminal('tmux-256color'), 'xterm-256color');
  assert.equal(blessedTerminal('screen-256color'), 'xterm-256color');
  assert.equal(blessedTerminal(undefined), 'xterm-256color');
  assert.equal(blessedTerminal('xterm'), 'xterm');
});

test('the wizard names the parameters an appliance takes; one that declares none is not asked (params: [])', () => {
  const entry = (parameters: unknown[]) => ({ appliance: { layers: [], parameters } });
  const w = wizardFacts(entry([{ name: 'admin', type: 'email', required: true }, { name: 'title', default: 'Hi' }, { name: 'tls', required: true, default: 'off' }]));
  assert.equal(paramsHint(w), 'key=value; required: admin; optional: title, tls');
  assert.deepEqual(wizardFacts(entry([])).params, [], 'declares none: the step is skipped');
  assert.equal(paramsHint(wizardFacts(undefined)), 'key=value', 'an entry not found: asked, without names');
  assert.equal(wizardFacts(undefined).params, undefined);
});
