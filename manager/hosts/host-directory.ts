/**
 * The instance service's view of the hypervisors: enrolled hosts with their
 * polled state, and a HostAgent per host over its stormd client.
 */
import type { HostDirectory } from '../instances/service.ts';
import type { Hosts } from './hosts.ts';
import { StormdHostAgent } from './stormd-host-agent.ts';

export function hostDirectory(hosts: Hosts): HostDirectory {
  const agents = new Map<string, StormdHostAgent>();
  return {
    list: async () => (await hosts.list()).map((h) => ({ name: h.name, online: h.state === 'online' })),
    agent: (name) => {
      let a = agents.get(name);
      if (!a) {
        // The client is looked up per call: a removed host fails with not_found, a re-enrolled one gets its new client.
        a = new StormdHostAgent(name, () => hosts.client(name));
        agents.set(name, a);
      }
      return a;
    },
  };
}
