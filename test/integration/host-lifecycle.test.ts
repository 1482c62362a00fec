/**
 * In one process, the real parts: CA, enrolment endpoint, stormd's server and
 * the manager's host poller. Renewal before expiry, CRL distribution, and the
 * untrusted / offline states.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join as pathJoin } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { EventBus } from '../../manager/events.ts';
import { EnrollServer } from '../../manager/hosts/enroll-server.ts';
import { Hosts } from '../../manager/hosts/hosts.ts';
import { join } from '../../stormd/join.ts';
import { startStormd } from '../../stormd/main.ts';
import { freePort } from '../helpers/ports.ts';
import { testPki } from '../helpers/pki.ts';

test('renewal, CRL push, and host states through the real stormd server', async (t) => {
  // stormd certificates live ~9 s here, so every poll finds them due for renewal.
  const { pki, store, dir } = await testPki(t, { validity: { stormd: 0.0001 } });
  let url: string | undefined;
  const hosts = new Hosts({ store, pki, bus: new EventBus(), log: silentLogger, tokenTtlSeconds: 600, pollSeconds: 3600, joinUrl: () => url });
  t.after(() => hosts.stop());
  const es = await EnrollServer.start({ host: '127.0.0.1', port: 0, tls: () => pki.managerTls(), log: silentLogger, enroll: (tok, csr) => hosts.enroll(tok, csr) });
  t.after(() => es.close());
  url = `https://127.0.0.1:${es.port}`;

  const port = await freePort();
  const added = await hosts.add('hv1', `127.0.0.1:${port}`);
  const state = pathJoin(dir, 'stormd');
  await join({ manager: url, token: added.token, state });
  const d = await startStormd({ state, host: '127.0.0.1', port, libvirtUri: 'test:///default', path: process.env.PATH ?? '', log: silentLogger });
  t.after(() => d.stop());

  const first = (await hosts.list())[0]!.certSerial!;
  // Polls at once (a scheduled one, `storm host show`) take turns: renewals never race.
  const [polled, next] = await Promise.all([hosts.poll('hv1'), hosts.poll('hv1')]);
  assert.equal(polled.state, 'online', JSON.stringify(polled.lastError));
  assert.equal(next.state, 'online', JSON.stringify(next.lastError));
  assert.notEqual(next.certSerial, first, 'renewed before expiry');
  assert.notEqual(polled.certSerial, first, 'renewed before expiry');
  assert.ok(pki.isRevoked(first), 'the superseded certificate is revoked');
  assert.match(readFileSync(pathJoin(state, 'pki', 'cert.pem'), 'utf8'), /BEGIN CERTIFICATE/);
  // stormd now serves the new certificate and has the CRL that revokes the old one.
  const again = await hosts.poll('hv1');
  assert.equal(again.state, 'online', JSON.stringify(again.lastError));
  assert.ok(again.info!.crlNumber >= pki.crlNumber - 1);
  // Each poll's CPU figure joins the host's series (the console's sparkline), oldest first.
  const cpu = again.info!.cpuPercent;
  assert.ok(typeof cpu === 'number' && cpu >= 0 && cpu <= 100, `cpuPercent ${cpu}`);
  // One more figure than before this poll (how many came before depends on whether the poll that
  // enrolment starts reached stormd before it listened: a CI flake when this said 2).
  assert.equal(again.cpuHistory?.length, (next.cpuHistory?.length ?? 0) + 1);
  assert.deepEqual(again.cpuHistory?.slice(0, -1), next.cpuHistory ?? []);
  assert.equal(again.cpuHistory?.at(-1), cpu);

  // A revocation reaches stormd: its CRL number catches up with ours.
  const inst = await pki.issueInstance('web-1');
  await pki.revoke(inst.serial);
  await hosts.pushCrlAll();
  assert.equal(d.server.crlNumber, pki.crlNumber);

  // Stopped stormd: offline, with the reason as data.
  await d.stop();
  const off = await hosts.poll('hv1');
  assert.equal(off.state, 'offline');
  assert.equal(off.lastError?.code, 'unreachable');
  assert.deepEqual(off.cpuHistory, again.cpuHistory, 'an offline host keeps its series');

  // A server with another host's certificate on that address: untrusted.
  const other = await hosts.add('hv2', `127.0.0.1:${await freePort()}`);
  const state2 = pathJoin(dir, 'stormd2');
  await join({ manager: url, token: other.token, state: state2 });
  const impostor = await startStormd({ state: state2, host: '127.0.0.1', port, libvirtUri: 'test:///default', path: process.env.PATH ?? '', log: silentLogger });
  t.after(() => impostor.stop());
  const un = await hosts.poll('hv1');
  assert.equal(un.state, 'untrusted', JSON.stringify(un));
  assert.match(un.lastError?.message ?? '', /expected hv1/);
});
