import type { StormEvent, EventBus } from './events.ts';
import type { CallContext, Registry } from './services/registry.ts';

/**
 * The API the console and the CLI program against. In the manager process it
 * calls the registry directly; elsewhere it goes over the control socket.
 */
export interface StormApi {
  call<R = unknown>(method: string, params?: Record<string, unknown>): Promise<R>;
  /** Live events; returns the unsubscribe function. */
  subscribe(fn: (e: StormEvent) => void): () => void;
  close(): void;
}

export class LocalApi implements StormApi {
  readonly #reg: Registry;
  readonly #bus: EventBus;
  readonly #ctx: CallContext;
  readonly #subs = new Set<() => void>();
  constructor(reg: Registry, bus: EventBus, ctx: CallContext) {
    this.#reg = reg;
    this.#bus = bus;
    this.#ctx = ctx;
  }
  async call<R>(method: string, params: Record<string, unknown> = {}): Promise<R> {
    // Round-trip through JSON so local callers see exactly what remote ones see.
    const out = await this.#reg.call(method, params, this.#ctx);
    return (out === undefined ? undefined : JSON.parse(JSON.stringify(out))) as R;
  }
  subscribe(fn: (e: StormEvent) => void): () => void {
    const off = this.#bus.subscribe(fn);
    this.#subs.add(off);
    return () => {
      off();
      this.#subs.delete(off);
    };
  }
  close(): void {
    for (const off of this.#subs) off();
    this.#subs.clear();
  }
}
