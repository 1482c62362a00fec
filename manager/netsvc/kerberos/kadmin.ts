/**
 * Drive the realm's database with `kadmin.local`: one command per run, the
 * command in argv (or, for bulk work, many commands on stdin) (names are validated first: nothing in them can be read
 * as a quote, a space or a second command) and passwords on stdin, never in
 * argv. kadmin.local exits 0 even when a command fails, so errors are read
 * from its stderr lines ("add_principal: ... while ...").
 */
import { conflict, internal, invalid, notFound, unavailable } from '../../../lib/errors.ts';
import { run } from '../../../lib/exec.ts';

// host/web1.storm.local, alice, HTTP/x.y: lower-case letters, digits, '.', '_', '-', one '/'.
const PRINCIPAL_RE = /^[a-z0-9_][a-z0-9_.-]{0,63}(?:\/[a-z0-9][a-z0-9.-]{0,252})?$/i;

/** Refuse any principal name that could change the meaning of a kadmin command line. */
export function checkPrincipal(name: string): string {
  if (typeof name !== 'string' || !PRINCIPAL_RE.test(name)) throw invalid(`principal name ${JSON.stringify(name)} is not allowed`, { hint: 'letters, digits, ".", "_", "-" and one "/"; no spaces, quotes or line breaks' });
  return name;
}

function checkSecret(pw: string): string {
  if (/[\r\n\0]/.test(pw)) throw invalid('password contains a line break or NUL');
  return pw;
}

export interface PrincipalInfo {
  name: string;
  /** The part before '@'. */
  short: string;
  kind: 'user' | 'host' | 'service' | 'system';
}

export class Kadmin {
  readonly #bin: string;
  readonly #realm: string;
  readonly #env: NodeJS.ProcessEnv;

  constructor(bin: string, realm: string, env: NodeJS.ProcessEnv) {
    this.#bin = bin;
    this.#realm = realm;
    this.#env = env;
  }

  get realm(): string {
    return this.#realm;
  }

  /** Run one kadmin.local command; returns stdout, throws a typed error on a failure line. */
  async #run(command: string, stdin = '', cwd?: string): Promise<string> {
    const r = await run(this.#bin, ['-r', this.#realm, '-q', command], { env: this.#env, input: stdin, timeoutMs: 30_000, ...(cwd ? { cwd } : {}) });
    if (r.spawnError) throw unavailable(`cannot run kadmin.local: ${r.spawnError.message}`, { hint: 'apt-get install krb5-admin-server' });
    const bad = r.stderr
      .split('\n')
      .map((l) => l.trim())
      .find((l) => /^[a-z_.]+: /i.test(l) && !/^(No policy specified|WARNING)/i.test(l));
    const what = command.split(' ')[0];
    if (bad) {
      if (/already exists/i.test(bad)) throw conflict(`kerberos ${what}: ${bad}`);
      if (/does not exist|not found/i.test(bad)) throw notFound(`kerberos ${what}: ${bad}`);
      throw internal(`kerberos ${what} failed: ${bad}`, { hint: 'see storm doctor; the realm lives under STATE/krb5' });
    }
    if (r.code !== 0) throw internal(`kadmin.local exited ${r.code}: ${(r.stderr || r.stdout).split('\n')[0]}`);
    return r.stdout;
  }

  /** A principal with a password (a directory user). */
  async addWithPassword(name: string, password: string): Promise<void> {
    checkPrincipal(name);
    checkSecret(password);
    await this.#run(`addprinc +requires_preauth ${name}`, `${password}\n${password}\n`);
  }

  /** A principal with random keys (a host or service). */
  async addRandom(name: string): Promise<void> {
    checkPrincipal(name);
    await this.#run(`addprinc -randkey ${name}`);
  }

  async setPassword(name: string, password: string): Promise<void> {
    checkPrincipal(name);
    checkSecret(password);
    await this.#run(`cpw ${name}`, `${password}\n${password}\n`);
  }

  /** Allow or refuse tickets (how a locked user is locked out of Kerberos too). */
  async allowTickets(name: string, allow: boolean): Promise<void> {
    checkPrincipal(name);
    await this.#run(`modprinc ${allow ? '+' : '-'}allow_tix ${name}`);
  }

  async remove(name: string): Promise<void> {
    checkPrincipal(name);
    await this.#run(`delprinc -force ${name}`);
  }

  /** Write the principal's keys to `dir/file` (fresh random keys: older keytabs stop working). */
  async keytab(name: string, dir: string, file: string): Promise<void> {
    checkPrincipal(name);
    if (!/^[A-Za-z0-9._-]+$/.test(file)) throw invalid(`keytab file name ${JSON.stringify(file)} is not allowed`);
    // A relative name with cwd set: the state directory's own path never reaches kadmin's parser.
    await this.#run(`ktadd -k ${file} ${name}`, '', dir);
  }

  async exists(name: string): Promise<boolean> {
    checkPrincipal(name);
    try {
      await this.#run(`getprinc ${name}`);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'not_found') return false;
      throw e;
    }
  }

  /** Whether tickets are allowed (false when locked). */
  async ticketsAllowed(name: string): Promise<boolean> {
    checkPrincipal(name);
    const out = await this.#run(`getprinc ${name}`);
    const attrs = /^Attributes:(.*)$/m.exec(out)?.[1] ?? '';
    return !/DISALLOW_ALL_TIX/.test(attrs);
  }

  /**
   * Many commands in one kadmin.local run (it reads them from stdin, one a
   * line): thousands of principals cost one process, not thousands. Every
   * principal named is validated first, so no line can carry a second command.
   * Returns the failure lines by principal (kadmin.local exits 0 on them);
   * callers verify the outcome (listNames, the keytab files) rather than trust it.
   */
  async #batch(lines: string[], principals: string[], cwd?: string): Promise<Map<string, string>> {
    const failures = new Map<string, string>();
    if (!lines.length) return failures;
    for (const p of principals) checkPrincipal(p);
    const r = await run(this.#bin, ['-r', this.#realm], { env: this.#env, input: lines.join('\n') + '\n', timeoutMs: 60_000 + lines.length * 100, ...(cwd ? { cwd } : {}) });
    if (r.spawnError) throw unavailable(`cannot run kadmin.local: ${r.spawnError.message}`, { hint: 'apt-get install krb5-admin-server' });
    if (r.code !== 0) throw internal(`kadmin.local exited ${r.code}: ${(r.stderr || r.stdout).split('\n')[0]}`);
    const known = new Set(principals.map((p) => p.toLowerCase()));
    for (const raw of r.stderr.split('\n')) {
      const l = raw.trim();
      if (!/^[a-z_.]+: /i.test(l) || /^(No policy specified|WARNING)/i.test(l)) continue;
      // Lines name the principal ("host/x@REALM" or host/x): attribute each failure to its principal.
      const who = (l.toLowerCase().match(/[a-z0-9_][a-z0-9_.\/-]*(?=@|"|$|\s|\.\s|\.$)/g) ?? []).map((t) => t.replace(/\.$/, '')).find((t) => known.has(t));
      if (who && !failures.has(who)) failures.set(who, l);
    }
    return failures;
  }

  /** Random-key principals in one run; returns the names that already existed and the other failures. */
  async addRandomMany(names: string[]): Promise<{ existed: Set<string>; failed: Map<string, string> }> {
    const failed = await this.#batch(names.map((n) => `addprinc -randkey ${n}`), names);
    const existed = new Set<string>();
    for (const [n, why] of failed) if (/already exists/i.test(why)) (existed.add(n), failed.delete(n));
    return { existed, failed };
  }

  /** Keytabs for many principals in one run: `dir/<file>` each (fresh random keys). */
  async keytabMany(entries: { principal: string; file: string }[], dir: string): Promise<Map<string, string>> {
    for (const e of entries) if (!/^[A-Za-z0-9._-]+$/.test(e.file)) throw invalid(`keytab file name ${JSON.stringify(e.file)} is not allowed`);
    return this.#batch(entries.map((e) => `ktadd -k ${e.file} ${e.principal}`), entries.map((e) => e.principal), dir);
  }

  /** Delete many principals in one run (missing ones are not failures). */
  async removeMany(names: string[]): Promise<Map<string, string>> {
    const failed = await this.#batch(names.map((n) => `delprinc -force ${n}`), names);
    for (const [n, why] of failed) if (/does not exist|not found/i.test(why)) failed.delete(n);
    return failed;
  }

  /** The principals' short names (without @REALM), optionally matching a kadmin glob such as `host/*`. */
  async listNames(glob?: string): Promise<Set<string>> {
    if (glob !== undefined && !/^[a-z0-9_.*/-]+$/i.test(glob)) throw invalid(`principal pattern ${JSON.stringify(glob)} is not allowed`);
    const out = await this.#run(glob ? `listprincs ${glob}` : 'listprincs');
    const names = new Set<string>();
    for (const raw of out.split('\n')) {
      const l = raw.trim();
      if (!l.includes('@') || l.startsWith('Authenticating')) continue;
      names.add(l.slice(0, l.lastIndexOf('@')).toLowerCase());
    }
    return names;
  }

  async list(): Promise<PrincipalInfo[]> {
    const out = await this.#run('listprincs');
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.includes('@') && !l.startsWith('Authenticating'))
      .map((name) => {
        const short = name.slice(0, name.lastIndexOf('@'));
        const kind: PrincipalInfo['kind'] = /^(K\/M|krbtgt\/|kadmin\/|kiprop\/)/.test(short) ? 'system' : short.startsWith('host/') ? 'host' : short.includes('/') ? 'service' : 'user';
        return { name, short, kind };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}
