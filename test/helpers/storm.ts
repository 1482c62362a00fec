import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { run, type ExecResult } from '../../lib/exec.ts';
import { PACKAGE_ROOT } from '../../lib/paths.ts';
import { startProcess, type Running } from './child.ts';
import { freePort, freeTcpUdpPort } from './ports.ts';

export const STORM_BIN = join(PACKAGE_ROOT, 'bin', 'storm.js');
export const STORMD_BIN = join(PACKAGE_ROOT, 'bin', 'stormd.js');

/** Run `storm ARGS` as a separate process, as a user would; returns code and output. */
export function storm(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [STORM_BIN, ...args], { env: opts.env ?? process.env, input: opts.input ?? '', encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The same without blocking this process (a server in it, or the manager under test, must keep running). */
export const stormAsync = (args: string[], env: NodeJS.ProcessEnv): Promise<ExecResult> => run(process.execPath, [STORM_BIN, ...args], { env, input: '', timeoutMs: 300_000 });

/** `storm ARGS` must succeed; its stdout. */
export async function stormOk(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const r = await stormAsync(args, env);
  assert.equal(r.code, 0, `storm ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

/** `storm ARGS -o json` must succeed; its parsed output. */
export const stormJson = async <T>(args: string[], env: NodeJS.ProcessEnv): Promise<T> => JSON.parse(await stormOk([...args, '-o', 'json'], env)) as T;

/** A loopback address on a port free for both TCP and UDP. */
export const loopbackAddress = async (): Promise<string> => `127.0.0.1:${await freeTcpUdpPort()}`;

/**
 * A manager process's environment for a test: its state directory, every
 * listener on a fresh loopback port, LDAP off, no periodic channel refresh,
 * hosts polled every 2 s; `extra` adds or overrides.
 */
export async function managerEnv(state: string, extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  const p = loopbackAddress;
  return {
    ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: await p(), STORM_ENROLL_LISTEN: await p(),
    STORM_LDAP_LISTEN: '', STORM_LDAPS_LISTEN: '', STORM_KDC_LISTEN: await p(), STORM_KADMIND_LISTEN: await p(), STORM_KPASSWD_LISTEN: await p(),
    STORM_CHANNEL_REFRESH: '0', STORM_HOST_POLL_SECONDS: '2',
    ...extra,
  };
}

/** Start `storm manager start --state DIR` and wait until it is ready. */
export function startManagerProcess(t: TestContext, state: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<Running> {
  return startProcess(t, process.execPath, [STORM_BIN, 'manager', 'start', '--state', state, ...extra], { ready: /storm manager ready/, env });
}

/**
 * Publish the channel folder `dir` for a loopback server and serve it with
 * `storm channel serve` (stopped by the test's after hook). Its base URL (the
 * feed is `${base}feed.xml`) and what publish printed.
 */
export async function serveChannel(t: TestContext, dir: string, env: NodeJS.ProcessEnv): Promise<{ base: string; published: string }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}/`;
  const published = await stormOk(['channel', 'publish', dir, '--base-url', base], env);
  await startProcess(t, process.execPath, [STORM_BIN, 'channel', 'serve', dir, '--listen', `127.0.0.1:${port}`], { ready: /storm channel server ready/, env });
  return { base, published };
}
