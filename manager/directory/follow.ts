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

/**
 * Bring the directory in line with the instances that exist (at start: events
 * lost while the manager was down). Enrols instances that have no host entry
 * and drops instance hosts whose instance is gone; hosts enrolled without an
 * instance are left alone. Returns what it changed; failures are events.
 */
export async function reconcileDirectory(deps: {
  directory: Directory;
  instances: { list(): Promise<{ name: string }[]> };
  domain: string;
  bus?: { emit(e: { kind: string; message: string; level?: 'info' | 'warn' | 'error'; object?: string }): unknown };
}): Promise<{ enrolled: string[]; dropped: string[] }> {
  const out = { enrolled: [] as string[], dropped: [] as string[] };
  const names = new Set((await deps.instances.list()).map((i) => i.name.toLowerCase()));
  const hosts = deps.directory.listHosts();
  const have = new Set(hosts.filter((h) => h.instance !== undefined).map((h) => h.instance!));
  for (const name of names) {
    if (have.has(name)) continue;
    try {
      await deps.directory.addHost({ fqdn: `${name}.${deps.domain}`, instance: name });
      out.enrolled.push(name);
    } catch (err) {
      deps.bus?.emit({ kind: 'instance.directory.failed', level: 'error', object: `instance/${name}`, message: `directory entry for ${name}: ${(err as Error).message}` });
    }
  }
  for (const h of hosts) {
    if (h.instance === undefined || names.has(h.instance)) continue;
    try {
      await deps.directory.removeHost(h.fqdn);
      out.dropped.push(h.fqdn);
    } catch (err) {
      deps.bus?.emit({ kind: 'instance.directory.failed', level: 'error', object: `instance/${h.instance}`, message: `dropping ${h.fqdn}: ${(err as Error).message}` });
    }
  }
  return out;
}
