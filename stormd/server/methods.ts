/**
 * stormd's method table: each module registers its methods (host.*, tls.*,
 * and the hypervisor's layer.* and domain.*) as `{name, summary, handler}`
 * and passes them to `startStormd({methods})`. Every method takes one struct.
 */
export { MethodTable, reqString, type Peer, type MethodContext, type RpcMethod as StormdMethod } from '../../lib/xmlrpc/methods.ts';
