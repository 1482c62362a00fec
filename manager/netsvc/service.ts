import type { Health } from '../../lib/health.ts';

/**
 * One network service the manager runs for the instances (DNS, DHCP, later
 * LDAP and Kerberos). The manager starts them after the store opens and stops
 * them before it closes; a service that is configured off still answers
 * `status()` (as `undetected`, with how to turn it on).
 */
export interface NetService {
  /** Short name, also the health component ("dns", "dhcp"). */
  readonly name: string;
  /** Bind sockets and load state; rejects with a StormError when it cannot listen. */
  start(): Promise<void>;
  /** Close sockets; idempotent. In-flight work is dropped, persisted state is intact. */
  stop(): Promise<void>;
  /** Re-read records/settings from the store (after an admin change); never drops sockets. */
  reload(): Promise<void>;
  /** Health as data: listening where, or why not and how to fix it. */
  status(): Health;
}
