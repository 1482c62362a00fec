import { connect, type Socket } from 'node:net';
import { fromErrorData, invalid, toStormError, unreachable } from '../../lib/errors.ts';
import type { StormApi } from '../api.ts';
import type { StormEvent } from '../events.ts';
import { LineReader, MAX_RESPONSE_LINE, type Response } from './protocol.ts';

/** StormApi over the manager's control socket. */
export class ControlClient implements StormApi {
  readonly #sock: Socket;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Set<(e: StormEvent) => void>();
  #next = 1;
  #closed = false;

  private constructor(sock: Socket) {
    this.#sock = sock;
    // The manager is trusted (owner-only socket), but still bounded: a runaway answer fails the call, not the process.
    const reader = new LineReader(MAX_RESPONSE_LINE);
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      let lines: string[];
      try {
        lines = reader.push(chunk);
      } catch (e) {
        this.#fail(toStormError(e));
        return;
      }
      for (const line of lines) {
        let msg: Response;
        try {
          msg = JSON.parse(line) as Response;
        } catch {
          this.#fail(invalid('the manager sent a control message that is not JSON'));
          return;
        }
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
    sock.on('close', () => this.#fail(unreachable('the manager closed the control connection')));
    sock.on('error', () => {});
  }

  /** Every pending call fails with `err`; the connection is done. */
  #fail(err: Error): void {
    this.#closed = true;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#sock.destroy();
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
