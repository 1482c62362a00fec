/** How errors ride XML-RPC faults (shared with every XML-RPC endpoint of ours). */
export { FAULT_CODES, toFault, fromFault, type Fault } from '../../lib/xmlrpc/faults.ts';
