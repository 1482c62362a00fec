import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StormError, fromErrorData, toStormError, notFound } from './errors.ts';

test('errors survive a JSON round trip with code, hint and details', () => {
  const e = notFound('instance "web1" not found', { hint: 'run storm instance list', details: { name: 'web1' } });
  const back = fromErrorData(JSON.parse(JSON.stringify(e)));
  assert.ok(back instanceof StormError);
  assert.equal(back.code, 'not_found');
  assert.equal(back.hint, 'run storm instance list');
  assert.deepEqual(back.details, { name: 'web1' });
});

test('unknown codes and garbage become internal errors, never throw', () => {
  assert.equal(fromErrorData({ code: 'weird', message: 'x' }).code, 'internal');
  assert.equal(fromErrorData(null).code, 'internal');
  assert.equal(fromErrorData('boom').message, 'boom');
});

test('connection refused maps to unreachable', () => {
  const err = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  assert.equal(toStormError(err).code, 'unreachable');
});
