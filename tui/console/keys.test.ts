import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEYS, TABLE_VIEWS, bindingsFor, complete, footerText, helpText, showKey } from './keys.ts';

const ALL_VIEWS = [...TABLE_VIEWS, 'dashboard'];

test('no key is bound twice in one view', () => {
  for (const v of ALL_VIEWS) {
    const seen = new Set<string>();
    for (const b of bindingsFor(v, false)) for (const k of b.keys) {
      assert.ok(!seen.has(k), `key ${k} bound twice in ${v}`);
      seen.add(k);
    }
  }
});

test('case convention: ctrl keys are dangerous or quit, upper-case letters mutate, lower-case never do', () => {
  for (const b of KEYS) for (const k of b.keys) {
    if (/^C-.$/.test(k) && b.action !== 'quit') assert.ok(b.dangerous && b.mutates, `${k} should confirm`);
    if (/^S-[a-z]$/.test(k)) assert.ok(b.mutates, `${k} should be a state change`);
    if (/^[a-z0-9?:/]$/.test(k)) assert.ok(!b.mutates, `${k} (lower-case) must not change state`);
    if (b.action === 'op') assert.ok(b.method, `${b.label} names its method`);
  }
});

test('footer and help come from the table; read-only and missing methods hide state changes', () => {
  assert.match(footerText('health', false), /\? help/);
  assert.match(helpText('health', false), /quit/);
  assert.match(footerText('instances', false), /S start .*\^D destroy/);
  assert.match(helpText('instances', false), /\^D\s+destroy \(confirms\)/);
  for (const v of ALL_VIEWS) for (const b of bindingsFor(v, true)) assert.ok(!b.mutates && !b.dangerous, `${b.label} shown read-only in ${v}`);
  assert.doesNotMatch(footerText('instances', true), /start|destroy/);
  const only = new Set(['instance.stop']);
  assert.deepEqual(bindingsFor('instances', false, only).filter((b) => b.action === 'op').map((b) => b.label), ['stop']);
});

test('key names for people', () => {
  assert.equal(showKey('C-d'), '^D');
  assert.equal(showKey('S-s'), 'S');
  assert.equal(showKey('escape'), 'esc');
});

test('command completion: unique prefix completes, ambiguous extends to the common part', () => {
  assert.equal(complete('inst').line, 'inst');
  assert.deepEqual(complete('inst').matches, ['inst', 'instance', 'instances']);
  assert.equal(complete('hos').line, 'host');
  assert.equal(complete('princ').line, 'principal');
  assert.equal(complete('kerb').line, 'kerberos');
  assert.deepEqual(complete('zzz').matches, []);
});
