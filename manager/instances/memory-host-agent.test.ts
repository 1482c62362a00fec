import { hostAgentConformance, sha } from '../../test/conformance/host-agent.case.ts';
import { MemoryHostAgent } from './memory-host-agent.ts';

hostAgentConformance('MemoryHostAgent', async () => ({
  agent: new MemoryHostAgent('mem1'),
  layer: { role: 'substrate', sha256: sha('substrate'), size: 9, url: 'http://127.0.0.1/substrate' },
  kernel: '/boot/vmlinuz',
  initrd: '/boot/initrd',
}));
