import type { Health } from '../../lib/health.ts';

/**
 * The small contract the directory's network services (LDAP, Kerberos) keep
 * until the shared NetService contract lands: start, stop, and health as data.
 */
export interface Lifecycle {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): Promise<Health>;
}
