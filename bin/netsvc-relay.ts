/**
 * The guest namespace's socket holder (run by `storm up` with
 * `ip netns exec NS`): binds DHCP (0.0.0.0:67) and DNS (ADDRESS:53, UDP) inside
 * the namespace and passes every packet to the parent over the IPC channel;
 * the parent (the manager, the one owner of the database) answers and this
 * process sends the reply. TCP listeners (`--tcp NAME=HOST:PORT`: DNS over
 * TCP, the appliance API) hand each accepted connection itself to the parent
 * (its file descriptor over the IPC channel, unread), which joins it to the
 * server on loopback. It exits when the parent goes away.
 * Usage: netsvc-relay.ts --dns HOST:PORT --dhcp HOST:PORT [--tcp NAME=HOST:PORT ...]
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';

interface ToParent { k: 'dhcp' | 'dns' | 'tcp' | 'ready' | 'error'; b?: string; from?: { address: string; port: number }; to?: string; message?: string }
interface FromParent { k: 'dhcp' | 'dns'; b: string; to: { address: string; port: number } }

const MAX = 4096;
const send = (m: ToParent, handle?: TcpSocket) => process.send?.(m, handle);
const hostPort = (name: string, v: string | undefined) => {
  const m = v ? /^(.+):(\d+)$/.exec(v) : null;
  if (!m) throw new Error(`${name} HOST:PORT is required`);
  return { host: m[1]!, port: Number(m[2]) };
};
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return hostPort(name, i >= 0 ? process.argv[i + 1] : undefined);
};
/** Every `--tcp NAME=HOST:PORT`. */
const tcpArgs = () =>
  process.argv.flatMap((a, i) => {
    if (a !== '--tcp') return [];
    const m = /^([a-z][a-z0-9-]*)=(.+)$/.exec(process.argv[i + 1] ?? '');
    if (!m) throw new Error('--tcp NAME=HOST:PORT expected');
    return [{ name: m[1]!, ...hostPort('--tcp', m[2]) }];
  });

function bind(kind: 'dhcp' | 'dns', at: { host: string; port: number }): Promise<Socket> {
  const s = createSocket({ type: 'udp4', reuseAddr: kind === 'dhcp' });
  s.on('message', (msg, rinfo) => {
    if (msg.length <= MAX) send({ k: kind, b: msg.toString('base64'), from: { address: rinfo.address, port: rinfo.port } });
  });
  s.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(at.port, at.host, () => {
      s.off('error', reject);
      if (kind === 'dhcp') s.setBroadcast(true);
      resolve(s);
    });
  });
}

/** Accept without reading (pauseOnConnect) and pass the connection to the parent. */
function listenTcp(t: { name: string; host: string; port: number }): Promise<Server> {
  const server = createServer({ pauseOnConnect: true }, (sock) => {
    sock.on('error', () => sock.destroy());
    send({ k: 'tcp', to: t.name, from: { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 } }, sock);
  });
  server.maxConnections = 256;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(t.port, t.host, () => (server.off('error', reject), resolve(server)));
  });
}

if (!process.send) {
  process.stderr.write('netsvc-relay: run by storm up (needs an IPC channel)\n');
  process.exit(2);
}
try {
  const sockets = { dhcp: await bind('dhcp', arg('--dhcp')), dns: await bind('dns', arg('--dns')) };
  for (const t of tcpArgs()) await listenTcp(t);
  process.on('message', (raw: unknown) => {
    const m = raw as FromParent;
    if ((m?.k !== 'dhcp' && m?.k !== 'dns') || typeof m.b !== 'string' || !m.to) return;
    sockets[m.k].send(Buffer.from(m.b, 'base64'), m.to.port, m.to.address, () => undefined);
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => undefined);
  send({ k: 'ready' });
} catch (e) {
  send({ k: 'error', message: (e as Error).message });
  process.exit(1);
}
