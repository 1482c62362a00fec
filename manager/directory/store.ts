/**
 * The directory's persistent state: users, groups and hosts in the manager's
 * Store, mirrored into the indexed LDAP Tree on every write. Each change is
 * one atomic batch; the tree follows only after the batch landed.
 */
import type { Collection, Store } from '../store/store.ts';
import { normalizeDn } from '../netsvc/ldap/dn.ts';
import type { Identity } from '../netsvc/ldap/server.ts';
import { Tree } from '../netsvc/ldap/tree.ts';
import { decoyHash, verifyPassword } from './password.ts';
import { Layout, groupAttrs, hostAttrs, userAttrs, type Group, type Host, type User } from './model.ts';

interface Meta {
  nextUid: number;
  nextGid: number;
  adminHash?: string;
}

export const FIRST_ID = 10000;
/** Every user's default primary group. */
export const DEFAULT_GROUP = 'users';

export class DirectoryStore {
  readonly tree = new Tree();
  readonly layout: Layout;
  readonly #store: Store;
  readonly #users: Collection<User>;
  readonly #groups: Collection<Group>;
  readonly #hosts: Collection<Host>;
  readonly #metaC: Collection<Meta>;
  readonly #u = new Map<string, User>();
  readonly #g = new Map<string, Group>();
  readonly #h = new Map<string, Host>();
  #meta: Meta = { nextUid: FIRST_ID, nextGid: FIRST_ID + 1 };
  readonly #adminNdn: string;
  /** ndn → user name, for binds. */
  readonly #byNdn = new Map<string, string>();

  private constructor(store: Store, baseDn: string) {
    this.#store = store;
    this.layout = new Layout(baseDn);
    this.#users = store.collection<User>('directory.users');
    this.#groups = store.collection<Group>('directory.groups');
    this.#hosts = store.collection<Host>('directory.hosts');
    this.#metaC = store.collection<Meta>('directory.meta');
    this.#adminNdn = normalizeDn(this.layout.admin);
  }

  /** Load the directory (creating the skeleton and the default group on first use). */
  static async open(store: Store, baseDn: string, organization = 'STORM'): Promise<DirectoryStore> {
    const d = new DirectoryStore(store, baseDn);
    d.#meta = (await d.#metaC.get('meta')) ?? d.#meta;
    for (const u of await d.#users.values()) d.#u.set(u.name, u);
    for (const g of await d.#groups.values()) d.#g.set(g.name, g);
    for (const h of await d.#hosts.values()) d.#h.set(h.fqdn, h);
    const t = d.tree;
    const l = d.layout;
    const firstRdn = baseDn.split(',')[0]!;
    const [rdnType, rdnValue] = firstRdn.split('=') as [string, string];
    t.put(baseDn, rdnType.toLowerCase() === 'dc' ? { objectClass: ['top', 'dcObject', 'organization'], o: [organization], dc: [rdnValue] } : { objectClass: ['top', 'organization'], o: [organization] });
    t.put(l.people, { objectClass: ['top', 'organizationalUnit'], ou: ['people'] });
    t.put(l.groups, { objectClass: ['top', 'organizationalUnit'], ou: ['groups'] });
    t.put(l.hosts, { objectClass: ['top', 'organizationalUnit'], ou: ['hosts'] });
    if (!d.#g.has(DEFAULT_GROUP)) {
      await d.putGroup({ name: DEFAULT_GROUP, gidNumber: FIRST_ID, description: 'every STORM user', members: [], createdAt: new Date().toISOString() });
    }
    for (const u of d.#u.values()) d.#index(u);
    for (const g of d.#g.values()) t.put(l.groupDn(g.name), groupAttrs(g, l));
    for (const h of d.#h.values()) t.put(l.hostDn(h.fqdn), hostAttrs(h));
    return d;
  }

  #index(u: User): void {
    const dn = this.layout.userDn(u.name);
    this.tree.put(dn, userAttrs(u));
    this.#byNdn.set(normalizeDn(dn), u.name);
  }

  // ---- reads ----

  users(): User[] {
    return [...this.#u.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  user(name: string): User | undefined {
    return this.#u.get(name);
  }
  groups(): Group[] {
    return [...this.#g.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  group(name: string): Group | undefined {
    return this.#g.get(name);
  }
  hosts(): Host[] {
    return [...this.#h.values()].sort((a, b) => a.fqdn.localeCompare(b.fqdn));
  }
  host(fqdn: string): Host | undefined {
    return this.#h.get(fqdn);
  }
  /** The user whose entry has this normalised DN. */
  userByNdn(ndn: string): User | undefined {
    const name = this.#byNdn.get(ndn);
    return name === undefined ? undefined : this.#u.get(name);
  }

  groupsOf(user: string): string[] {
    return this.groups()
      .filter((g) => g.members.includes(user))
      .map((g) => g.name);
  }
  groupByGid(gid: number): Group | undefined {
    for (const g of this.#g.values()) if (g.gidNumber === gid) return g;
    return undefined;
  }
  uidTaken(n: number): boolean {
    for (const u of this.#u.values()) if (u.uidNumber === n) return true;
    return false;
  }

  /** Reserve the next free uidNumber / gidNumber (persisted with the write that uses it). */
  allocUid(): number {
    while (this.uidTaken(this.#meta.nextUid)) this.#meta.nextUid++;
    return this.#meta.nextUid++;
  }
  allocGid(): number {
    while (this.groupByGid(this.#meta.nextGid)) this.#meta.nextGid++;
    return this.#meta.nextGid++;
  }

  // ---- writes (each one atomic batch, then the tree) ----

  async putUser(u: User): Promise<void> {
    await this.#store.batch().put(this.#users, u.name, u).put(this.#metaC, 'meta', this.#meta).write();
    this.#u.set(u.name, u);
    this.#index(u);
  }

  /** Remove a user and every group membership, atomically. */
  async deleteUser(name: string): Promise<void> {
    const b = this.#store.batch().del(this.#users, name);
    const changed: Group[] = [];
    for (const g of this.#g.values()) {
      if (g.members.includes(name)) {
        const ng = { ...g, members: g.members.filter((m) => m !== name) };
        changed.push(ng);
        b.put(this.#groups, ng.name, ng);
      }
    }
    await b.write();
    this.#u.delete(name);
    const ndn = normalizeDn(this.layout.userDn(name));
    this.#byNdn.delete(ndn);
    this.tree.remove(ndn);
    for (const g of changed) {
      this.#g.set(g.name, g);
      this.tree.put(this.layout.groupDn(g.name), groupAttrs(g, this.layout));
    }
  }

  async putGroup(g: Group): Promise<void> {
    await this.#store.batch().put(this.#groups, g.name, g).put(this.#metaC, 'meta', this.#meta).write();
    this.#g.set(g.name, g);
    this.tree.put(this.layout.groupDn(g.name), groupAttrs(g, this.layout));
  }

  async deleteGroup(name: string): Promise<void> {
    await this.#groups.del(name);
    this.#g.delete(name);
    this.tree.remove(normalizeDn(this.layout.groupDn(name)));
  }

  async putHost(h: Host): Promise<void> {
    await this.#hosts.put(h.fqdn, h);
    this.#h.set(h.fqdn, h);
    this.tree.put(this.layout.hostDn(h.fqdn), hostAttrs(h));
  }

  async deleteHost(fqdn: string): Promise<void> {
    await this.#hosts.del(fqdn);
    this.#h.delete(fqdn);
    this.tree.remove(normalizeDn(this.layout.hostDn(fqdn)));
  }

  /** Many host entries in one atomic batch (all land or none), then the tree. */
  async putHosts(hs: Host[]): Promise<void> {
    const b = this.#store.batch();
    for (const h of hs) b.put(this.#hosts, h.fqdn, h);
    await b.write();
    for (const h of hs) {
      this.#h.set(h.fqdn, h);
      this.tree.put(this.layout.hostDn(h.fqdn), hostAttrs(h));
    }
  }

  /** Remove many host entries in one atomic batch, then from the tree. */
  async deleteHosts(fqdns: string[]): Promise<void> {
    const b = this.#store.batch();
    for (const f of fqdns) b.del(this.#hosts, f);
    await b.write();
    for (const f of fqdns) {
      this.#h.delete(f);
      this.tree.remove(normalizeDn(this.layout.hostDn(f)));
    }
  }

  async setAdminHash(hash: string): Promise<void> {
    this.#meta = { ...this.#meta, adminHash: hash };
    await this.#metaC.put('meta', this.#meta);
  }

  get adminHash(): string | undefined {
    return this.#meta.adminHash;
  }

  /** The LDAP bind check: the admin identity or an unlocked user with a password. */
  async authenticate(ndn: string, password: string): Promise<Identity | undefined> {
    if (ndn === this.#adminNdn) {
      const h = this.#meta.adminHash;
      if (h && (await verifyPassword(password, h))) return { dn: this.layout.admin, ndn, role: 'admin' };
      return undefined;
    }
    const name = this.#byNdn.get(ndn);
    const u = name !== undefined ? this.#u.get(name) : undefined;
    if (!u || !u.passwordHash || u.locked) {
      await verifyPassword(password, await decoyHash());
      return undefined;
    }
    if (!(await verifyPassword(password, u.passwordHash))) return undefined;
    return { dn: this.layout.userDn(u.name), ndn, role: 'user' };
  }
}
