import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StormApi } from '../../../manager/api.ts';
import type { StormEvent } from '../../../manager/events.ts';
import { eventLine, eventMatches } from '../../render/events.ts';
import { runCli } from '../cli.ts';

const ev = (t: string, kind: string, object: string | undefined, message: string, level?: StormEvent['level']): StormEvent => ({ t: `2026-11-26T23:00:0${t}.000Z`, kind, ...(object ? { object } : {}), message, ...(level ? { level } : {}) });
const RECENT = [
  ev('1', 'instance.state', 'instance/web1', 'web1 is running'),
  ev('2', 'host.state', 'hv1', 'host hv1 is offline: unreachable', 'warn'),
  ev('3', 'instance.updated', 'instance/web1', 'web1: wiki 1.0 → 1.1'),
  ev('4', 'operation', 'web2', 'cli: instance.start web2'),
];

test('event filters: a kind or its prefix, an object by name or TYPE/NAME, a least level', () => {
  const pick = (f: Parameters<typeof eventMatches>[0]) => RECENT.filter(eventMatches(f)).map((e) => e.t.slice(18, 19));
  assert.deepEqual(pick({ kind: 'instance' }), ['1', '3']);
  assert.deepEqual(pick({ kind: 'instance.state' }), ['1']);
  assert.deepEqual(pick({ kind: 'inst' }), [], 'a prefix is a whole dotted word');
  assert.deepEqual(pick({ object: 'web1' }), ['1', '3']);
  assert.deepEqual(pick({ object: 'instance/web1' }), ['1', '3']);
  assert.deepEqual(pick({ object: 'web2' }), ['4']);
  assert.deepEqual(pick({ level: 'warn' }), ['2']);
  assert.deepEqual(pick({ level: 'info' }), ['1', '2', '3', '4']);
  assert.equal(eventLine(RECENT[1]!), '2026-11-26 23:00:02  host.state          hv1                       host hv1 is offline: unreachable');
});

/** `storm event list ...` in process against a fake API whose events the test emits; `close()` ends the reader. */
function setup() {
  const listeners = new Set<(e: StormEvent) => void>();
  const api: StormApi = {
    call: async <R>() => RECENT as R,
    subscribe: (fn) => (listeners.add(fn as (e: StormEvent) => void), () => void listeners.delete(fn as (e: StormEvent) => void)),
    close: () => {},
  };
  let out = '';
  let close!: () => void;
  const closed = new Promise<void>((r) => (close = r));
  const run = (argv: string[]) => runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (out += s), stdinIsTty: false, env: {}, closed }, { api: async () => api });
  return { listeners, run, out: () => out, close, emit: (e: StormEvent) => listeners.forEach((l) => l(e)) };
}

test('storm event list: filtered recent events; --follow streams new matching ones until the reader goes, then unsubscribes', async () => {
  const a = setup();
  assert.equal(await a.run(['event', 'list', '--kind', 'instance', '-o', 'name']), 0);
  assert.equal(a.out(), '2026-11-26T23:00:01.000Z instance.state\n2026-11-26T23:00:03.000Z instance.updated\n');

  const b = setup();
  const done = b.run(['event', 'list', '--object', 'web1', '--limit', '1', '--follow', '-o', 'json']);
  while (b.listeners.size === 0) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 20));
  b.emit(ev('5', 'instance.state', 'instance/web1', 'web1 is stopped'));
  b.emit(ev('6', 'instance.state', 'instance/web2', 'web2 is stopped'));
  b.close();
  assert.equal(await done, 0);
  assert.deepEqual(b.out().trim().split('\n').map((l) => JSON.parse(l).message), ['web1: wiki 1.0 → 1.1', 'web1 is stopped']);
  assert.equal(b.listeners.size, 0, 'unsubscribed');

  const c = setup();
  assert.equal(await c.run(['event', 'list', '--level', 'loud']), 2);
  assert.match(c.out(), /--level must be one of info, warn, error/);
});
