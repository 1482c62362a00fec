import { test } from 'node:test';
import assert from 'node:assert/strict';
import { showText } from './appliance.ts';

test('appliance show: the files line up whatever the length of their names', () => {
  const blob = (what: string, c: string, size: number) => ({ what, sha256: c.repeat(64), size, urls: [] });
  const text = showText({
    channel: 'example', id: 'wiki', version: '1.0', title: 'wiki', description: '', kind: 'layered', pubDate: '2026-11-26', xmlUrl: 'http://x/wiki.xml',
    appliance: { memoryMiB: 128, vcpus: 1, services: {}, parameters: [] },
    blobs: [blob('substrate busybox-substrate 1.0', 'a', 1 << 20), blob('deployment wiki-example-corp 1.0', 'b', 2 << 20), blob('kernel', 'c', 3 << 20)],
    stored: [true, false, true],
  } as never);
  const files = text.split('\n').slice(text.split('\n').indexOf('  files:') + 1).filter(Boolean);
  assert.equal(files.length, 3);
  // Each digest starts in the same column.
  assert.deepEqual(new Set(files.map((l) => l.search(/[abc]{16}/))).size, 1, text);
});
