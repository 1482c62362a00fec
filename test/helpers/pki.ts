import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { silentLogger } from '../../lib/logger.ts';
import { Pki, type PkiOptions } from '../../manager/pki/pki.ts';
import { Store } from '../../manager/store/store.ts';
import { tempDir } from './tmp.ts';

/** A CA in a temp state directory with its own store, closed after the test. */
export async function testPki(t: TestContext, o: Partial<PkiOptions> & { dir?: string } = {}): Promise<{ pki: Pki; store: Store; dir: string }> {
  const dir = o.dir ?? tempDir(t, 'storm-pki-');
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const pki = await Pki.open({ dir: join(dir, 'pki'), store, log: silentLogger, managerNames: ['localhost', '127.0.0.1'], ...o });
  return { pki, store, dir };
}
