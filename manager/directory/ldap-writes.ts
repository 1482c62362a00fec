/**
 * LDAP writes from the admin identity and Password Modify, mapped onto the
 * Directory's own calls so LDAP and Kerberos stay in step. Answers LDAP
 * result codes; StormErrors become the matching code.
 */
import { invalid, type StormError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { RC } from '../netsvc/ldap/protocol.ts';
import type { Modification } from '../netsvc/ldap/server.ts';
import type { Directory } from './directory.ts';
import { checkName, checkPassword, checkText, type Group } from './model.ts';

/**
 * The LDAP admin's ModifyRequest, mapped onto the Directory's calls so LDAP and
 * Kerberos stay in step: users' cn, sn, mail, loginShell, homeDirectory and
 * userPassword (clear text: hashed here, set in Kerberos too); groups'
 * memberUid and description. Everything else is refused with a reason.
 */
export async function ldapModify(dir: Directory, ndn: string, changes: Modification[], log?: Logger): Promise<{ code: number; message?: string }> {
  const entry = dir.store.tree.get(ndn);
  if (!entry) return { code: RC.noSuchObject };
  const uid = dir.store.userByNdn(ndn)?.name;
  const isGroup = entry.get('objectClass')?.some((o) => o.toLowerCase() === 'posixgroup');
  const one = (c: Modification) => {
    if (c.op === 'delete' || c.values.length !== 1) throw invalid(`${c.attr} takes exactly one value`);
    return c.values[0]!;
  };
  try {
    if (uid !== undefined) {
      const patch: Parameters<Directory['updateUser']>[1] = {};
      let password: string | undefined;
      for (const c of changes) {
        if (c.attr === 'cn') patch.cn = one(c);
        else if (c.attr === 'sn') patch.sn = one(c);
        else if (c.attr === 'loginshell') patch.shell = one(c);
        else if (c.attr === 'homedirectory') patch.home = one(c);
        else if (c.attr === 'mail') patch.mail = c.op === 'delete' ? null : one(c);
        else if (c.attr === 'userpassword') {
          password = one(c);
          if (password.startsWith('{')) return { code: RC.unwillingToPerform, message: 'send the clear-text password: it is hashed here and set in Kerberos too' };
          checkPassword(password);
        } else return { code: RC.unwillingToPerform, message: `${c.attr} of a user cannot be changed over LDAP` };
      }
      if (Object.keys(patch).length) await dir.updateUser(uid, patch);
      if (password !== undefined) await dir.setPassword(uid, password);
      return { code: RC.success };
    }
    if (isGroup) {
      const name = entry.get('cn')![0]!;
      const g = dir.store.group(name);
      if (!g) return { code: RC.unwillingToPerform, message: 'not a directory group' };
      let members = [...g.members];
      let description = g.description;
      for (const c of changes) {
        if (c.attr === 'memberuid') {
          for (const v of c.values) checkName('user', v);
          if (c.op === 'replace') members = [...new Set(c.values)];
          else if (c.op === 'add') {
            for (const v of c.values) if (members.includes(v)) return { code: RC.attributeOrValueExists, message: `${v} is already a member` };
            members.push(...c.values);
          } else members = c.values.length ? members.filter((m) => !c.values.includes(m)) : [];
        } else if (c.attr === 'description') description = c.op === 'delete' ? undefined : one(c);
        else return { code: RC.unwillingToPerform, message: `${c.attr} of a group cannot be changed over LDAP${c.attr === 'member' ? ' (change memberUid; member follows)' : ''}` };
      }
      for (const m of members) if (!dir.store.user(m)) return { code: RC.constraintViolation, message: `user "${m}" does not exist` };
      if (description !== undefined) checkText('description', description);
      for (const m of g.members.filter((x) => !members.includes(x))) await dir.setMember(name, m, false);
      for (const m of members.filter((x) => !g.members.includes(x))) await dir.setMember(name, m, true);
      if (description !== g.description) {
        const cur = dir.store.group(name)!;
        const next: Group = { ...cur };
        if (description === undefined) delete next.description;
        else next.description = description;
        await dir.store.putGroup(next);
      }
      return { code: RC.success };
    }
    return { code: RC.unwillingToPerform, message: 'only users and groups are modified over LDAP' };
  } catch (e) {
    const code = (e as StormError).code;
    const message = (e as Error).message;
    if (code === 'invalid') return { code: RC.constraintViolation, message };
    if (code === 'not_found') return { code: RC.noSuchAttribute, message };
    if (code === 'conflict') return { code: RC.attributeOrValueExists, message };
    if (code === 'busy') return { code: RC.busy, message };
    log?.warn('ldap modify failed', { ndn, error: message });
    return { code: RC.other, message: 'the change failed; see the manager log' };
  }
}

/** Password Modify over LDAP (the server checked who may): LDAP and Kerberos together. */
export async function ldapSetPassword(dir: Directory, ndn: string, password: string, log?: Logger): Promise<{ code: number; message?: string }> {
  const u = dir.store.userByNdn(ndn);
  if (!u) return { code: RC.unwillingToPerform, message: 'only directory users have passwords here' };
  try {
    await dir.setPassword(u.name, password);
    return { code: RC.success };
  } catch (e) {
    const code = (e as StormError).code;
    if (code === 'invalid') return { code: RC.constraintViolation, message: (e as Error).message };
    if (code === 'busy') return { code: RC.busy, message: (e as Error).message };
    log?.warn('ldap password change failed', { user: u.name, error: (e as Error).message });
    return { code: RC.other, message: 'the change failed; see the manager log' };
  }
}
