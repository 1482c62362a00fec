/**
 * The manager's MIT Kerberos realm: created on first start, krb5kdc and
 * kadmind run as supervised children (restarted with backoff when they die),
 * health reported as data. Without the Kerberos packages the service is
 * `undetected` and everything else keeps working.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { which } from '../../../lib/exec.ts';
import { healthy, undetected, unhealthy, type Health } from '../../../lib/health.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { NetService } from '../service.ts';
import { Kadmin } from './kadmin.ts';
import { ensureRealm, realmEnv, realmPaths, type HostPort, type RealmConfig, type RealmPaths } from './realm.ts';

export interface KerberosOptions extends RealmConfig {
  /** PATH to find the MIT tools on. */
  path: string;
  log?: Logger;
  /** First restart delay; doubles up to 30 s. */
  restartDelayMs?: number;
  /** How to find a tool (default: lib/exec which on `path`); tests simulate missing packages with it. */
  find?: (name: string) => Promise<string | undefined>;
}

/** A child restarted whenever it exits while the service runs. */
class Supervised {
  readonly name: string;
  #child: ChildProcess | undefined;
  #stopping = false;
  #timer: NodeJS.Timeout | undefined;
  #delay: number;
  readonly #baseDelay: number;
  restarts = 0;
  lastExit: string | undefined;
  #startedAt = 0;
  readonly #spawn: () => ChildProcess;
  readonly #log: Logger | undefined;

  constructor(name: string, spawnFn: () => ChildProcess, baseDelay: number, log?: Logger) {
    this.name = name;
    this.#spawn = spawnFn;
    this.#baseDelay = baseDelay;
    this.#delay = baseDelay;
    this.#log = log;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }
  get pid(): number | undefined {
    return this.running ? this.#child!.pid : undefined;
  }

  start(): void {
    this.#stopping = false;
    const child = this.#spawn();
    this.#child = child;
    this.#startedAt = Date.now();
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-2000);
    });
    child.on('error', (e) => {
      this.lastExit = `${this.name} could not start: ${e.message}`;
    });
    child.on('exit', (code, signal) => {
      if (this.#child !== child) return;
      if (this.#stopping) return;
      const why = `${this.name} exited (${signal ?? `code ${code}`})${err.trim() ? `: ${err.trim().split('\n').at(-1)}` : ''}`;
      this.lastExit = why;
      // A child that ran a minute was healthy: start the backoff over.
      if (Date.now() - this.#startedAt > 60_000) this.#delay = this.#baseDelay;
      this.#log?.warn('kerberos child died; restarting', { child: this.name, why, inMs: this.#delay });
      this.#timer = setTimeout(() => {
        this.restarts++;
        this.start();
      }, this.#delay);
      this.#timer.unref();
      this.#delay = Math.min(this.#delay * 2, 30_000);
    });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    const c = this.#child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      c.kill('SIGTERM');
    });
  }
}

function canConnect(a: HostPort, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(a.port, a.host);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export class KerberosService implements NetService {
  readonly name = 'kerberos';
  readonly #o: KerberosOptions;
  readonly paths: RealmPaths;
  #kadmin: Kadmin | undefined;
  #kdc: Supervised | undefined;
  #kadmind: Supervised | undefined;
  #failure: string | undefined;
  #detected: boolean | undefined;

  constructor(o: KerberosOptions) {
    this.#o = o;
    this.paths = realmPaths(o.dir);
  }

  get realm(): string {
    return this.#o.realm;
  }

  /** kadmin.local for this realm, or undefined when Kerberos is not available. */
  get kadmin(): Kadmin | undefined {
    return this.#kadmin;
  }

  /** Find the tools, create the realm if needed, start the daemons. Never throws for a missing package. */
  async start(): Promise<void> {
    const find = this.#o.find ?? ((n: string) => which(n, this.#o.path));
    const [krb5kdc, kadmind, kdb5Util, kadminLocal, setpriv] = await Promise.all([find('krb5kdc'), find('kadmind'), find('kdb5_util'), find('kadmin.local'), which('setpriv', this.#o.path)]);
    if (!krb5kdc || !kadmind || !kdb5Util || !kadminLocal) {
      this.#detected = false;
      this.#o.log?.info('kerberos not installed; the directory runs without it');
      return;
    }
    this.#detected = true;
    const env = realmEnv(this.paths, this.#o.path);
    try {
      const created = await ensureRealm(this.#o, kdb5Util, this.#o.path);
      if (created) this.#o.log?.info('kerberos realm created', { realm: this.#o.realm, dir: this.#o.dir });
    } catch (e) {
      this.#failure = (e as Error).message;
      this.#o.log?.error('kerberos realm setup failed', { error: this.#failure });
      return;
    }
    this.#kadmin = new Kadmin(kadminLocal, this.#o.realm, env);
    const delay = this.#o.restartDelayMs ?? 500;
    const opts = { env, stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'] };
    const kdcPid = join(this.#o.dir, 'krb5kdc.pid');
    const kadmindPid = join(this.#o.dir, 'kadmind.pid');
    // A manager that was killed outright leaves its daemons behind, holding the ports.
    await Promise.all([this.#reapStale(kdcPid, 'krb5kdc'), this.#reapStale(kadmindPid, 'kadmind')]);
    // With setpriv (util-linux) the daemons get SIGTERM when the manager dies, even by SIGKILL;
    // setpriv execs the daemon, so the pid stays the daemon's.
    const run = (bin: string, args: string[]) => (setpriv ? spawn(setpriv, ['--pdeathsig', 'TERM', '--', bin, ...args], opts) : spawn(bin, args, opts));
    this.#kdc = new Supervised('krb5kdc', () => run(krb5kdc, ['-n', '-r', this.#o.realm, '-P', kdcPid]), delay, this.#o.log);
    this.#kadmind = new Supervised('kadmind', () => run(kadmind, ['-nofork', '-r', this.#o.realm, '-P', kadmindPid]), delay, this.#o.log);
    this.#kdc.start();
    this.#kadmind.start();
    // kadmin.local needs no running KDC, so the manager does not wait long: a KDC that
    // cannot start (port taken) shows in status() and keeps being retried.
    await this.waitReady(3_000);
  }

  /** Stop a daemon a previous run of this manager left (same binary, same realm profile), by its pid file. */
  async #reapStale(pidFile: string, name: string): Promise<void> {
    let pid = NaN;
    // A daemon writes its pid file just after it starts: an empty file is read again shortly.
    for (let i = 0; i < 20; i++) {
      let text: string;
      try {
        text = readFileSync(pidFile, 'utf8').trim();
      } catch {
        return;
      }
      if (text !== '') {
        pid = Number(text);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (Number.isInteger(pid) && pid > 1 && cmd.includes(name) && env.includes(`KRB5_KDC_PROFILE=${this.paths.kdcConf}`)) {
        process.kill(pid, 'SIGTERM');
        this.#o.log?.warn('stopping a stale kerberos daemon from an earlier run', { name, pid });
        for (let i = 0; i < 50; i++) {
          await new Promise((r) => setTimeout(r, 50));
          try {
            process.kill(pid, 0);
          } catch {
            break;
          }
        }
      }
    } catch {
      /* gone already, or not ours */
    }
    rmSync(pidFile, { force: true });
  }

  /** Wait until the KDC accepts TCP connections (or the time is up). */
  async waitReady(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.#kdc?.running && (await canConnect(this.#o.kdc, 500))) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  async stop(): Promise<void> {
    await Promise.all([this.#kdc?.stop(), this.#kadmind?.stop()]);
  }

  /** The pid of the running KDC (tests kill it to see the supervisor restart it). */
  get kdcPid(): number | undefined {
    return this.#kdc?.pid;
  }

  /** Profiles are rewritten on start only; the database is read live by the KDC. */
  async reload(): Promise<void> {}

  status(): Health {
    const facts = { realm: this.#o.realm, kdc: `${this.#o.kdc.host}:${this.#o.kdc.port}`, krb5Config: this.paths.krb5Conf };
    if (this.#detected === false) return undetected('kerberos', 'MIT Kerberos (krb5kdc, kadmind, kdb5_util, kadmin.local) not installed: no realm, directory users get no principals', 'apt-get install krb5-kdc krb5-admin-server krb5-user (or scripts/setup), then restart the manager');
    if (this.#detected === undefined) return unhealthy('kerberos', 'not started', 'start the manager');
    if (this.#failure) return unhealthy('kerberos', this.#failure, `check ${this.#o.dir}; remove it to recreate the realm`, facts);
    const kdc = this.#kdc!;
    const kadmind = this.#kadmind!;
    if (!kdc.running) return unhealthy('kerberos', `${kdc.lastExit ?? 'krb5kdc is not running'}; restarting (${kdc.restarts} restarts so far)`, `see ${this.paths.kdcLog}`, { ...facts, restarts: kdc.restarts });
    const extra = kadmind.running ? '' : `; kadmind down (${kadmind.lastExit ?? 'not running'})`;
    return healthy('kerberos', `realm ${this.#o.realm}: KDC on ${facts.kdc}${extra}`, { ...facts, kdcPid: kdc.pid, kdcRestarts: kdc.restarts, kadmindPid: kadmind.pid });
  }
}
