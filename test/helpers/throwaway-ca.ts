import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestTls {
  /** PEM strings, the shape servers take ({key, cert, ca}). */
  key: string;
  cert: string;
  ca: string;
  /** Files, for clients (LDAPTLS_CACERT, curl --cacert). */
  caFile: string;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * A throwaway CA and a server certificate for 127.0.0.1/localhost, minted
 * with openssl into `dir` (a test's temp dir). For tests only.
 */
export function throwawayCa(dir: string, cn = 'storm-test-ca'): TestTls {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${cn}`], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf'], dir);
  const r = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { key: r('server.key'), cert: r('server.pem'), ca: r('ca.pem'), caFile: join(dir, 'ca.pem') };
}
