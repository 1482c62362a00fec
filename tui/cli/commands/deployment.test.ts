import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StormApi } from '../../../manager/api.ts';
import type { DeploymentRecord } from '../../../manager/deployments/model.ts';
import { tempDir } from '../../../test/helpers/tmp.ts';
import { runCli } from '../cli.ts';

const REC: DeploymentRecord = {
  name: 'corp', appliance: 'wiki', applianceVersion: '1.0', version: 2, createdAt: '2026-11-26T12:00:00.000Z', updatedAt: '2026-11-26T12:05:00.000Z',
  versions: [
    { version: 1, sha256: 'a'.repeat(64), size: 1, createdAt: '2026-11-26T12:00:00.000Z', via: 'create', changed: [], changedCount: 0 },
    { version: 2, sha256: 'b'.repeat(64), size: 1, createdAt: '2026-11-26T12:05:00.000Z', via: 'files', changed: [{ path: '/etc/motd', change: 'added' }], changedCount: 1 },
  ],
};

/** Run `storm ...` in process against a fake API that records the calls. */
async function run(argv: string[], o: { remote?: boolean; stdin?: string } = {}) {
  const calls: { method: string; params: Record<string, unknown> }[] = [];
  const api: StormApi = { call: async <R>(method: string, params: Record<string, unknown> = {}) => (calls.push({ method, params }), REC as R), subscribe: () => () => {}, close: () => {} };
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), stdinIsTty: false, env: {}, ...(o.stdin !== undefined ? { readStdin: async () => o.stdin! } : {}) }, { api: async () => api, ...(o.remote ? { remote: true } : {}) });
  return { code, stdout, stderr, calls };
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('storm deployment edit: --set @FILE (mode kept), TEXT, @-, --from DIR, --delete become one edit set', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'site.conf'), 'title=x\n');
  chmodSync(join(dir, 'site.conf'), 0o600);
  mkdirSync(join(dir, 'tree', 'etc', 'wiki'), { recursive: true });
  writeFileSync(join(dir, 'tree', 'etc', 'wiki', 'extra.conf'), 'a\n');
  writeFileSync(join(dir, 'tree', 'etc', 'motd'), 'from tree\n');
  const r = await run(['deployment', 'edit', 'corp', '--from', join(dir, 'tree'), '--set', `/etc/wiki/site.conf=@${join(dir, 'site.conf')}`, '--set', '/etc/motd=literal', '--set', '/etc/issue=@-', '--delete', '/etc/old', '--note', 'n', '-o', 'json'], { stdin: 'from stdin\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.calls.length, 1);
  assert.equal(r.calls[0]!.method, 'deployment.edit');
  const p = r.calls[0]!.params as { name: string; note: string; edits: { files: { path: string; base64: string; mode?: number }[]; delete: string[] } };
  assert.equal(p.name, 'corp');
  assert.equal(p.note, 'n');
  assert.deepEqual(p.edits.delete, ['/etc/old']);
  const byPath = Object.fromEntries(p.edits.files.map((f) => [f.path, f]));
  assert.deepEqual(Object.keys(byPath).sort(), ['/etc/issue', '/etc/motd', '/etc/wiki/extra.conf', '/etc/wiki/site.conf']);
  assert.deepEqual(byPath['/etc/wiki/site.conf'], { path: '/etc/wiki/site.conf', base64: b64('title=x\n'), mode: 0o600 });
  assert.equal(byPath['/etc/motd']!.base64, b64('literal'), 'a later --set wins over --from');
  assert.equal(byPath['/etc/issue']!.base64, b64('from stdin\n'));
  assert.equal(byPath['/etc/wiki/extra.conf']!.base64, b64('a\n'));
  assert.match(r.stderr, /corp: version 2 \(1 path\(s\) changed\)/);
});

test('storm deployment edit: over SSH local files are refused (stdin is the way); modes exclude each other; show renders versions', async () => {
  const remoteFile = await run(['deployment', 'edit', 'corp', '--set', '/etc/x=@/etc/hostname'], { remote: true });
  assert.equal(remoteFile.code, 6);
  assert.match(remoteFile.stderr, /@-/);
  assert.equal(remoteFile.calls.length, 0);
  assert.equal((await run(['deployment', 'edit', 'corp', '--from', '/etc'], { remote: true })).code, 6);
  assert.equal((await run(['deployment', 'edit', 'corp', '--set', '/etc/x=@-'], { remote: true, stdin: 'x' })).code, 0);
  for (const bad of [['--maintenance', '--finish'], ['--maintenance', '--set', '/a=b'], ['--abort', '--delete', '/a'], ['--host', 'h1', '--set', '/a=b'], ['--set', 'relative=x']]) {
    const r = await run(['deployment', 'edit', 'corp', ...bad]);
    assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
    assert.equal(r.calls.length, 0);
  }
  const m = await run(['deployment', 'edit', 'corp', '--maintenance', '--append', 'storm.rescue', '--host', 'h1']);
  assert.deepEqual(m.calls.map((c) => [c.method, c.params]), [['deployment.maintenance.start', { name: 'corp', host: 'h1', append: 'storm.rescue' }]]);
  const f = await run(['deployment', 'edit', 'corp', '--finish', '--note', 'done']);
  assert.deepEqual(f.calls.map((c) => c.method), ['deployment.show', 'deployment.maintenance.finish']);
  assert.deepEqual(f.calls[1]!.params, { name: 'corp', note: 'done' });
  const show = await run(['deployment', 'show', 'corp']);
  assert.match(show.stdout, /^NAME\s+APPLIANCE\s+VERSION\s+VERSIONS\s+LAYER\s+UPDATED\s+MAINTENANCE\s*\ncorp\s+wiki@1\.0\s+2\s+2\s+bbbbbbbbbbbb\s/);
  assert.match(show.stdout, /\nVERSION\s+VIA\s+CHANGED[^\n]*\n2\*\s+files\s+1\s[^\n]*\n1\s+create\s+0\s/);
  const plan = await run(['update', 'plan']);
  assert.deepEqual(plan.calls[0], { method: 'update.plan', params: {} }, 'no target: every pending update');
  const apply = await run(['update', 'apply']);
  assert.equal(apply.code, 2, 'a rollout needs an appliance or --deployment');
  assert.match(apply.stderr, /storm update plan lists every pending update/);
  assert.equal(apply.calls.length, 0);
  const dplan = await run(['update', 'plan', '--deployment', 'corp@1']);
  assert.deepEqual(dplan.calls[0], { method: 'update.plan', params: { appliance: 'deployment:corp@1' } });
});
