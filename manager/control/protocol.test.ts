import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { ControlClient } from './client.ts';
import { LineReader, MAX_LINE, MAX_RESPONSE_LINE } from './protocol.ts';

test('LineReader: lines split across chunks, several per chunk, blank lines dropped', () => {
  const r = new LineReader(64);
  assert.deepEqual(r.push('{"a":'), []);
  assert.deepEqual(r.push('1}\n{"b":2}\n\n{"c"'), ['{"a":1}', '{"b":2}']);
  assert.deepEqual(r.push(':3}'), []);
  assert.deepEqual(r.push('\n'), ['{"c":3}']);
  assert.deepEqual(r.push(''), []);
});

test('LineReader: a long line in many small chunks arrives whole', () => {
  const r = new LineReader(MAX_RESPONSE_LINE);
  const line = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ i, name: `instance-${i}` })));
  const got: string[] = [];
  for (let i = 0; i < line.length; i += 1000) got.push(...r.push(line.slice(i, i + 1000)));
  got.push(...r.push('\n'));
  assert.equal(got.length, 1);
  assert.equal(got[0], line);
});

test('LineReader: over the bound is invalid, whether the line is finished or not; the reader starts clean after', () => {
  const r = new LineReader(10);
  assert.throws(() => r.push('x'.repeat(11)), (e: unknown) => e instanceof StormError && e.code === 'invalid');
  assert.deepEqual(r.push('ok\n'), ['ok']);
  const r2 = new LineReader(10);
  r2.push('x'.repeat(8));
  assert.throws(() => r2.push('xxxx\n'), (e: unknown) => e instanceof StormError && e.code === 'invalid');
  assert.ok(MAX_LINE < MAX_RESPONSE_LINE);
});

/** A fake manager on a unix socket that answers every request with `answer(id)`. */
async function fakeManager(t: import('node:test').TestContext, answer: (id: number) => string): Promise<string> {
  const path = join(tempDir(t), 'control.sock');
  const conns = new Set<import('node:net').Socket>();
  const srv = createServer((s) => {
    conns.add(s);
    s.setEncoding('utf8');
    const r = new LineReader();
    s.on('data', (c: string) => {
      for (const l of r.push(c)) s.write(answer((JSON.parse(l) as { id: number }).id));
    });
    s.on('error', () => {});
  });
  await new Promise<void>((res) => srv.listen(path, res));
  t.after(() => new Promise<void>((res) => (conns.forEach((s) => s.destroy()), srv.close(() => res()))));
  return path;
}

test('ControlClient: an answer larger than a request may be (a list of 10,000 instances) comes through', async (t) => {
  const big = Array.from({ length: 10_000 }, (_, i) => ({ id: i.toString(16).padStart(12, '0'), name: `wiki-${i}`, host: `hv${i % 100}`, state: 'running', pad: 'x'.repeat(500) }));
  const path = await fakeManager(t, (id) => JSON.stringify({ id, result: big }) + '\n');
  const c = await ControlClient.connect(path);
  t.after(() => c.close());
  const got = await c.call<unknown[]>('instance.list');
  assert.ok(JSON.stringify(big).length > MAX_LINE, 'the answer is over the request bound');
  assert.deepEqual(got, big);
});

test('ControlClient: a malformed answer fails the call with a code, not the process', async (t) => {
  const path = await fakeManager(t, () => 'this is not json\n');
  const c = await ControlClient.connect(path);
  t.after(() => c.close());
  await assert.rejects(c.call('instance.list'), (e: unknown) => e instanceof StormError && e.code === 'invalid');
  await assert.rejects(c.call('instance.list'), (e: unknown) => e instanceof StormError && e.code === 'unreachable');
});
