/**
 * The appliances' API on a real manager (in process, memory hypervisor):
 * median `config.get` latency on a kept-alive mutual-TLS connection (identity
 * from the certificate, store reads, an audit event per call) against the
 * bare `xmlrpc` package echoing over the same mutual TLS; and calls/s with
 * 4 kept-alive clients.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:https';
import xmlrpc from 'xmlrpc';
import { silentLogger } from '../lib/logger.ts';
import { encodeCall } from '../lib/xmlrpc/codec.ts';
import { managerConfig } from '../manager/config/config.ts';
import { startManager } from '../manager/main.ts';
import { MemoryHostAgent } from '../manager/instances/memory-host-agent.ts';
import type { InstanceRecord } from '../manager/instances/model.ts';
import { median, result, type BenchResult, medianMs } from './result.ts';

const N = 400;

function post(port: number, agent: Agent, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/RPC2', method: 'POST', agent, checkServerIdentity: () => undefined, headers: { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export default async function (): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'storm-bench-api-'));
  const agentH = new MemoryHostAgent('h1');
  const sha = (s: string) => s.padEnd(64, '0').slice(0, 64).replace(/[^0-9a-f]/g, 'a');
  const config = managerConfig({ PATH: process.env.PATH }, { state: join(dir, 'state'), 'enroll-listen': '127.0.0.1:0', 'api-listen': '127.0.0.1:0', 'manager-address': '127.0.0.1' });
  const m = await startManager({
    config, log: silentLogger, path: process.env.PATH ?? '',
    instanceBackends: {
      hosts: { list: async () => [{ name: 'h1', online: true }], agent: () => agentH },
      appliances: { resolve: async () => ({ id: 'wiki', version: '1.0', memoryMiB: 128, vcpus: 1, layers: [{ role: 'substrate', sha256: sha('5ub'), size: 1, url: 'http://x/s' }] }) },
    },
  });
  try {
    const admin = m.api({ actor: 'bench', readOnly: false });
    await admin.call('instance.create', { name: 'web1', appliance: 'wiki' });
    let inst: InstanceRecord;
    for (;;) {
      inst = await admin.call<InstanceRecord>('instance.show', { name: 'web1' });
      if (inst.state === 'running') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const tls = agentH.instanceLayers.get(inst.id)!.tls!;
    const port = m.applianceApi.port!;
    const body = encodeCall('config.get', [{}]);
    const agent = new Agent({ keepAlive: true, maxSockets: 4, ...tls });

    const bare = await new Promise<xmlrpc.Server>((resolve) => {
      const mt = m.pki.managerTls();
      const s = xmlrpc.createSecureServer({ host: '127.0.0.1', port: 0, key: mt.key, cert: mt.cert, ca: mt.ca, requestCert: true, rejectUnauthorized: true } as never, () => resolve(s));
    });
    const canned = { id: inst.id, name: 'web1', fqdn: 'web1.storm.internal', parameters: {} };
    bare.on('config.get', (_e: unknown, _p: unknown[], cb: (e: unknown, v: unknown) => void) => cb(null, canned));
    const barePort = (bare.httpServer.address() as { port: number }).port;
    const bareAgent = new Agent({ keepAlive: true, maxSockets: 4, ...tls });

    await medianMs(30, () => post(port, agent, body));
    await medianMs(30, () => post(barePort, bareAgent, body));
    const ours = await medianMs(N, () => post(port, agent, body));
    const theirs = await medianMs(N, () => post(barePort, bareAgent, body));
    const rate = async (p: number, a: Agent) => {
      const t = process.hrtime.bigint();
      await Promise.all(Array.from({ length: 4 }, async () => { for (let i = 0; i < N / 2; i++) await post(p, a, body); }));
      return (N * 2) / (Number(process.hrtime.bigint() - t) / 1e9);
    };
    // Both warmed at 4 clients, then alternating rounds: the client code shares this process and
    // warms up as it goes, so whichever ran second would gain. The median round counts.
    await rate(port, agent);
    await rate(barePort, bareAgent);
    const rounds: { ours: number[]; bare: number[] } = { ours: [], bare: [] };
    for (let i = 0; i < 3; i++) {
      rounds.ours.push(await rate(port, agent));
      rounds.bare.push(await rate(barePort, bareAgent));
    }
    const oursRate = median(rounds.ours);
    const bareRate = median(rounds.bare);
    agent.destroy();
    bareAgent.destroy();
    await new Promise<void>((resolve) => bare.httpServer.close(() => resolve()));
    return [
      result({ name: 'appliance API config.get, kept-alive (median)', value: ours, unit: 'ms', peer: 'bare xmlrpc over mTLS (canned answer)', peerValue: theirs, bar: 'ratio < 2', pass: (r) => r !== null && r < 2 }),
      result({ name: 'appliance API config.get calls/s (4 kept-alive clients, median of 3 alternating rounds)', value: oursRate, unit: 'calls/s', peer: 'bare xmlrpc over mTLS (canned answer)', peerValue: bareRate, bar: 'ratio >= 0.5', pass: (r) => r !== null && r >= 0.5 }),
    ];
  } finally {
    await m.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
