/**
 * What the admin allowed an instance beyond its own things: to ask for new
 * instances of one appliance (`storm grant add web1 wiki`), or to register MX
 * records for the cloud's domain itself (the `@mx` permission). Stored per
 * instance name and per appliance; an instance's grants go when it does.
 */
import { invalid, notFound } from '../../lib/errors.ts';
import type { Collection, Store } from '../store/store.ts';

/** The permission to register MX records for the domain itself (not an appliance id). */
export const DOMAIN_MX = '@mx';

export interface Grant {
  instance: string;
  /** An appliance id, or `@mx`. */
  appliance: string;
  grantedAt: string;
  by: string;
}

const APPLIANCE_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Throws `invalid` unless `a` is an appliance id (no version) or `@mx`. */
export function checkGrantName(a: string): void {
  if (a !== DOMAIN_MX && !APPLIANCE_ID.test(a)) throw invalid(`"${a}" is not an appliance id or ${DOMAIN_MX}`, { hint: 'grant an appliance by its id without a version (e.g. wiki), or @mx for MX records of the domain' });
}

export class Grants {
  readonly #c: Collection<Grant>;

  constructor(store: Store) {
    this.#c = store.collection<Grant>('api.grants');
  }

  #key(instance: string, appliance: string): string {
    return `${instance}/${appliance}`;
  }

  async add(instance: string, appliance: string, by: string): Promise<Grant> {
    checkGrantName(appliance);
    const existing = await this.#c.get(this.#key(instance, appliance));
    if (existing) return existing;
    const g: Grant = { instance, appliance, grantedAt: new Date().toISOString(), by };
    await this.#c.put(this.#key(instance, appliance), g);
    return g;
  }

  async remove(instance: string, appliance: string): Promise<Grant> {
    const g = await this.#c.get(this.#key(instance, appliance));
    if (!g) throw notFound(`instance ${instance} has no grant for ${appliance}`, { hint: 'storm grant list shows the grants' });
    await this.#c.del(this.#key(instance, appliance));
    return g;
  }

  async list(instance?: string): Promise<Grant[]> {
    const all = await this.#c.values(instance ? { prefix: `${instance}/` } : {});
    return all.sort((a, b) => a.instance.localeCompare(b.instance) || a.appliance.localeCompare(b.appliance));
  }

  async has(instance: string, appliance: string): Promise<boolean> {
    return (await this.#c.get(this.#key(instance, appliance))) !== undefined;
  }

  /** The instance is gone: so are its grants (a new instance with its name starts with none). */
  async removeInstance(instance: string): Promise<number> {
    const gs = await this.list(instance);
    for (const g of gs) await this.#c.del(this.#key(g.instance, g.appliance));
    return gs.length;
  }
}
