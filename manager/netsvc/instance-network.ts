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
