/**
 * Drive the realm's database with `kadmin.local`: one command per run, the
 * command in argv (names are validated first: nothing in them can be read
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
