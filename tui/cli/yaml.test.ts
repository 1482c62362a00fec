import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toYaml } from './yaml.ts';

test('yaml output for nested data, quoting what would be ambiguous', () => {
  const y = toYaml([{ name: 'web1', state: 'running', ports: [80, 443], tags: [], meta: { note: 'a: b', n: '42' } }]);
  assert.equal(y, '-\n  name: web1\n  state: running\n  ports:\n    - 80\n    - 443\n  tags: []\n  meta:\n    note: "a: b"\n    n: "42"\n');
});
