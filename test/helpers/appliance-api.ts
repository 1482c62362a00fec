/**
 * A manager in this process with memory hypervisors and a two-appliance
 * catalog, its appliance API on a free loopback port, DNS on another; and a
 * Python `xmlrpc.client` caller (the client instances actually use).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { notFound } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import { silentLogger } from '../../lib/logger.ts';
import { managerConfig } from '../../manager/config/config.ts';
import { startManager, type Manager } from '../../manager/main.ts';
import { MemoryHostAgent } from '../../manager/instances/memory-host-agent.ts';
import type { ApplianceSpec, InstanceRecord } from '../../manager/instances/model.ts';
import { sha } from '../conformance/host-agent.case.ts';
import { freePort, freeTcpUdpPort } from './ports.ts';
import { STORM_BIN } from './storm.ts';
import { tempDir } from './tmp.ts';

const app = (id: string): ApplianceSpec => ({
  id, version: '1.0', memoryMiB: 128, vcpus: 1,
  layers: [
    { role: 'substrate', sha256: sha('sub'), size: 100, url: 'http://x/sub' },
    { role: 'appliance', sha256: sha(id), size: 50, url: `http://x/${id}` },
  ],
});

export interface ApiLab {
  m: Manager;
  state: string;
  dir: string;
  agent: MemoryHostAgent;
  dnsPort: number;
  /** Environment for `storm` CLI processes talking to this manager. */
  env: NodeJS.ProcessEnv;
  /** Create and provision an instance as the admin would; resolves when it runs. */
  create(name: string, params?: Record<string, string>): Promise<InstanceRecord>;
  /** Wait until an instance is running (provisioning is background work). */
  running(name: string): Promise<InstanceRecord>;
  /** Write an instance's /etc/storm files from its instance layer into DIR/NAME-ID/etc/storm; returns that path. */
  etc(inst: InstanceRecord): string;
}

export async function startApiLab(t: TestContext, extra: Record<string, unknown> = {}): Promise<ApiLab> {
  const dir = tempDir(t, 'storm-api-');
  const state = join(dir, 'state');
  const dnsPort = await freeTcpUdpPort();
  const config = managerConfig({ PATH: process.env.PATH }, {
    state, 'enroll-listen': '127.0.0.1:0', 'api-listen': '127.0.0.1:0', 'manager-address': '127.0.0.1', 'dns-listen': `127.0.0.1:${dnsPort}`,
    // The directory's servers on free ports (LDAPS off): labs run side by side.
    'ldap-listen': `127.0.0.1:${await freePort()}`, 'ldaps-listen': '', 'kdc-listen': `127.0.0.1:${await freeTcpUdpPort()}`,
    'kadmind-listen': `127.0.0.1:${await freePort()}`, 'kpasswd-listen': `127.0.0.1:${await freeTcpUdpPort()}`,
    ...extra,
  });
  const agent = new MemoryHostAgent('h1');
  const m = await startManager({
    config, log: silentLogger, path: process.env.PATH ?? '',
    instanceBackends: {
      hosts: { list: async () => [{ name: 'h1', online: true }], agent: () => agent },
      appliances: { resolve: async (ref: string) => { const id = ref.split('@')[0]!; if (id === 'wiki' || id === 'mail') return app(id); throw notFound(`appliance "${ref}" not found`); } },
    },
  });
  t.after(() => m.stop());
  const api = m.api({ actor: 'test', readOnly: false });
  const running = async (name: string) => {
    for (;;) {
      const i = await api.call<InstanceRecord>('instance.show', { name });
      if (i.state === 'running') return i;
      if (i.state === 'failed') throw new Error(`${name} failed: ${i.error}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    m, state, dir, agent, dnsPort,
    env: { ...process.env, STORM_STATE: state },
    async create(name, params = {}) {
      await api.call('instance.create', { name, appliance: 'wiki', params });
      return running(name);
    },
    running,
    etc(inst) {
      // What provisioning put in the instance layer: the API URL in files, the identity under tls/.
      const layer = agent.instanceLayers.get(inst.id);
      const out = join(dir, `${inst.name}-${inst.id}`, 'etc', 'storm');
      mkdirSync(join(out, 'tls'), { recursive: true });
      const bodies: Record<string, string | undefined> = {
        manager: layer?.files['/etc/storm/manager'],
        'tls/instance.key': layer?.tls?.key,
        'tls/instance.crt': layer?.tls?.cert,
        'tls/ca.crt': layer?.tls?.ca,
      };
      for (const [f, body] of Object.entries(bodies)) {
        if (body === undefined) throw new Error(`instance layer of ${inst.name} has no /etc/storm/${f}`);
        writeFileSync(join(out, f), body, { mode: f.endsWith('.key') ? 0o600 : 0o644 });
      }
      return out;
    },
  };
}

const CALLER = String.raw`
import http.client, json, ssl, sys, xmlrpc.client
a = json.loads(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = True
ctx.load_verify_locations(a["ca"])
if a.get("cert"):
    ctx.load_cert_chain(a["cert"], a["key"])
proxy = xmlrpc.client.ServerProxy(a["url"], context=ctx)
try:
    fn = getattr(proxy, a["method"])
    r = fn(*a["params"])
    print(json.dumps({"ok": r}, default=str))
except xmlrpc.client.Fault as f:
    print(json.dumps({"fault": f.faultCode, "error": json.loads(f.faultString)}))
except xmlrpc.client.ProtocolError as e:
    print(json.dumps({"refused": "http %d" % e.errcode}))
except (ssl.SSLError, OSError, http.client.HTTPException) as e:
    print(json.dumps({"refused": type(e).__name__ + ": " + str(e)}))
`;

export type PyResult = { ok: unknown } | { fault: number; error: { code: string; message: string; hint?: string } } | { refused: string };

/** One call with Python's xmlrpc.client; cert/key omitted = no client certificate. */
export async function pyCall(o: { url: string; ca: string; cert?: string; key?: string; method: string; params?: unknown[] }): Promise<PyResult> {
  // Asynchronous: the manager answering it runs in this process.
  const r = await run('python3', ['-c', CALLER, JSON.stringify({ params: [], ...o })], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`python failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as PyResult;
}

/** `storm ARGS` as a separate process against the in-process manager (asynchronously, for the same reason). */
export async function stormAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await run(process.execPath, [STORM_BIN, ...args], { env, timeoutMs: 60_000, input: '' });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Write PEM material to files for Python. */
export function pemFiles(dir: string, name: string, m: { key: string; cert: string }): { key: string; cert: string } {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  writeFileSync(key, m.key, { mode: 0o600 });
  writeFileSync(cert, m.cert);
  return { key, cert };
}
