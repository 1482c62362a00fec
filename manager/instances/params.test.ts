import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveParams, type ParamSpec } from './params.ts';

const DECLARED: ParamSpec[] = [
  { name: 'title', type: 'string', required: false, default: 'Hello' },
  { name: 'tls', type: 'enum', required: false, default: 'off', choices: ['off', 'on'] },
  { name: 'admin', type: 'email', required: true },
  { name: 'workers', type: 'int', required: false },
];

test('parameters: defaults filled in, each checked for its type, the required ones named, unknown ones refused', () => {
  assert.deepEqual(resolveParams(DECLARED, { admin: 'ops@example.org' }), { params: { admin: 'ops@example.org', title: 'Hello', tls: 'off' } });
  assert.deepEqual(resolveParams(DECLARED, { admin: 'ops@example.org', tls: 'on', workers: '4' }), { params: { admin: 'ops@example.org', tls: 'on', workers: '4', title: 'Hello' } });
  assert.deepEqual(resolveParams(DECLARED, {}), { error: 'parameters required: admin' });
  assert.deepEqual(resolveParams(DECLARED, { admin: '' }), { error: 'parameter admin: expected an e-mail address, not ""' });
  assert.deepEqual(resolveParams(DECLARED, { admin: 'a@b.c', tls: 'maybe' }), { error: 'parameter tls: expected one of off, on, not "maybe"' });
  assert.deepEqual(resolveParams(DECLARED, { admin: 'a@b.c', workers: 'many' }), { error: 'parameter workers: expected an integer, not "many"' });
  assert.deepEqual(resolveParams(DECLARED, { admin: 'a@b.c', titel: 'x' }), { error: 'there is no parameter "titel" (it takes: title, tls, admin, workers)' });
  assert.deepEqual(resolveParams([], { x: '1' }), { error: 'there is no parameter "x" (it takes none)' });
  assert.deepEqual(resolveParams([], {}), { params: {} });
  // A hostile value is cut in the message.
  const r = resolveParams(DECLARED, { admin: 'a@b.c', workers: 'x'.repeat(10_000) });
  assert.ok('error' in r && r.error.length < 200);
});
