/**
 * `storm`: composition root. Builds the frozen config and wires the manager
 * and the console together; the only file (with stormd.ts) that imports both.
 */
import { openSync, mkdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { readEnv } from '../lib/env.ts';
import { createLogger, type Level } from '../lib/logger.ts';
import { controlSocketPath } from '../lib/paths.ts';
import { managerConfig } from '../manager/config/config.ts';
import type { Logger } from '../lib/logger.ts';
import type { Manager } from '../manager/main.ts';
import type { GuestNetwork } from './guest-network.ts';
import type { SshServer } from '../tui/ssh/server.ts';
import { runCli } from '../tui/cli/cli.ts';
import type { CommandContext, CommandDef, OptionSpec } from '../tui/cli/command.ts';
import { COMMANDS } from '../tui/cli/commands/index.ts';

const env = readEnv();

// The manager, the console and the SSH server load only for the commands that run them:
// every other `storm` call is a short-lived client whose start-up is its latency.
const lazy = {
  manager: () => import('../manager/main.ts'),
  console: () => import('../tui/console/app.ts'),
  ssh: () => import('../tui/ssh/server.ts'),
  control: () => import('../manager/control/client.ts'),
  embedded: () => import('./embedded.ts'),
  guestNetwork: () => import('./guest-network.ts'),
};

const MANAGER_OPTIONS: Record<string, OptionSpec> = {
  'log-level': { type: 'string', doc: 'debug | info | warn | error' },
  'libvirt-uri': { type: 'string', doc: 'libvirt URI for the local hypervisor' },
  'ssh-listen': { type: 'string', doc: 'admin SSH server HOST:PORT' },
  kernel: { type: 'string', doc: 'guest kernel image' },
  'manager-address': { type: 'string', doc: "the manager's address for guests (storm.local)" },
  'manager-names': { type: 'string', doc: "names and IPs in the manager's certificate (comma-separated)" },
  'dns-listen': { type: 'string', doc: 'DNS server HOST:PORT (udp+tcp); empty: off' },
  'dns-domain': { type: 'string', doc: "the cloud's DNS domain" },
  'dns-upstream': { type: 'string', doc: 'forward other names to HOST:PORT; empty: REFUSED' },
  'dhcp-interface': { type: 'string', doc: 'interface DHCP serves (run in its namespace); empty: off' },
  'dhcp-subnet': { type: 'string', doc: 'guest network CIDR' },
  'enroll-listen': { type: 'string', doc: 'stormd enrolment endpoint HOST:PORT' },
  'ldap-listen': { type: 'string', doc: 'LDAP HOST:PORT (empty = off)' },
  'ldaps-listen': { type: 'string', doc: 'LDAPS HOST:PORT (empty = off)' },
  'ldap-base-dn': { type: 'string', doc: 'LDAP base DN (default from the domain)' },
  'krb-realm': { type: 'string', doc: 'Kerberos realm (default: upper-cased domain)' },
  'kdc-listen': { type: 'string', doc: 'Kerberos KDC HOST:PORT' },
  'kadmind-listen': { type: 'string', doc: 'kadmind HOST:PORT' },
  'kpasswd-listen': { type: 'string', doc: 'kpasswd HOST:PORT' },
  'api-listen': { type: 'string', doc: "appliances' XML-RPC API HOST:PORT (mutual TLS); empty: off" },
  'api-create-limit': { type: 'string', doc: 'live instances one instance may create over the API' },
};

function configFrom(ctx: CommandContext) {
  const flags: Record<string, unknown> = { state: ctx.state };
  for (const k of Object.keys(MANAGER_OPTIONS)) if (ctx.opts[k] !== undefined) flags[k] = ctx.opts[k];
  return managerConfig(env, flags);
}

/** Run until SIGINT/SIGTERM/SIGHUP (its terminal closed: an SSH session dropped), then stop exactly once and exit. */
function untilSignal(stop: () => Promise<void>): Promise<never> {
  return new Promise(() => {
    let stopping = false;
    const handler = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      void stop().finally(() => {
        if (sig !== 'SIGHUP') process.exit(0);
        // Its terminal is gone: node's exit would abort restoring it (EIO). Die of the hangup instead.
        process.removeAllListeners('SIGHUP');
        process.kill(process.pid, 'SIGHUP');
      });
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    process.on('SIGHUP', handler);
  });
}

/**
 * The admin SSH server on config.sshListen. A port in use does not stop the
 * manager (the control socket and local console still work): it is logged
 * and reported in the ready line, and `storm doctor` shows the port.
 */
async function startSsh(m: Manager, log: Logger): Promise<{ ssh?: SshServer; note: string }> {
  try {
    const { SshServer } = await lazy.ssh();
    const ssh = await SshServer.start({
      listen: m.config.sshListen,
      state: m.config.state,
      api: (ctx) => m.api(ctx),
      log: log.child({ part: 'ssh' }),
      env,
      commands: [...HOST_COMMANDS, ...COMMANDS],
    });
    return { ssh, note: `ssh ${ssh.address}` };
  } catch (e) {
    log.error('ssh server not started', { listen: m.config.sshListen, error: (e as Error).message });
    return { note: `ssh unavailable (${(e as Error).message})` };
  }
}

/** blessed and ssh2 run in the manager: an unexpected throw is logged, sessions stay up. */
function keepAlive(log: Logger): void {
  process.on('uncaughtException', (e) => log.error('uncaught exception', { error: e.message, stack: e.stack }));
  process.on('unhandledRejection', (e) => log.error('unhandled rejection', { error: String((e as Error)?.message ?? e) }));
}

/** The embedded default's guest network (DESIGN.md §7). */
const GUEST_NETNS = 'storm-lab';
const GUEST_BRIDGE = 'stormbr0';
const GUEST_ADDRESS = '10.77.0.1/16';


const HOST_COMMANDS: CommandDef[] = [
  {
    noun: 'manager',
    verb: 'start',
    summary: 'run the manager in the foreground (owns the state directory)',
    options: MANAGER_OPTIONS,
    hostOnly: true,
    run: async (ctx) => {
      const config = configFrom(ctx);
      const log = createLogger({ level: config.logLevel as Level });
      const { startManager } = await lazy.manager();
      const m = await startManager({ config, log, path: env.PATH ?? '' });
      keepAlive(log);
      const { ssh, note } = await startSsh(m, log);
      process.stdout.write(`storm manager ready: state ${config.state}, control ${controlSocketPath(config.state)}, ${note}\n`);
      await untilSignal(async () => {
        await ssh?.close();
        await m.stop();
      });
    },
  },
  {
    noun: 'up',
    verb: '',
    summary: 'the embedded default: manager, local hypervisor, example channel, guest network (root) and the console (q or Ctrl-C stops all)',
    options: {
      ...MANAGER_OPTIONS,
      netns: { type: 'string', doc: `guest network namespace (default ${GUEST_NETNS}; '' = no guest network)` },
      bridge: { type: 'string', doc: `address-less bridge guests attach to (default ${GUEST_BRIDGE})` },
    },
    hostOnly: true,
    run: async (ctx) => {
      const netns = typeof ctx.opts.netns === 'string' ? ctx.opts.netns : GUEST_NETNS;
      const bridge = typeof ctx.opts.bridge === 'string' ? ctx.opts.bridge : GUEST_BRIDGE;
      const [{ embeddedConfig, startEmbedded }, { createConsole }, { createGuestNetwork, guestNetworkUnavailable }] = await Promise.all([lazy.embedded(), lazy.console(), lazy.guestNetwork()]);
      // The guest network needs root; without it storm up says what it skipped and carries on.
      let skipped = netns ? guestNetworkUnavailable(process.getuid?.() ?? -1) : 'disabled (--netns \'\')';
      const state = configFrom(ctx).state;
      mkdirSync(state, { recursive: true, mode: 0o700 });
      const net: GuestNetwork | undefined = skipped
        ? undefined
        : await createGuestNetwork({ netns, bridge, address: GUEST_ADDRESS, ownerFile: join(state, 'guest-network.json') }).catch((e: Error) => void (skipped = e.message));
      if (skipped) process.stderr.write(`storm up: guest network skipped: ${skipped}\n`);
      const flags: Record<string, unknown> = { state: ctx.state };
      for (const k of Object.keys(MANAGER_OPTIONS)) if (ctx.opts[k] !== undefined) flags[k] = ctx.opts[k];
      const config = await embeddedConfig(env, flags, net);
      mkdirSync(config.state, { recursive: true, mode: 0o700 });
      // The console owns the terminal, so the manager logs to a file.
      const fd = openSync(join(config.state, 'manager.log'), 'a');
      const log = createLogger({ level: config.logLevel as Level, write: (l) => void writeSync(fd, l) });
      const embedded = await startEmbedded({ config, log, path: env.PATH ?? '', ...(net ? { net } : {}), ...(skipped ? { skipped } : {}) }).catch(async (e: Error) => {
        await net?.remove();
        throw e;
      });
      const m = embedded.m;
      keepAlive(log);
      const { ssh } = await startSsh(m, log);
      const stopAll = async () => {
        await ssh?.close();
        await embedded.stop();
        await net?.remove();
      };
      createConsole({
        api: m.api({ actor: 'console', readOnly: false }),
        input: process.stdin,
        output: process.stdout,
        terminal: env.TERM,
        onExit: () => void stopAll().finally(() => process.exit(0)),
      });
      await untilSignal(stopAll);
    },
  },
  {
    noun: 'tui',
    verb: '',
    summary: 'open the console against the running manager',
    hostOnly: true,
    run: async (ctx) => {
      const [{ ControlClient }, { createConsole }] = await Promise.all([lazy.control(), lazy.console()]);
      const api = await ControlClient.connect(controlSocketPath(ctx.state));
      await new Promise<void>((resolve) => createConsole({ api, input: process.stdin, output: process.stdout, terminal: env.TERM, onExit: resolve }));
      api.close();
      process.exit(0);
    },
  },
];

/**
 * Read stdin to the end (bounded: a password, not a file). At a terminal it
 * prompts on stderr and reads one line without echo instead.
 */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return readHidden('Password: ');
  let text = '';
  for await (const chunk of process.stdin) {
    text += chunk;
    if (text.length > 64 * 1024) throw new Error('stdin is larger than 64 KiB');
  }
  return text;
}

function readHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let line = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', on);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line + '\n');
    };
    const on = (chunk: string) => {
      for (const c of chunk) {
        if (c === '\r' || c === '\n') return done();
        if (c === '\u0003') return done(new Error('interrupted'));
        if (c === '\u007f' || c === '\b') line = line.slice(0, -1);
        else if (c >= ' ' && line.length < 1024) line += c;
      }
    };
    stdin.on('data', on);
  });
}

process.exitCode = await runCli(
  process.argv.slice(2),
  { stdout: (s) => void process.stdout.write(s), stderr: (s) => void process.stderr.write(s), stdinIsTty: Boolean(process.stdin.isTTY), env, readStdin },
  { commands: [...HOST_COMMANDS, ...COMMANDS] },
);
