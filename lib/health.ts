/**
 * Health as data: a component is healthy, unhealthy (present but broken) or
 * undetected (absent), always with a one-line reason and, when not healthy,
 * the fix. A missing dependency is a reported state, never a crash.
 */
export type HealthStatus = 'healthy' | 'unhealthy' | 'undetected';

export interface Health {
  component: string;
  status: HealthStatus;
  reason: string;
  fix?: string;
  /** Extra facts (versions, URIs) for -o json consumers. */
  facts?: Record<string, unknown>;
}

export const healthy = (component: string, reason: string, facts?: Record<string, unknown>): Health => ({ component, status: 'healthy', reason, ...(facts ? { facts } : {}) });
export const unhealthy = (component: string, reason: string, fix: string, facts?: Record<string, unknown>): Health => ({ component, status: 'unhealthy', reason, fix, ...(facts ? { facts } : {}) });
export const undetected = (component: string, reason: string, fix: string): Health => ({ component, status: 'undetected', reason, fix });

/** Run a probe; a probe that throws is reported as unhealthy, not propagated. */
export async function probe(component: string, fn: () => Promise<Health>, fix = 'see storm doctor -o json for details'): Promise<Health> {
  try {
    return await fn();
  } catch (e) {
    return unhealthy(component, `probe failed: ${(e as Error).message.split('\n')[0]}`, fix);
  }
}
