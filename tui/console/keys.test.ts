import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEYS, bindingsFor, footerText, helpText } from './keys.ts';

test('no key is bound twice in one view', () => {
  const views = new Set(KEYS.flatMap((k) => k.views ?? ['*']));
  for (const v of views) {
    const seen = new Set<string>();
    for (const b of bindingsFor(v, false)) for (const k of b.keys) {
      assert.ok(!seen.has(k), `key ${k} bound twice in ${v}`);
      seen.add(k);
    }
  }
});

test('case convention: ctrl keys are dangerous or quit, upper-case keys mutate', () => {
  for (const b of KEYS) for (const k of b.keys) {
    if (k.startsWith('C-') && b.action !== 'quit') assert.ok(b.dangerous, `${k} should confirm`);
    if (/^S-|^[A-Z]$/.test(k)) assert.ok(b.mutates, `${k} should be a state change`);
  }
});

test('footer and help come from the table, read-only hides state changes', () => {
  assert.match(footerText('health', false), /\? help/);
  assert.match(helpText('health', false), /quit/);
  for (const b of bindingsFor('instances', true)) assert.ok(!b.mutates && !b.dangerous);
});
