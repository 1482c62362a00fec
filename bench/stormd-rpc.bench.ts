/**
 * Cost of our hardened mutual-TLS XML-RPC (role check, CRL, bounded body,
 * faults) against the bare `xmlrpc` package over the same mutual TLS: median
 * call latency on a kept-alive connection, and with a fresh handshake per call.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'node:https';
import xmlrpc from 'xmlrpc';
import { silentLogger } from '../lib/logger.ts';
import { MethodTable } from '../lib/xmlrpc/methods.ts';
import { RpcServer } from '../lib/xmlrpc/server.ts';
import { StormdClient } from '../manager/hosts/client.ts';
import { Pki } from '../manager/pki/pki.ts';
import { Store } from '../manager/store/store.ts';
import { result, type BenchResult, medianMs } from './result.ts';

const N = 300;
const FRESH = 40;

export default async function (): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'storm-bench-rpc-'));
  const store = await Store.open(join(dir, 'db'));
  try {
    const pki = await Pki.open({ dir: join(dir, 'pki'), store, log: silentLogger, managerNames: ['127.0.0.1'] });
    const me = await pki.issueWithKey({ role: 'stormd', commonName: 'bench', san: { ip: ['127.0.0.1'] } });
    const mgr = pki.managerTls();
    const payload = { name: 'web-1', memory: 512, layers: ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)] };

    const methods = new MethodTable().add({ name: 'bench.echo', summary: 'echo', handler: async (p) => p });
    const ours = await RpcServer.start({ host: '127.0.0.1', port: 0, tls: { key: me.key, cert: me.cert, ca: me.ca, crl: pki.crlPem }, methods, log: silentLogger, allow: ['manager'] });
    const client = new StormdClient({ name: 'bench', host: '127.0.0.1', port: ours.address().port, tls: () => mgr, crlNumber: () => pki.crlNumber });

    const bare = await new Promise<xmlrpc.Server>((resolve) => {
      const s = xmlrpc.createSecureServer({ host: '127.0.0.1', port: 0, key: me.key, cert: me.cert, ca: me.ca, requestCert: true, rejectUnauthorized: true } as never, () => resolve(s));
    });
    bare.on('bench.echo', (_e: unknown, params: unknown[], cb: (e: unknown, v: unknown) => void) => cb(null, params[0]));
    const barePort = (bare.httpServer.address() as { port: number }).port;
    const agent = new Agent({ keepAlive: true, key: mgr.key, cert: mgr.cert, ca: mgr.ca });
    const bareClient = xmlrpc.createSecureClient({ host: '127.0.0.1', port: barePort, path: '/', agent, checkServerIdentity: () => undefined } as never);
    const bareCall = () => new Promise((resolve, reject) => bareClient.methodCall('bench.echo', [payload], (e, v) => (e ? reject(e) : resolve(v))));

    await medianMs(20, () => client.call('bench.echo', payload));
    await medianMs(20, bareCall);
    const oursWarm = await medianMs(N, () => client.call('bench.echo', payload));
    const bareWarm = await medianMs(N, bareCall);
    const oursFresh = await medianMs(FRESH, () => (client.reset(), client.call('bench.echo', payload)));
    const freshAgent = () => new Agent({ keepAlive: false, key: mgr.key, cert: mgr.cert, ca: mgr.ca });
    const bareFresh = await medianMs(FRESH, () => new Promise((resolve, reject) => xmlrpc.createSecureClient({ host: '127.0.0.1', port: barePort, path: '/', agent: freshAgent(), checkServerIdentity: () => undefined } as never).methodCall('bench.echo', [payload], (e, v) => (e ? reject(e) : resolve(v)))));

    client.reset();
    agent.destroy();
    await ours.close();
    await new Promise<void>((resolve) => bare.httpServer.close(() => resolve()));
    return [
      result({ name: 'stormd mTLS XML-RPC call, kept-alive (median)', value: oursWarm, unit: 'ms', peer: 'bare xmlrpc over mTLS', peerValue: bareWarm, bar: 'ratio < 1.5', pass: (r) => r !== null && r < 1.5 }),
      result({ name: 'stormd mTLS XML-RPC call with a fresh handshake (median)', value: oursFresh, unit: 'ms', peer: 'bare xmlrpc over mTLS', peerValue: bareFresh, bar: 'ratio < 1.5', pass: (r) => r !== null && r < 1.5 }),
    ];
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
