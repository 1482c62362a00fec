/**
 * The directory: one place that keeps LDAP (the store and its tree) and the
 * Kerberos realm in step. The service layer and other manager code (instances
 * enrol and drop their hosts) call this; nothing else writes either side.
 */
import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { conflict, invalid, notFound, unauthorized, unavailable, type StormError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { OperationLocks } from '../../lib/operation-lock.ts';
import { withRevert } from '../../lib/revert.ts';
import type { EventBus } from '../events.ts';
import type { PrincipalInfo } from '../netsvc/kerberos/kadmin.ts';
import type { KerberosService } from '../netsvc/kerberos/service.ts';
import type { Modification } from '../netsvc/ldap/server.ts';
import { ldapModify, ldapSetPassword } from './ldap-writes.ts';
import { hashPassword } from './password.ts';
import {
  checkFqdn,
  checkId,
  checkMail,
  checkName,
  checkPassword,
  checkPath,
  checkText,
  type Group,
  type GroupView,
  type Host,
  type HostView,
  type User,
  type UserView,
} from './model.ts';
import { DEFAULT_GROUP, type DirectoryStore } from './store.ts';

export interface AddUserInput {
  name: string;
  password?: string;
  cn?: string;
  sn?: string;
  mail?: string;
  shell?: string;
  home?: string;
  uidNumber?: number;
  /** Primary group by name (default "users"). */
  group?: string;
  /** Extra groups to join. */
  groups?: string[];
}

export interface AddHostInput {
  fqdn: string;
  instance?: string;
  addresses?: string[];
  /** New random keys and a new keytab even when the host has them already (older keytabs stop working). */
  rekey?: boolean;
}

export interface DirectoryDeps {
  store: DirectoryStore;
  kerberos?: KerberosService;
  bus?: EventBus;
  log?: Logger;
}

const isCode = (e: unknown, code: string) => (e as StormError | undefined)?.code === code;

export class Directory {
  readonly store: DirectoryStore;
  readonly #krb: KerberosService | undefined;
  readonly #bus: EventBus | undefined;
  readonly #log: Logger | undefined;
  readonly #locks = new OperationLocks();

  constructor(d: DirectoryDeps) {
    this.store = d.store;
    this.#krb = d.kerberos;
    this.#bus = d.bus;
    this.#log = d.log;
  }

  get realm(): string | undefined {
    return this.#krb?.kadmin ? this.#krb.realm : undefined;
  }

  #emit(kind: string, object: string, message: string): void {
    this.#bus?.emit({ kind, object, message });
  }

  #kadmin() {
    return this.#krb?.kadmin;
  }

  // ---- users ----

  userView(u: User): UserView {
    const { passwordHash, ...rest } = u;
    return {
      ...rest,
      dn: this.store.layout.userDn(u.name),
      hasPassword: passwordHash !== undefined,
      groups: this.store.groupsOf(u.name),
      ...(this.realm ? { principal: `${u.name}@${this.realm}` } : {}),
    };
  }

  listUsers(): UserView[] {
    return this.store.users().map((u) => this.userView(u));
  }

  #user(name: string): User {
    checkName('user', name);
    const u = this.store.user(name);
    if (!u) throw notFound(`user "${name}" not found`, { hint: 'storm user list shows the users' });
    return u;
  }

  showUser(name: string): UserView {
    return this.userView(this.#user(name));
  }

  async addUser(input: AddUserInput): Promise<UserView> {
    const name = checkName('user', input.name);
    return this.#locks.run(`user:${name}`, 'add', async () => {
      if (this.store.user(name)) throw conflict(`user "${name}" already exists`, { hint: `storm user set ${name} changes it; storm user passwd ${name} sets its password` });
      const password = input.password === undefined ? undefined : checkPassword(input.password);
      const cn = input.cn === undefined ? name : checkText('full name', input.cn);
      const sn = input.sn === undefined ? (cn.split(' ').at(-1) ?? name) : checkText('surname', input.sn);
      const mail = input.mail === undefined ? undefined : checkMail(input.mail);
      const shell = input.shell === undefined ? '/bin/bash' : checkPath('shell', input.shell);
      const home = input.home === undefined ? `/home/${name}` : checkPath('home directory', input.home);
      const groupName = input.group === undefined ? DEFAULT_GROUP : checkName('group', input.group);
      const primary = this.store.group(groupName);
      if (!primary) throw notFound(`group "${groupName}" not found`, { hint: 'storm group add creates it' });
      const extra = [...new Set((input.groups ?? []).map((g) => checkName('group', g)))];
      for (const g of extra) if (!this.store.group(g)) throw notFound(`group "${g}" not found`);
      let uidNumber: number;
      if (input.uidNumber !== undefined) {
        uidNumber = checkId('uidNumber', input.uidNumber);
        if (this.store.uidTaken(uidNumber)) throw conflict(`uidNumber ${uidNumber} is taken`);
      } else uidNumber = this.store.allocUid();
      const user: User = {
        name, cn, sn, uidNumber, gidNumber: primary.gidNumber, home, shell,
        ...(mail ? { mail } : {}),
        ...(password !== undefined ? { passwordHash: await hashPassword(password), passwordChangedAt: new Date().toISOString() } : {}),
        locked: false,
        createdAt: new Date().toISOString(),
      };
      await withRevert(async (r) => {
        const k = this.#kadmin();
        if (k) {
          try {
            if (password !== undefined) await k.addWithPassword(name, password);
            else await k.addRandom(name);
          } catch (e) {
            if (!isCode(e, 'conflict')) throw e;
            // A principal left over from an earlier user of that name: take it over.
            if (password !== undefined) await k.setPassword(name, password);
            await k.allowTickets(name, true);
          }
          r.add('principal', () => k.remove(name));
        }
        await this.store.putUser(user);
        r.add('user', () => this.store.deleteUser(name));
        for (const g of extra) {
          const cur = this.store.group(g)!;
          if (!cur.members.includes(name)) await this.store.putGroup({ ...cur, members: [...cur.members, name] });
        }
      });
      this.#emit('directory.user.added', name, `user ${name} added (uid ${uidNumber})`);
      return this.userView(this.store.user(name)!);
    });
  }

  /** Change a user's descriptive fields (the uid, numbers and password have their own calls). */
  async updateUser(name: string, patch: { cn?: string; sn?: string; mail?: string | null; shell?: string; home?: string }): Promise<UserView> {
    this.#user(name);
    const next: Partial<User> = {};
    if (patch.cn !== undefined) next.cn = checkText('full name', patch.cn);
    if (patch.sn !== undefined) next.sn = checkText('surname', patch.sn);
    if (patch.mail !== undefined && patch.mail !== null) next.mail = checkMail(patch.mail);
    if (patch.shell !== undefined) next.shell = checkPath('shell', patch.shell);
    if (patch.home !== undefined) next.home = checkPath('home directory', patch.home);
    return this.#locks.run(`user:${name}`, 'update', async () => {
      const u: User = { ...this.store.user(name)!, ...next };
      if (patch.mail === null) delete u.mail;
      await this.store.putUser(u);
      this.#emit('directory.user.updated', name, `user ${name} updated`);
      return this.userView(u);
    });
  }

  /** The LDAP admin's ModifyRequest (see ldap-writes.ts). */
  ldapModify(ndn: string, changes: Modification[]): Promise<{ code: number; message?: string }> {
    return ldapModify(this, ndn, changes, this.#log);
  }

  /** Password Modify over LDAP (the server checked who may): LDAP and Kerberos together. */
  ldapSetPassword(ndn: string, password: string): Promise<{ code: number; message?: string }> {
    return ldapSetPassword(this, ndn, password, this.#log);
  }

  /** Set the password in LDAP and Kerberos together. */
  async setPassword(name: string, password: string): Promise<UserView> {
    const u = this.#user(name);
    checkPassword(password);
    return this.#locks.run(`user:${name}`, 'passwd', async () => {
      const k = this.#kadmin();
      if (k) {
        try {
          await k.setPassword(name, password);
        } catch (e) {
          if (!isCode(e, 'not_found')) throw e;
          await k.addWithPassword(name, password);
          if (u.locked) await k.allowTickets(name, false);
        }
      }
      const next: User = { ...this.store.user(name)!, passwordHash: await hashPassword(password), passwordChangedAt: new Date().toISOString() };
      await this.store.putUser(next);
      this.#emit('directory.user.password', name, `password of ${name} changed`);
      return this.userView(next);
    });
  }

  /** Lock or unlock: no LDAP bind (the hash leaves the tree) and no Kerberos tickets. */
  async setLocked(name: string, locked: boolean): Promise<UserView> {
    this.#user(name);
    return this.#locks.run(`user:${name}`, locked ? 'lock' : 'unlock', async () => {
      const k = this.#kadmin();
      if (k) {
        try {
          await k.allowTickets(name, !locked);
        } catch (e) {
          if (!isCode(e, 'not_found')) throw e;
        }
      }
      const next: User = { ...this.store.user(name)!, locked };
      await this.store.putUser(next);
      this.#emit(locked ? 'directory.user.locked' : 'directory.user.unlocked', name, `user ${name} ${locked ? 'locked' : 'unlocked'}`);
      return this.userView(next);
    });
  }

  async removeUser(name: string): Promise<void> {
    this.#user(name);
    await this.#locks.run(`user:${name}`, 'remove', async () => {
      const k = this.#kadmin();
      if (k) {
        try {
          await k.remove(name);
        } catch (e) {
          if (!isCode(e, 'not_found')) throw e;
        }
      }
      await this.store.deleteUser(name);
      this.#emit('directory.user.removed', name, `user ${name} removed`);
    });
  }

  // ---- groups ----

  groupView(g: Group): GroupView {
    return { ...g, dn: this.store.layout.groupDn(g.name) };
  }

  listGroups(): GroupView[] {
    return this.store.groups().map((g) => this.groupView(g));
  }

  #group(name: string): Group {
    checkName('group', name);
    const g = this.store.group(name);
    if (!g) throw notFound(`group "${name}" not found`, { hint: 'storm group list shows the groups' });
    return g;
  }

  showGroup(name: string): GroupView {
    return this.groupView(this.#group(name));
  }

  async addGroup(input: { name: string; gidNumber?: number; description?: string; members?: string[] }): Promise<GroupView> {
    const name = checkName('group', input.name);
    return this.#locks.run(`group:${name}`, 'add', async () => {
      if (this.store.group(name)) throw conflict(`group "${name}" already exists`, { hint: `storm group member add ${name} USER adds a member` });
      const description = input.description === undefined ? undefined : checkText('description', input.description);
      const members = [...new Set((input.members ?? []).map((m) => checkName('user', m)))];
      for (const m of members) if (!this.store.user(m)) throw notFound(`user "${m}" not found`);
      let gidNumber: number;
      if (input.gidNumber !== undefined) {
        gidNumber = checkId('gidNumber', input.gidNumber);
        if (this.store.groupByGid(gidNumber)) throw conflict(`gidNumber ${gidNumber} is taken`);
      } else gidNumber = this.store.allocGid();
      const g: Group = { name, gidNumber, members, createdAt: new Date().toISOString(), ...(description ? { description } : {}) };
      await this.store.putGroup(g);
      this.#emit('directory.group.added', name, `group ${name} added (gid ${gidNumber})`);
      return this.groupView(g);
    });
  }

  async removeGroup(name: string): Promise<void> {
    const g = this.#group(name);
    if (name === DEFAULT_GROUP) throw invalid(`group "${DEFAULT_GROUP}" is every user's default group and cannot be removed`);
    const users = this.store.users().filter((u) => u.gidNumber === g.gidNumber);
    if (users.length) throw conflict(`group "${name}" is the primary group of ${users.map((u) => u.name).join(', ')}`, { hint: 'remove those users first' });
    await this.#locks.run(`group:${name}`, 'remove', async () => {
      await this.store.deleteGroup(name);
      this.#emit('directory.group.removed', name, `group ${name} removed`);
    });
  }

  async setMember(group: string, user: string, member: boolean): Promise<GroupView> {
    this.#group(group);
    this.#user(user);
    return this.#locks.run(`group:${group}`, member ? 'member add' : 'member remove', async () => {
      const g = this.store.group(group)!;
      const has = g.members.includes(user);
      if (member && has) return this.groupView(g);
      if (!member && !has) throw notFound(`user "${user}" is not a member of "${group}"`);
      const next: Group = { ...g, members: member ? [...g.members, user] : g.members.filter((m) => m !== user) };
      await this.store.putGroup(next);
      this.#emit('directory.group.member', group, `${user} ${member ? 'joined' : 'left'} ${group}`);
      return this.groupView(next);
    });
  }

  // ---- principals ----

  async principals(): Promise<PrincipalInfo[]> {
    const k = this.#kadmin();
    if (!k) throw unavailable('Kerberos is not available on this manager', { hint: 'storm doctor says why (package missing or realm setup failed)' });
    return k.list();
  }

  // ---- hosts (called by the instance code) ----

  hostView(h: Host): HostView {
    return { ...h, dn: this.store.layout.hostDn(h.fqdn), ...(this.realm ? { principal: `host/${h.fqdn}@${this.realm}` } : {}) };
  }

  listHosts(): HostView[] {
    return this.store.hosts().map((h) => this.hostView(h));
  }

  keytabPath(fqdn: string): string {
    return join(this.#krb!.paths.keytabs, `${checkFqdn(fqdn)}.keytab`);
  }

  /**
   * Enrol an instance: its LDAP host entry, its `host/<fqdn>` principal and a
   * keytab kept for it under STATE/krb5/keytabs/ (0600). Idempotent: enrolling
   * again refreshes the entry (addresses) and keeps the keys unless `rekey`.
   */
  async addHost(input: AddHostInput): Promise<HostView> {
    const fqdn = checkFqdn(input.fqdn);
    const addresses = (input.addresses ?? []).map((a) => {
      if (!/^(?:\d{1,3}\.){3}\d{1,3}$/.test(a) || a.split('.').some((o) => Number(o) > 255)) throw invalid(`address ${JSON.stringify(a)} is not an IPv4 address`);
      return a;
    });
    const instance = input.instance === undefined ? undefined : checkText('instance', input.instance);
    return this.#locks.run(`host:${fqdn}`, 'add', async () => {
      const prev = this.store.host(fqdn);
      const h: Host = { fqdn, addresses: addresses.length ? addresses : (prev?.addresses ?? []), createdAt: prev?.createdAt ?? new Date().toISOString(), ...(instance ? { instance } : {}) };
      await withRevert(async (r) => {
        const k = this.#kadmin();
        if (k) {
          const principal = `host/${fqdn}`;
          let created = false;
          try {
            await k.addRandom(principal);
            created = true;
          } catch (e) {
            if (!isCode(e, 'conflict')) throw e;
          }
          if (created) r.add('principal', () => k.remove(principal));
          const file = `${fqdn}.keytab`;
          const path = this.keytabPath(fqdn);
          if (created || input.rekey || !existsSync(path)) {
            rmSync(path, { force: true }); // ktadd appends: start from an empty keytab
            await k.keytab(principal, this.#krb!.paths.keytabs, file);
            chmodSync(path, 0o600);
            r.add('keytab', () => rmSync(path, { force: true }));
          }
        }
        await this.store.putHost(h);
      });
      // Enrolling again (the instance got its address) is an update, not a second enrolment.
      if (!prev) this.#emit('directory.host.added', fqdn, `host ${fqdn} enrolled${this.realm ? ` (host/${fqdn}@${this.realm})` : ''}`);
      else {
        const moved = h.addresses.join() !== prev.addresses.join();
        if (moved || input.rekey) this.#emit('directory.host.updated', fqdn, `host ${fqdn} updated${moved ? `: at ${h.addresses.join(', ') || 'no address'}` : ''}${input.rekey ? ', new keys' : ''}`);
      }
      return this.hostView(h);
    });
  }

  /** Hold the per-host lock of every fqdn while `fn` runs (busy if any is held). */
  #holdAll<T>(fqdns: string[], action: string, fn: () => Promise<T>): Promise<T> {
    const [first, ...rest] = fqdns;
    if (first === undefined) return fn();
    return this.#locks.run(`host:${first}`, action, () => this.#holdAll(rest, action, fn));
  }

  /**
   * Enrol many hosts at once (the start-up sync): principals and keytabs in
   * two kadmin.local runs, checked against the realm's principal list and the
   * keytab files, then every entry that made it in ONE atomic store batch.
   * A host whose principal or keytab could not be made gets no entry (and a
   * principal created for it is removed); it is returned under `failed`.
   * Existing entries keep their addresses; keys are kept unless missing.
   */
  async addHosts(inputs: { fqdn: string; instance?: string }[]): Promise<{ added: string[]; failed: { fqdn: string; error: string }[] }> {
    const want = new Map<string, string | undefined>();
    // One bad name fails that host only, never the batch (and never reaches kadmin).
    const invalidNames = new Map<string, string>();
    for (const i of inputs) {
      try {
        want.set(checkFqdn(i.fqdn), i.instance === undefined ? undefined : checkText('instance', i.instance));
      } catch (e) {
        invalidNames.set(String(i.fqdn), (e as Error).message);
      }
    }
    const fqdns = [...want.keys()];
    if (!fqdns.length) return { added: [], failed: [...invalidNames].map(([fqdn, error]) => ({ fqdn, error })) };
    return this.#holdAll(fqdns, 'add', async () => {
      const failed = new Map<string, string>();
      const k = this.#kadmin();
      const created: string[] = [];
      if (k) {
        const dir = this.#krb!.paths.keytabs;
        const add = await k.addRandomMany(fqdns.map((f) => `host/${f}`));
        for (const f of fqdns) {
          const why = add.failed.get(`host/${f}`);
          if (why) failed.set(f, why);
          else if (!add.existed.has(`host/${f}`)) created.push(f);
        }
        // Keys for new principals, and for old ones whose keytab is missing (ktadd appends: start empty).
        const needKeys = fqdns.filter((f) => !failed.has(f) && (created.includes(f) || !existsSync(this.keytabPath(f))));
        for (const f of needKeys) rmSync(this.keytabPath(f), { force: true });
        const kt = await k.keytabMany(needKeys.map((f) => ({ principal: `host/${f}`, file: `${f}.keytab` })), dir);
        for (const [p, why] of kt) failed.set(p.slice('host/'.length), why);
        // Trust what the realm and the disk say, not kadmin's output.
        const present = await k.listNames('host/*');
        for (const f of fqdns) {
          if (failed.has(f)) continue;
          if (!present.has(`host/${f}`)) failed.set(f, `principal host/${f} missing after addprinc`);
          else {
            const p = this.keytabPath(f);
            if (!existsSync(p) || statSync(p).size === 0) failed.set(f, `keytab ${p} missing after ktadd`);
            else chmodSync(p, 0o600);
          }
        }
        const undo = created.filter((f) => failed.has(f));
        if (undo.length) {
          await k.removeMany(undo.map((f) => `host/${f}`)).catch(() => undefined);
          for (const f of undo) rmSync(this.keytabPath(f), { force: true });
        }
      }
      const now = new Date().toISOString();
      const hosts: Host[] = fqdns
        .filter((f) => !failed.has(f))
        .map((f) => {
          const prev = this.store.host(f);
          const instance = want.get(f);
          return { fqdn: f, addresses: prev?.addresses ?? [], createdAt: prev?.createdAt ?? now, ...(instance ? { instance } : {}) };
        });
      try {
        await this.store.putHosts(hosts);
      } catch (e) {
        // Nothing half-written: the principals made for this batch go with it.
        const mine = created.filter((f) => !failed.has(f));
        if (k && mine.length) {
          await k.removeMany(mine.map((f) => `host/${f}`)).catch(() => undefined);
          for (const f of mine) rmSync(this.keytabPath(f), { force: true });
        }
        throw e;
      }
      if (hosts.length) this.#emit('directory.host.added', `${hosts.length} hosts`, `${hosts.length} hosts enrolled${this.realm ? ` with host/ principals in ${this.realm}` : ''}`);
      return { added: hosts.map((h) => h.fqdn), failed: [...invalidNames, ...failed].map(([fqdn, error]) => ({ fqdn, error })) };
    });
  }

  /** Drop many hosts at once: principals in one kadmin.local run (checked), keytabs, entries in one atomic batch. */
  async removeHosts(fqdns: string[]): Promise<{ removed: string[]; failed: { fqdn: string; error: string }[] }> {
    const all = [...new Set(fqdns.map((f) => checkFqdn(f)))];
    if (!all.length) return { removed: [], failed: [] };
    return this.#holdAll(all, 'remove', async () => {
      const failed = new Map<string, string>();
      const k = this.#kadmin();
      if (k) {
        for (const [p, why] of await k.removeMany(all.map((f) => `host/${f}`))) failed.set(p.slice('host/'.length), why);
        const present = await k.listNames('host/*');
        for (const f of all) if (!failed.has(f) && present.has(`host/${f}`)) failed.set(f, `principal host/${f} still present after delprinc`);
        for (const f of all) if (!failed.has(f)) rmSync(this.keytabPath(f), { force: true });
      }
      const gone = all.filter((f) => !failed.has(f) && this.store.host(f));
      await this.store.deleteHosts(gone);
      if (gone.length) this.#emit('directory.host.removed', `${gone.length} hosts`, `${gone.length} hosts removed`);
      return { removed: all.filter((f) => !failed.has(f)), failed: [...failed].map(([fqdn, error]) => ({ fqdn, error })) };
    });
  }

  /** The keytab kept for an instance (what the XML-RPC API hands to that instance only). */
  keytab(fqdn: string): Buffer {
    checkFqdn(fqdn);
    if (!this.store.host(fqdn)) throw notFound(`host "${fqdn}" is not enrolled`);
    if (!this.#kadmin()) throw unavailable('Kerberos is not available on this manager', { hint: 'storm doctor says why' });
    const p = this.keytabPath(fqdn);
    if (!existsSync(p)) throw notFound(`no keytab kept for ${fqdn}`, { hint: 'enrol the host again to re-key it' });
    return readFileSync(p);
  }

  /**
   * The keytab for the instance that asks (identified by its certificate in
   * the XML-RPC layer): only the instance a host was enrolled for gets it.
   */
  keytabFor(requester: { instance: string }, fqdn: string): Buffer {
    checkFqdn(fqdn);
    const h = this.store.host(fqdn);
    if (!h || h.instance === undefined || h.instance !== requester.instance) {
      throw unauthorized(`instance ${requester.instance} may not fetch the keytab of ${fqdn}`, { hint: 'an instance gets only its own host keytab' });
    }
    return this.keytab(fqdn);
  }

  /** Drop an instance's host entry, principal and keytab (when the instance is destroyed). */
  async removeHost(fqdn: string): Promise<void> {
    checkFqdn(fqdn);
    await this.#locks.run(`host:${fqdn}`, 'remove', async () => {
      const k = this.#kadmin();
      if (k) {
        try {
          await k.remove(`host/${fqdn}`);
        } catch (e) {
          if (!isCode(e, 'not_found')) throw e;
        }
        rmSync(this.keytabPath(fqdn), { force: true });
      }
      if (this.store.host(fqdn)) await this.store.deleteHost(fqdn);
      this.#emit('directory.host.removed', fqdn, `host ${fqdn} removed`);
    });
    this.#log?.debug('host removed', { fqdn });
  }
}
