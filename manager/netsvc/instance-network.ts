import type { DhcpService } from './dhcp/service.ts';
import type { DnsService } from './dns/service.ts';

/** What an instance gets on the guest network. */
export interface InstanceAddress {
  name: string;
  mac: string;
  ip: string;
  /** NAME.<domain> */
  fqdn: string;
}

/**
 * The glue provisioning calls: an instance's MAC gets a DHCP reservation (so
 * it always gets the same address) and its name an A and PTR record; both go
 * when the instance is destroyed. Idempotent both ways, so a retried or
 * reconciled provisioning step is harmless.
 */
export class InstanceNetwork {
  readonly #dns: DnsService;
  readonly #dhcp: DhcpService;
  readonly #domain: string;

  constructor(deps: { dns: DnsService; dhcp: DhcpService; domain: string }) {
    this.#dns = deps.dns;
    this.#dhcp = deps.dhcp;
    this.#domain = deps.domain;
  }

  async attach(name: string, mac: string): Promise<InstanceAddress> {
    const res = await this.#dhcp.reserveNext(mac, name.toLowerCase());
    await this.#dns.setHost(name, res.ip);
    return { name: name.toLowerCase(), mac: res.mac, ip: res.ip, fqdn: `${name.toLowerCase()}.${this.#domain}` };
  }

  async detach(name: string, mac: string): Promise<void> {
    await this.#dns.removeHost(name);
    await this.#dhcp.removeReservation(mac).catch((e: { code?: string }) => {
      if (e.code !== 'not_found') throw e;
    });
  }
}

/**
 * Follow the instances' lifecycle on the event bus: an instance gets its
 * reservation and records when it is created (before it first boots), and
 * loses them when it is destroyed. Failures are events, never thrown at the bus.
 */
export function followInstances(deps: {
  bus: { subscribe(fn: (e: { kind: string; object?: string }) => void): () => void; emit(e: { kind: string; message: string; level?: 'info' | 'warn' | 'error'; object?: string; data?: Record<string, unknown> }): unknown };
  instances: { get(ref: string): Promise<{ name: string; mac: string }> };
  network: InstanceNetwork;
  reservations: () => Promise<{ mac: string; hostname?: string }[]>;
}): { unsubscribe: () => void; idle: () => Promise<void> } {
  let chain: Promise<void> = Promise.resolve();
  const unsubscribe = deps.bus.subscribe((e) => {
    const name = e.object?.startsWith('instance/') ? e.object.slice('instance/'.length) : undefined;
    if (!name || (e.kind !== 'instance.created' && e.kind !== 'instance.destroyed')) return;
    chain = chain.then(async () => {
      try {
        if (e.kind === 'instance.created') {
          const inst = await deps.instances.get(name);
          const a = await deps.network.attach(inst.name, inst.mac);
          deps.bus.emit({ kind: 'instance.network', object: `instance/${name}`, message: `${name} is ${a.fqdn} at ${a.ip} (${a.mac})`, data: { ...a } });
        } else {
          const res = (await deps.reservations()).find((r) => r.hostname === name.toLowerCase());
          if (res) await deps.network.detach(name, res.mac);
        }
      } catch (err) {
        deps.bus.emit({ kind: 'instance.network.failed', level: 'error', object: `instance/${name}`, message: `network for ${name}: ${(err as Error).message}` });
      }
    });
  });
  return { unsubscribe, idle: () => chain };
}
