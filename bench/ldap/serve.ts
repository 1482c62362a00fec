// Our LDAP server over the benchmark's entries, in its own process (as slapd is):
// prints "ready PORT" and serves until killed.
import { LdapServer } from '../../manager/netsvc/ldap/server.ts';
import { Tree } from '../../manager/netsvc/ldap/tree.ts';
import { normalizeDn } from '../../manager/netsvc/ldap/dn.ts';
import { hashPassword, verifyPassword } from '../../manager/directory/password.ts';
import { BENCH_BASE, BENCH_PASSWORD, benchEntries } from './entries.ts';

const tree = new Tree();
for (const e of benchEntries()) tree.put(e.dn, e.attrs);
// One bind identity with a real salted hash: binds cost what they cost in the manager.
const bindDn = `uid=user0,ou=people,${BENCH_BASE}`;
const hash = await hashPassword(BENCH_PASSWORD);
const server = new LdapServer({
  tree,
  baseDn: BENCH_BASE,
  authenticate: async (ndn, pw) => (ndn === normalizeDn(bindDn) && (await verifyPassword(pw, hash)) ? { dn: bindDn, ndn, role: 'user' } : undefined),
});
const port = await server.listen(Number(process.argv[2] ?? 0), '127.0.0.1');
process.stdout.write(`ready ${port}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
