import { spawnSync } from 'node:child_process';
import { request } from 'node:https';
import { encodeCall } from '../../lib/xmlrpc/codec.ts';

export interface ClientCreds {
  key?: string;
  cert?: string;
  ca: string;
}

/** One XML-RPC POST over TLS with Node's client; resolves with status+body or the connection error. */
export function rpcPost(port: number, creds: ClientCreds, body = encodeCall('host.info', [{}]), path = '/RPC2'): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1', port, path, method: 'POST', ...creds, agent: false, timeout: 30_000,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', (e) => resolve({ error: e.message }));
      },
    );
    req.on('error', (e) => resolve({ error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

/** `openssl s_client` sending one XML-RPC request; returns everything it printed. */
export function sClient(port: number, files: { ca: string; cert?: string; key?: string }, method = 'host.info'): string {
  const body = encodeCall(method, [{}]);
  const reqText = `POST /RPC2 HTTP/1.1\r\nHost: stormd\r\nContent-Type: text/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', files.ca, '-ign_eof', '-verify_return_error'];
  if (files.cert) args.push('-cert', files.cert);
  if (files.key) args.push('-key', files.key);
  const r = spawnSync('openssl', args, { input: reqText, encoding: 'utf8', timeout: 30_000 });
  return `${r.stdout}\n${r.stderr}`;
}
