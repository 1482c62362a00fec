import type { Directory } from './directory.ts';

/**
 * Follow the instances' lifecycle on the event bus: an instance is enrolled
 * when it is created (LDAP host entry NAME.<domain>, `host/` principal,
 * keytab kept for it), gets its address when the network has one for it,
 * and is dropped when it is destroyed. Failures are events, never thrown at the bus.
 */
export function followInstancesInDirectory(deps: {
  bus: {
    subscribe(fn: (e: { kind: string; object?: string; data?: Record<string, unknown> }) => void): () => void;
    emit(e: { kind: string; message: string; level?: 'info' | 'warn' | 'error'; object?: string; data?: Record<string, unknown> }): unknown;
  };
  directory: Directory;
  domain: string;
}): { unsubscribe: () => void; idle: () => Promise<void> } {
  let chain: Promise<void> = Promise.resolve();
  const unsubscribe = deps.bus.subscribe((e) => {
    const name = e.object?.startsWith('instance/') ? e.object.slice('instance/'.length).toLowerCase() : undefined;
    if (!name || (e.kind !== 'instance.created' && e.kind !== 'instance.destroyed' && e.kind !== 'instance.network')) return;
    const fqdn = `${name}.${deps.domain}`;
    chain = chain.then(async () => {
      try {
        if (e.kind === 'instance.created') await deps.directory.addHost({ fqdn, instance: name });
        else if (e.kind === 'instance.network') {
          const ip = typeof e.data?.ip === 'string' ? e.data.ip : undefined;
          await deps.directory.addHost({ fqdn, instance: name, ...(ip ? { addresses: [ip] } : {}) });
        } else await deps.directory.removeHost(fqdn);
      } catch (err) {
        deps.bus.emit({ kind: 'instance.directory.failed', level: 'error', object: `instance/${name}`, message: `directory entry for ${name}: ${(err as Error).message}` });
      }
    });
  });
  return { unsubscribe, idle: () => chain };
}
