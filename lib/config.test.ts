import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../test/helpers/tmp.ts';
import { loadConfig, parseHostPort, type Schema } from './config.ts';
import { StormError } from './errors.ts';

interface C { state: string; port: number; debug: boolean }
const schema: Schema<C> = {
  state: { type: 'string', default: './.storm', env: 'STORM_STATE', flag: 'state', doc: 'state dir' },
  port: { type: 'int', default: 1, env: 'STORM_PORT', flag: 'port', doc: 'port', validate: (p) => (p < 1 || p > 65535 ? 'must be 1..65535' : undefined) },
  debug: { type: 'bool', default: false, doc: 'debug' },
};

test('defaults < file < env < flags, and the result is frozen', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ state: '/from/file', port: 10, debug: true }));
  const c = loadConfig(schema, { file, env: { STORM_PORT: '20' }, flags: { state: '/from/flag' } });
  assert.deepEqual({ ...c }, { state: '/from/flag', port: 20, debug: true });
  assert.ok(Object.isFrozen(c));
});

test('bad values name their source', (t) => {
  assert.throws(() => loadConfig(schema, { env: { STORM_PORT: 'abc' } }), (e: StormError) => e.code === 'invalid' && /STORM_PORT/.test(e.message));
  assert.throws(() => loadConfig(schema, { flags: { port: '70000' } }), /1\.\.65535/);
  const dir = tempDir(t);
  writeFileSync(join(dir, 'c.json'), '{"prot": 3}');
  assert.throws(() => loadConfig(schema, { file: join(dir, 'c.json') }), /unknown key "prot"/);
  writeFileSync(join(dir, 'd.json'), '{nope');
  assert.throws(() => loadConfig(schema, { file: join(dir, 'd.json') }), /not valid JSON/);
});

test('parseHostPort', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:8443'), { host: '127.0.0.1', port: 8443 });
  assert.deepEqual(parseHostPort('[::1]:53'), { host: '::1', port: 53 });
  assert.equal(parseHostPort('nohost'), undefined);
  assert.equal(parseHostPort('h:99999'), undefined);
});
