/** `storm up`'s local hypervisor: enrolled on first start, reused after, stopped with the manager. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { managerConfig } from '../../manager/config/config.ts';
import type { HostRecord } from '../../manager/hosts/hosts.ts';
import { startManager } from '../../manager/main.ts';
import { LOCAL_HOST, startLocalStormd } from '../../bin/local-stormd.ts';
import { tempDir } from '../helpers/tmp.ts';

test('the embedded default enrols a local stormd once and stops it with the manager', async (t) => {
  const state = join(tempDir(t, 'storm-local-'), 'm');
  const config = managerConfig({ PATH: process.env.PATH }, { state, 'enroll-listen': '127.0.0.1:0', 'libvirt-uri': 'test:///default' });
  const run = async () => {
    const m = await startManager({ config, log: silentLogger, path: process.env.PATH ?? '' });
    const local = await startLocalStormd(m, silentLogger);
    const api = m.api({ actor: 'test', readOnly: false });
    let h: HostRecord | undefined;
    for (let i = 0; i < 100; i++) {
      h = await api.call<HostRecord>('host.show', { name: LOCAL_HOST }).catch(() => undefined);
      if (h?.state === 'online') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await local.stop();
    await m.stop();
    return h!;
  };
  const first = await run();
  assert.equal(first.state, 'online', JSON.stringify(first.lastError));
  assert.equal(first.info?.libvirtUri, 'test:///default');
  const second = await run();
  assert.equal(second.state, 'online');
  assert.equal(second.certSerial, first.certSerial, 'a restart reuses the enrolment');
  assert.equal(second.address, first.address);
});
