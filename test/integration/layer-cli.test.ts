import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { storm } from '../helpers/storm.ts';

test('storm layer build and storm layer diff from the command line', (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'app', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'app', 'etc', 'motd'), 'app\n');
  writeFileSync(join(dir, 'app', 'etc', 'old'), 'old\n');
  const app = join(dir, 'app.img');
  const b = storm(['layer', 'build', join(dir, 'app'), '--role', 'appliance', '--name', 'demo', '--version', '2.0', '--out', app, '-o', 'json']);
  assert.equal(b.code, 0, b.stderr);
  const built = JSON.parse(b.stdout);
  assert.equal(built.label, 'storm-appliance');
  assert.equal(built.path, app);
  assert.match(built.sha256, /^[0-9a-f]{64}$/);
  assert.ok(built.size > 0);
  const table = storm(['layer', 'build', join(dir, 'app'), '--role', 'appliance', '--name', 'demo', '--version', '2.0', '--out', app]);
  assert.match(table.stdout, new RegExp(`storm-appliance\\s+demo\\s+2\\.0\\s+\\d+\\s+${built.sha256}`));

  mkdirSync(join(dir, 'inst', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'inst', 'etc', 'motd'), 'mine\n');
  writeFileSync(join(dir, 'inst', 'etc', '.wh.old'), '');
  writeFileSync(join(dir, 'inst', 'etc', 'hostname'), 'box\n');
  const inst = join(dir, 'inst.img');
  assert.equal(storm(['layer', 'build', join(dir, 'inst'), '--role', 'instance', '--name', 'i', '--version', '1', '--out', inst]).code, 0);
  const d = storm(['layer', 'diff', inst, '--lower', app]);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /^CHANGE\s+TYPE\s+SHADOWS\s+PATH\n/);
  assert.match(d.stdout, /added\s+file\s+-\s+\/etc\/hostname/);
  assert.match(d.stdout, /modified\s+file\s+appliance\s+\/etc\/motd/);
  assert.match(d.stdout, /deleted\s+file\s+appliance\s+\/etc\/old/);
  assert.match(d.stderr, /1 added, 1 modified, 1 deleted/);

  const bad = storm(['layer', 'build', join(dir, 'app'), '--role', 'bogus', '--name', 'x', '--version', '1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown role "bogus"/);
  const missing = storm(['layer', 'build', join(dir, 'nope'), '--role', 'substrate', '--name', 'x', '--version', '1']);
  assert.equal(missing.code, 3);
  assert.doesNotMatch(missing.stderr, /\n\s+at /);
  const noLower = storm(['layer', 'diff', inst]);
  assert.equal(noLower.code, 2);
  assert.match(noLower.stderr, /at least one --lower/);
});
