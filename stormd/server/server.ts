/** stormd's mutual-TLS XML-RPC server: the shared one, admitting only role `manager` (see startStormd). */
export { RpcServer, type TlsFiles, type RpcServerOptions, type FileRoute } from '../../lib/xmlrpc/server.ts';
