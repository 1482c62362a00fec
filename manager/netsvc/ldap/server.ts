/**
 * The manager's LDAP server: LDAPv3 over TCP, StartTLS and LDAPS, reading an
 * indexed in-memory Tree. Our own framing and BER on the hot path (ldapjs's
 * server tops out near 11k searches/s, DESIGN.md §6): each request is decoded
 * once, the index narrows the candidates, and entries are encoded once per
 * attribute selection and cached.
 *
 * ACLs: anonymous sees only the root DSE; a bound user reads the directory
 * without userPassword; only the admin identity reads userPassword and
 * writes: a modify goes to the ModifyHandler (the Directory, which keeps
 * Kerberos in step); add, delete and rename go through the manager's API.
 */
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext } from 'node:tls';
import type { Logger } from '../../../lib/logger.ts';
import { normalizeDn } from './dn.ts';
import { OID } from './protocol.ts';
import type { Tree } from './tree.ts';
import { Connection } from './connection.ts';

/** PEM strings: the manager's certificate (manager/pki), or a test CA's. */
export interface TlsMaterial {
  key: string;
  cert: string;
  ca?: string;
}

/** Who a connection is bound as. */
export interface Identity {
  dn: string;
  ndn: string;
  role: 'admin' | 'user';
}

/** One change of a ModifyRequest (attribute lower-cased). */
export interface Modification {
  op: 'add' | 'delete' | 'replace';
  attr: string;
  values: string[];
}

/** Applies an admin's modify to the directory's own records; answers an LDAP result code. */
export type ModifyHandler = (who: Identity, ndn: string, changes: Modification[]) => Promise<{ code: number; message?: string }>;

/** Sets a user's password (the Password Modify extended operation); answers an LDAP result code. */
export type PasswordHandler = (who: Identity, ndn: string, password: string) => Promise<{ code: number; message?: string }>;

/** Checks a simple bind; resolves the identity, or undefined for bad credentials. */
export type Authenticator = (ndn: string, password: string) => Promise<Identity | undefined>;

export interface LdapServerOptions {
  tree: Tree;
  baseDn: string;
  authenticate: Authenticator;
  /** Admin writes (modify only); without it every write is refused. */
  modify?: ModifyHandler;
  /** Password Modify (RFC 3062); without it the operation is refused. */
  passwordModify?: PasswordHandler;
  tls?: TlsMaterial;
  log?: Logger;
  /** Largest request accepted (bytes); bigger ones end the connection with a notice. Default 256 KiB. */
  maxMessageBytes?: number;
  /** Server-side cap on entries per (unpaged) search for users. Default 5000. */
  sizeLimit?: number;
  maxConnections?: number;
  /** Idle connections are closed after this long. Default 15 min. */
  idleTimeoutMs?: number;
}

/** An LDAP server that can listen on several addresses (ldap:// and ldaps://). */
export class LdapServer {
  readonly #o: Required<Pick<LdapServerOptions, 'maxMessageBytes' | 'sizeLimit' | 'maxConnections' | 'idleTimeoutMs'>> & LdapServerOptions;
  readonly #servers: Server[] = [];
  readonly #conns = new Set<Connection>();
  #secure: SecureContext | undefined;
  #tlsMaterial: TlsMaterial | undefined;
  readonly #tlsServers: ReturnType<typeof createTlsServer>[] = [];
  #baseNdn: string;
  /** Base DNs seen recently → normalised form (clients repeat the same few). */
  readonly #dnCache = new Map<string, string>();
  readonly stats = { connections: 0, searches: 0, binds: 0, errors: 0 };

  constructor(opts: LdapServerOptions) {
    this.#o = { maxMessageBytes: 256 * 1024, sizeLimit: 5000, maxConnections: 1024, idleTimeoutMs: 15 * 60_000, ...opts };
    this.#baseNdn = normalizeDn(opts.baseDn);
    if (opts.tls) this.setTls(opts.tls);
  }

  get tree(): Tree {
    return this.#o.tree;
  }

  /** Swap the TLS material (certificate renewal); new handshakes use it. */
  setTls(tls: TlsMaterial): void {
    const o = { key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca } : {}) };
    this.#secure = createSecureContext(o);
    this.#tlsMaterial = tls;
    for (const s of this.#tlsServers) s.setSecureContext(o);
  }

  get hasTls(): boolean {
    return this.#secure !== undefined;
  }

  /** Listen for plain LDAP (with StartTLS). Resolves with the bound port. */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    const srv = createNetServer({ noDelay: true }, (s) => this.#accept(s, false));
    return this.#bind(srv, port, host);
  }

  /** Listen for LDAPS. Needs TLS material. */
  listenTls(port: number, host = '127.0.0.1'): Promise<number> {
    if (!this.#secure) throw new Error('LDAPS needs TLS material');
    const t = this.#tlsMaterial!;
    const srv = createTlsServer({ key: t.key, cert: t.cert, ...(t.ca ? { ca: t.ca } : {}) }, (s) => this.#accept(s, true));
    this.#tlsServers.push(srv);
    srv.on('tlsClientError', () => {
      /* a failed handshake is the client's problem; nothing to clean up */
    });
    return this.#bind(srv, port, host);
  }

  #bind(srv: Server, port: number, host: string): Promise<number> {
    srv.maxConnections = this.#o.maxConnections;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => {
        srv.off('error', reject);
        srv.on('error', (e) => this.#o.log?.warn('ldap listener error', { error: e.message }));
        this.#servers.push(srv);
        resolve((srv.address() as { port: number }).port);
      });
    });
  }

  async close(): Promise<void> {
    for (const c of this.#conns) c.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.#servers.length = 0;
  }

  #accept(sock: Socket, tls: boolean): void {
    sock.setNoDelay(true);
    this.stats.connections++;
    const c = new Connection(this, sock, tls);
    this.#conns.add(c);
    sock.once('close', () => this.#conns.delete(c));
  }

  // ---- used by Connection ----

  get opts() {
    return this.#o;
  }
  get secureContext(): SecureContext | undefined {
    return this.#secure;
  }
  get baseNdn(): string {
    return this.#baseNdn;
  }

  /** Normalise a DN through a small cache; throws DnError. */
  ndn(dn: string): string {
    const hit = this.#dnCache.get(dn);
    if (hit !== undefined) return hit;
    const n = normalizeDn(dn);
    if (this.#dnCache.size > 1024) this.#dnCache.clear();
    this.#dnCache.set(dn, n);
    return n;
  }

  rootDse(): Record<string, string[]> {
    return {
      objectClass: ['top'],
      namingContexts: [this.#o.baseDn],
      supportedLDAPVersion: ['3'],
      supportedExtension: [OID.whoAmI, ...(this.#o.passwordModify ? [OID.passwordModify] : []), ...(this.#secure ? [OID.startTls] : [])],
      supportedControl: [OID.pagedResults],
      supportedSASLMechanisms: [],
      vendorName: ['STORM'],
    };
  }
}
