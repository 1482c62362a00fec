/**
 * A real stormd for cross-process tests: `stormd join` with a token, then
 * `stormd start` as a child process; the test's `after` stops it.
 */
import { spawn } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import type { TestContext } from 'node:test';
import { startProcess, type Running } from './child.ts';
import { freePort } from './ports.ts';
import { STORMD_BIN, stormJson } from './storm.ts';

/** `stormd join` as a process (async: the manager answering it may live in this process). */
export function joinStormd(joinUrl: string, token: string, state: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [STORMD_BIN, 'join', '--manager', joinUrl, '--token', token, '--state', state], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (out += d));
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`stormd join exited ${code}: ${out}`))));
  });
}

/** `stormd start` as a process, ready when it prints its listening line. */
export function startStormdProcess(t: TestContext | undefined, state: string, listen: string, libvirtUri: string, extra: string[] = []): Promise<Running> {
  return startProcess(t, process.execPath, [STORMD_BIN, 'start', '--state', state, '--listen', listen, '--libvirt-uri', libvirtUri, ...extra], { ready: /stormd ready/ });
}

/**
 * Enrol a stormd as host `name` of the manager `env` talks to: `storm host
 * add` on a fresh loopback port, `stormd join` with the token, `stormd start`
 * with state `state` on libvirt `libvirtUri` (`extra`: more start options).
 */
export async function enrolStormd(t: TestContext, env: NodeJS.ProcessEnv, name: string, state: string, libvirtUri: string, extra: string[] = []): Promise<Running> {
  const port = await freePort();
  const added = await stormJson<{ token: string; joinUrl: string }>(['host', 'add', name, `127.0.0.1:${port}`], env);
  await joinStormd(added.joinUrl, added.token, state);
  return startStormdProcess(t, state, `127.0.0.1:${port}`, libvirtUri, extra);
}

/** A loopback HTTP server for files by name (what a channel or a test serves layers from). */
export async function serveFiles(files: Record<string, string>): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = files[(req.url ?? '').replace(/^\//, '')];
    if (!path) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-length': statSync(path).size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}
