/**
 * The LDAP server as a manager service: listens on the configured addresses,
 * and reports a port it could not take as health, not as a manager crash.
 */
import { unavailable } from '../../../lib/errors.ts';
import { healthy, undetected, unhealthy, type Health } from '../../../lib/health.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { NetService } from '../service.ts';
import { LdapServer, type Authenticator, type ModifyHandler, type PasswordHandler, type TlsMaterial } from './server.ts';
import type { Tree } from './tree.ts';

export interface LdapServiceOptions {
  tree: Tree;
  baseDn: string;
  authenticate: Authenticator;
  modify?: ModifyHandler;
  passwordModify?: PasswordHandler;
  /** HOST:PORT parsed; undefined = off. */
  listen?: { host: string; port: number };
  ldapsListen?: { host: string; port: number };
  tls?: TlsMaterial;
  log?: Logger;
}

export class LdapService implements NetService {
  readonly name = 'ldap';
  readonly server: LdapServer;
  readonly #o: LdapServiceOptions;
  readonly #problems: string[] = [];
  /** Actually bound ports (tests listen on port 0). */
  port: number | undefined;
  ldapsPort: number | undefined;

  constructor(o: LdapServiceOptions) {
    this.#o = o;
    this.server = new LdapServer({ tree: o.tree, baseDn: o.baseDn, authenticate: o.authenticate, ...(o.modify ? { modify: o.modify } : {}), ...(o.passwordModify ? { passwordModify: o.passwordModify } : {}), ...(o.tls ? { tls: o.tls } : {}), ...(o.log ? { log: o.log } : {}) });
  }

  async start(): Promise<void> {
    const { listen, ldapsListen } = this.#o;
    if (listen) {
      try {
        this.port = await this.server.listen(listen.port, listen.host);
      } catch (e) {
        this.#problems.push(`cannot listen on ${listen.host}:${listen.port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    if (ldapsListen && this.server.hasTls) {
      try {
        this.ldapsPort = await this.server.listenTls(ldapsListen.port, ldapsListen.host);
      } catch (e) {
        this.#problems.push(`cannot listen (LDAPS) on ${ldapsListen.host}:${ldapsListen.port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    for (const p of this.#problems) this.#o.log?.error('ldap', { problem: p });
    if (this.#problems.length) throw unavailable(`ldap: ${this.#problems.join('; ')}`, { hint: 'free the port or set another address (STORM_LDAP_LISTEN / STORM_LDAPS_LISTEN)' });
  }

  /** The tree is live (the store writes it directly): nothing to re-read. */
  async reload(): Promise<void> {}

  /** New TLS material (the manager's certificate arrived or was renewed): StartTLS uses it, LDAPS starts if it was waiting for it. */
  async setTls(tls: TlsMaterial): Promise<void> {
    const had = this.server.hasTls;
    this.server.setTls(tls);
    const l = this.#o.ldapsListen;
    if (!had && l && this.ldapsPort === undefined) {
      try {
        this.ldapsPort = await this.server.listenTls(l.port, l.host);
      } catch (e) {
        this.#problems.push(`cannot listen (LDAPS) on ${l.host}:${l.port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
  }

  async stop(): Promise<void> {
    await this.server.close();
  }

  status(): Health {
    const facts = {
      baseDn: this.#o.baseDn,
      ...(this.port !== undefined ? { ldap: `ldap://${this.#o.listen!.host}:${this.port}` } : {}),
      ...(this.ldapsPort !== undefined ? { ldaps: `ldaps://${this.#o.ldapsListen!.host}:${this.ldapsPort}` } : {}),
      tls: this.server.hasTls,
      entries: this.server.tree.size,
      ...this.server.stats,
    };
    if (this.#problems.length) return unhealthy('ldap', this.#problems.join('; '), 'free the port or set another address (STORM_LDAP_LISTEN / STORM_LDAPS_LISTEN)', facts);
    if (!this.#o.listen && !this.#o.ldapsListen) return undetected('ldap', 'LDAP is turned off in the config', 'set ldapListen (STORM_LDAP_LISTEN), e.g. 127.0.0.1:1389');
    const urls = [facts.ldap, facts.ldaps].filter(Boolean).join(', ');
    return healthy('ldap', `${urls} serving ${this.#o.baseDn}${this.server.hasTls ? '' : ' (no certificate yet: no StartTLS/LDAPS)'}`, facts);
  }
}
