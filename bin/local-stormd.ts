/**
 * The embedded default's hypervisor: a `stormd start` child on loopback,
 * enrolled as host "local" with a token on first run (state under
 * STATE/stormd), stopped with the manager.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../lib/exec.ts';
import type { Logger } from '../lib/logger.ts';
import type { HostAddResult, HostRecord } from '../manager/hosts/hosts.ts';
import type { Manager } from '../manager/main.ts';
import { isEnrolled } from '../stormd/state.ts';

import { freeLoopbackPort } from '../lib/net.ts';

const STORMD = fileURLToPath(new URL('./stormd.js', import.meta.url));
export const LOCAL_HOST = 'local';


export async function startLocalStormd(m: Manager, log: Logger, bridge?: string): Promise<{ stop: () => Promise<void> }> {
  const api = m.api({ actor: 'storm-up', readOnly: false });
  const state = join(m.config.state, 'stormd');
  let rec = (await api.call<HostRecord[]>('host.list')).find((h) => h.name === LOCAL_HOST);
  if (!isEnrolled(state) || !rec?.certSerial) {
    if (!m.joinUrl) throw new Error('the enrolment endpoint is not serving; cannot enrol the local stormd');
    if (rec) await api.call('host.remove', { name: LOCAL_HOST });
    const added = await api.call<HostAddResult>('host.add', { name: LOCAL_HOST, address: `127.0.0.1:${await freeLoopbackPort()}` });
    // Asynchronously: this process serves the enrolment the child makes.
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = spawn(process.execPath, [STORMD, 'join', '--manager', m.joinUrl as string, '--token', added.token, '--state', state], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d));
      c.stderr.on('data', (d: Buffer) => (out += d));
      c.on('exit', (code) => resolve({ code, out }));
    });
    if (r.code !== 0) throw new Error(`local stormd join failed: ${r.out.trim()}`);
    rec = added.host;
  }
  const out = openSync(join(m.config.state, 'stormd.log'), 'a');
  const child: ChildProcess = spawn(process.execPath, [STORMD, 'start', '--state', state, '--listen', rec.address, '--libvirt-uri', m.config.libvirtUri, ...(bridge ? ['--bridge', bridge] : [])], { stdio: ['ignore', out, out] });
  child.on('exit', (code, sig) => log.warn('local stormd exited', { code, signal: sig }));
  log.info('local stormd started', { pid: child.pid, listen: rec.address });
  return {
    stop: () => stopChild(child, 5000),
  };
}
