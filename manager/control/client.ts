import { connect, type Socket } from 'node:net';
import { fromErrorData, unreachable } from '../../lib/errors.ts';
import type { StormApi } from '../api.ts';
import type { StormEvent } from '../events.ts';
import { LineReader, type Response } from './protocol.ts';

/** StormApi over the manager's control socket. */
export class ControlClient implements StormApi {
  readonly #sock: Socket;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Set<(e: StormEvent) => void>();
  #next = 1;
  #closed = false;

  private constructor(sock: Socket) {
    this.#sock = sock;
    const reader = new LineReader();
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      for (const line of reader.push(chunk)) {
        const msg = JSON.parse(line) as Response;
        if ('event' in msg) {
          for (const fn of this.#listeners) fn(msg.event);
          continue;
        }
        const p = this.#pending.get(msg.id);
        if (!p) continue;
        this.#pending.delete(msg.id);
        if ('error' in msg) p.reject(fromErrorData(msg.error));
        else p.resolve(msg.result);
      }
    });
    sock.on('close', () => {
      this.#closed = true;
      for (const p of this.#pending.values()) p.reject(unreachable('the manager closed the control connection'));
      this.#pending.clear();
    });
    sock.on('error', () => {});
  }

  /** Connect to the manager owning `socketPath`; `unreachable` with a fix when none runs. */
  static connect(socketPath: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const sock = connect(socketPath);
      sock.once('connect', () => resolve(new ControlClient(sock)));
      sock.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          unreachable(`no manager is running for ${socketPath.replace(/\/control\.sock$/, '')} (${e.code ?? e.message})`, {
            hint: 'start one with `storm manager start` (or `npm start`), or point --state / STORM_STATE at the right state directory',
          }),
        ),
      );
    });
  }

  call<R = unknown>(method: string, params: Record<string, unknown> = {}): Promise<R> {
    if (this.#closed) return Promise.reject(unreachable('the control connection is closed'));
    const id = this.#next++;
    return new Promise<R>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#sock.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  subscribe(fn: (e: StormEvent) => void): () => void {
    if (this.#listeners.size === 0) void this.call('events.subscribe').catch(() => {});
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  close(): void {
    this.#sock.end();
    this.#sock.destroy();
  }
}
