import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { PACKAGE_ROOT } from '../../lib/paths.ts';
import { startProcess, type Running } from './child.ts';

export const STORM_BIN = join(PACKAGE_ROOT, 'bin', 'storm.js');
export const STORMD_BIN = join(PACKAGE_ROOT, 'bin', 'stormd.js');

/** Run `storm ARGS` as a separate process, as a user would; returns code and output. */
export function storm(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [STORM_BIN, ...args], { env: opts.env ?? process.env, input: opts.input ?? '', encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Start `storm manager start --state DIR` and wait until it is ready. */
export function startManagerProcess(t: TestContext, state: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<Running> {
  return startProcess(t, process.execPath, [STORM_BIN, 'manager', 'start', '--state', state, ...extra], { ready: /storm manager ready/, env });
}
