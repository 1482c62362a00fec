import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import { toStormError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { EventBus } from '../events.ts';
import type { Registry } from '../services/registry.ts';
import { LineReader, parseRequest, type Response } from './protocol.ts';

/**
 * The local control socket: how every `storm` command reaches the one manager
 * that owns the state. Unix socket, owner-only (0600).
 */
export class ControlServer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  constructor(readonly path: string, registry: Registry, bus: EventBus, log: Logger) {
    this.#server = createServer((sock) => {
      this.#sockets.add(sock);
      const reader = new LineReader();
      let unsubscribe: (() => void) | undefined;
      const send = (r: Response) => {
        if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n');
      };
      sock.setEncoding('utf8');
      sock.on('data', (chunk: string) => {
        let lines: string[];
        try {
          lines = reader.push(chunk);
        } catch (e) {
          send({ id: 0, error: toStormError(e).toJSON() });
          sock.destroy();
          return;
        }
        for (const line of lines) {
          let req;
          try {
            req = parseRequest(line);
          } catch (e) {
            send({ id: 0, error: toStormError(e).toJSON() });
            continue;
          }
          if (req.method === 'events.subscribe') {
            unsubscribe ??= bus.subscribe((ev) => send({ event: ev }));
            send({ id: req.id, result: true });
            continue;
          }
          const id = req.id;
          registry.call(req.method, req.params, { actor: 'cli', readOnly: false }).then(
            (result) => send({ id, result: result ?? null }),
            (e) => {
              const err = toStormError(e);
              if (err.code === 'internal') log.error('control call failed', { method: req.method, error: err.message, stack: (e as Error).stack });
              send({ id, error: err.toJSON() });
            },
          );
        }
      });
      sock.on('error', () => {});
      sock.on('close', () => {
        unsubscribe?.();
        this.#sockets.delete(sock);
      });
    });
  }

  async listen(): Promise<void> {
    rmSync(this.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
    rmSync(this.path, { force: true });
  }
}
