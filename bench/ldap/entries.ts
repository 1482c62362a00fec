/** The benchmark's directory: the same entries for our server and for slapd. */
export const BENCH_BASE = 'dc=bench,dc=local';
export const BENCH_USERS = 1000;
export const BENCH_PASSWORD = 'bench-password';

export interface BenchEntry {
  dn: string;
  attrs: Record<string, string[]>;
}

export function benchEntries(n = BENCH_USERS): BenchEntry[] {
  const out: BenchEntry[] = [
    { dn: BENCH_BASE, attrs: { objectClass: ['top', 'dcObject', 'organization'], dc: ['bench'], o: ['bench'] } },
    { dn: `ou=people,${BENCH_BASE}`, attrs: { objectClass: ['top', 'organizationalUnit'], ou: ['people'] } },
    { dn: `ou=groups,${BENCH_BASE}`, attrs: { objectClass: ['top', 'organizationalUnit'], ou: ['groups'] } },
  ];
  for (let i = 0; i < n; i++) {
    out.push({
      dn: `uid=user${i},ou=people,${BENCH_BASE}`,
      attrs: {
        objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson', 'posixAccount'],
        uid: [`user${i}`],
        cn: [`Bench User ${i}`],
        sn: ['User'],
        uidNumber: [String(10000 + i)],
        gidNumber: ['10000'],
        homeDirectory: [`/home/user${i}`],
        loginShell: ['/bin/bash'],
        mail: [`user${i}@bench.local`],
      },
    });
  }
  out.push({ dn: `cn=users,ou=groups,${BENCH_BASE}`, attrs: { objectClass: ['top', 'posixGroup'], cn: ['users'], gidNumber: ['10000'] } });
  return out;
}

/** LDIF for slapadd. */
export function toLdif(entries: BenchEntry[]): string {
  return entries.map((e) => [`dn: ${e.dn}`, ...Object.entries(e.attrs).flatMap(([k, vs]) => vs.map((v) => `${k}: ${v}`))].join('\n')).join('\n\n') + '\n';
}
