import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GLOBAL_OPTIONS } from './cli.ts';
import { COMMANDS } from './commands/index.ts';

test('no command option shadows a global one (--state is the state directory everywhere), by name or short letter', () => {
  const shorts = new Set(Object.values(GLOBAL_OPTIONS).map((o) => o.short).filter(Boolean));
  for (const c of COMMANDS) {
    for (const [name, o] of Object.entries(c.options ?? {})) {
      assert.ok(!(name in GLOBAL_OPTIONS), `storm ${c.noun} ${c.verb} --${name} shadows the global --${name}`);
      assert.ok(!o.short || !shorts.has(o.short), `storm ${c.noun} ${c.verb} -${o.short} shadows a global short option`);
    }
  }
});
