import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CatalogEntry } from '../../manager/channels/catalog.ts';
import { catalogRows } from './channels.ts';

const entry = (id: string, shas: string[]) => ({ channel: 'c', id, version: '1', blobs: shas.map((sha256) => ({ sha256, size: 1, what: id, urls: [] })) }) as unknown as CatalogEntry;

test('catalogRows: files in the image store, and files shared with other appliances', () => {
  const rows = catalogRows([entry('web', ['s', 'w', 'k']), entry('mail', ['s', 'm', 'k']), entry('solo', ['x']), entry('empty', [])], [{ sha256: 's' }, { sha256: 'k' }, { sha256: 'x' }]);
  assert.deepEqual(rows.map((r) => [r.id, r.cached, r.shared]), [
    ['web', '2/3', '2 of 3'],
    ['mail', '2/3', '2 of 3'],
    ['solo', 'all', 'none'],
    ['empty', '', 'none'],
  ]);
  assert.equal(catalogRows([entry('web', ['w'])], [])[0]!.cached, 'none');
  // A file listed twice by one entry is one file, and is not "shared" with itself.
  assert.deepEqual(catalogRows([entry('dup', ['d', 'd'])], [])[0]!.shared, 'none');
});
