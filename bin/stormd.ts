/** `stormd`: the hypervisor agent's composition root (argv → config → start). */
import { parseArgs } from 'node:util';
import { parseHostPort } from '../lib/config.ts';
import { readEnv } from '../lib/env.ts';
import { EXIT_CODES, invalid, toStormError } from '../lib/errors.ts';
import { createLogger, type Level } from '../lib/logger.ts';
import { VERSION } from '../lib/version.ts';
import { STORMD_DEFAULT_PORT } from '../stormd/api/methods.ts';
import { join } from '../stormd/join.ts';
import { startStormd } from '../stormd/main.ts';
import { LocalHostAgent } from '../stormd/host-agent.ts';
import { ShellRunner } from '../lib/shell-runner.ts';
import { LibvirtDriver } from '../stormd/hypervisor/libvirt/libvirt-driver.ts';
import { hypervisorMethods } from '../stormd/hypervisor-methods.ts';
import { exportBaseUrl, exportRoute } from '../stormd/layers/export-route.ts';
import { hostname } from 'node:os';
import { loadState } from '../stormd/state.ts';

const USAGE = `stormd ${VERSION}: the STORM hypervisor agent

Usage:
  stormd start [--state DIR] [--listen HOST:PORT] [--libvirt-uri URI] [--bridge BR] [--domain-prefix P] [--log-level L]
        serve the manager over mutual-TLS XML-RPC (default listen 127.0.0.1:${STORMD_DEFAULT_PORT}),
        and exported instance layers to peer stormd at https://HOST:PORT/export/
        --domain-prefix: libvirt names are P + the manager's name (several stormd on one libvirtd)
  stormd join --manager URL --token TOKEN [--state DIR]
        enrol with a manager using the one-time token from \`storm host add\`
  stormd --version | --help

State directory: --state, then STORMD_STATE, then /var/lib/stormd.
Exit codes as storm's: 0 ok, 2 invalid, 4 conflict, 6 unauthorized, 7 unreachable, 9 timeout.
`;

const env = readEnv();
const argv = process.argv.slice(2);

async function main(): Promise<number> {
  if (argv.includes('--version')) return void process.stdout.write(`stormd ${VERSION}\n`), 0;
  if (argv.length === 0 || argv.includes('--help') || argv[0] === 'help') return void process.stdout.write(USAGE), argv.length === 0 ? 2 : 0;
  const cmd = argv[0];
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      args: argv.slice(1),
      options: { state: { type: 'string' }, listen: { type: 'string' }, 'libvirt-uri': { type: 'string' }, 'log-level': { type: 'string' }, manager: { type: 'string' }, token: { type: 'string' }, bridge: { type: 'string' }, 'domain-prefix': { type: 'string' } },
      strict: true,
    }).values as Record<string, string | undefined>;
  } catch (e) {
    throw invalid((e as Error).message, { hint: 'run stormd --help' });
  }
  const state = values.state ?? env.STORMD_STATE ?? '/var/lib/stormd';
  if (cmd === 'join') {
    if (!values.manager || !values.token) throw invalid('stormd join needs --manager URL and --token TOKEN', { hint: 'both are printed by `storm host add NAME ADDRESS` on the manager' });
    const r = await join({ manager: values.manager, token: values.token, state });
    process.stdout.write(`joined as ${r.name} (certificate ${r.serial}, expires ${r.notAfter}); state ${state}\n`);
    return 0;
  }
  if (cmd === 'start') {
    const listen = values.listen ?? env.STORMD_LISTEN ?? `127.0.0.1:${STORMD_DEFAULT_PORT}`;
    const hp = parseHostPort(listen);
    if (!hp) throw invalid(`--listen: expected HOST:PORT, got "${listen}"`);
    const level = (values['log-level'] ?? env.STORMD_LOG_LEVEL ?? 'info') as Level;
    if (!['debug', 'info', 'warn', 'error'].includes(level)) throw invalid(`--log-level: expected debug|info|warn|error, got "${level}"`);
    const log = createLogger({ level, base: { svc: 'stormd' } });
    const libvirtUri = values['libvirt-uri'] ?? env.STORMD_LIBVIRT_URI ?? 'qemu:///system';
    // The hypervisor side: layer cache, instance layers and libvirt behind layer.*, instanceLayer.*, domain.*.
    const { id } = loadState(state);
    const driver = new LibvirtDriver({ uri: libvirtUri });
    // Guests attach to --bridge when a request names none (no NIC when neither does).
    const bridge = values.bridge ?? env.STORMD_BRIDGE;
    // Our own certificate, read at each use so a renewed one (tls.install) counts at once: presented when fetching
    // layers from the manager's layer server and when pulling another stormd's exported instance layer (migration).
    const tls = { get ca() { return loadState(state).tls.ca; }, get cert() { return loadState(state).tls.cert; }, get key() { return loadState(state).tls.key; } };
    const peerTls = () => ({ key: tls.key, cert: tls.cert, ca: tls.ca });
    const domainPrefix = values['domain-prefix'] ?? env.STORMD_DOMAIN_PREFIX;
    // mke2fs, filefrag and qemu-img for instance layers, started by small shells instead of forking this process.
    const shells = new ShellRunner({ dir: state });
    const agent = new LocalHostAgent({ host: id.name, stateDir: state, driver, fetch: { tls }, peerTls, run: (f, a, o) => shells.run(f, a, o), ...(bridge ? { defaultBridge: bridge } : {}), ...(domainPrefix ? { domainPrefix } : {}) });
    let d;
    try {
      // Exported instance layers are served beside the RPC path, to peers with a stormd or manager certificate.
      d = await startStormd({ state, host: hp.host, port: hp.port, libvirtUri, path: env.PATH ?? '', log, methods: hypervisorMethods(agent), files: exportRoute((i, sha) => agent.exportedFile(i, sha)) });
    } catch (e) {
      await driver.close();
      throw e;
    }
    const a = d.server.address();
    agent.serveExportsAt(exportBaseUrl(hp.host, a.port, hostname()));
    process.stdout.write(`stormd ready: ${d.name} listening on ${a.host}:${a.port}\n`);
    // Guests that ran on while the bridge was made again (storm up restarted) get their ports back.
    void agent.reattachNetworks().then(
      (fixed) => fixed.length && log.info('guests back on their bridges', { fixed }),
      (e: Error) => log.warn('could not put running guests back on their bridges', { error: e.message }),
    );
    const running = d;
    await new Promise<void>((resolve) => {
      const stop = () => void running.stop().finally(() => driver.close()).finally(() => shells.close()).finally(resolve);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  }
  throw invalid(`unknown command "${cmd}"`, { hint: 'run stormd --help' });
}

try {
  process.exitCode = await main();
} catch (e) {
  const err = toStormError(e);
  process.stderr.write(`error: ${err.message}\n${err.hint ? `  hint: ${err.hint}\n` : ''}`);
  process.exitCode = EXIT_CODES[err.code] ?? 1;
}
