import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

/** A free TCP port on loopback (the OS picks; we release it for the caller). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A port free for both TCP and UDP (DNS-style services need both). */
export async function freeTcpUdpPort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort(host);
    const ok = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, host, () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no port free for both TCP and UDP');
}
