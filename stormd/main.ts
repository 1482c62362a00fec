/**
 * A running stormd: loads its enrolment, registers its own methods (host.*,
 * tls.*) and any a caller adds, and serves them to the manager over mutual TLS.
 *
 * CRL distribution: stormd answers every call with its CRL number (header
 * x-storm-crl-number, and in host.info); the manager pushes a newer CRL with
 * tls.crl.update whenever stormd's lags. stormd accepts only a CRL signed by
 * its CA and never an older one, persists it, and closes live connections of
 * peers it revokes.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { invalid, unauthorized } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { newKeyPairAsync, makeCsr } from '../lib/tls/keys.ts';
import { certFacts } from '../lib/tls/x509.ts';
import { METHODS, type CrlUpdateResult, type CsrResult, type HostInfo } from './api/methods.ts';
import { hostInfo } from './host-info.ts';
import { MethodTable, reqString, type StormdMethod } from './server/methods.ts';
import { RpcServer, type FileRoute } from './server/server.ts';
import { installRenewed, loadState, readPendingKey, saveCrl, savePendingKey } from './state.ts';

export interface StormdOptions {
  state: string;
  host: string;
  port: number;
  libvirtUri: string;
  path: string;
  log: Logger;
  /** Methods from other modules (layers, domains), registered beside ours. */
  methods?: readonly StormdMethod<any, any>[];
  /** A GET route beside the RPC path (the instance-layer export), with the roles it admits. */
  files?: FileRoute;
}

export interface Stormd {
  readonly name: string;
  readonly server: RpcServer;
  readonly methods: MethodTable;
  /** Our current key, certificate and CA (after a renewal, the new ones): a client identity towards peers. */
  tls(): { key: string; cert: string; ca: string };
  stop(): Promise<void>;
}

export async function startStormd(o: StormdOptions): Promise<Stormd> {
  const { id, tls } = loadState(o.state);
  let cert = tls.cert;
  let key = tls.key;
  const facts = certFacts(tls.cert);
  if (facts.notAfter < new Date()) o.log.warn('our certificate has expired; the manager will refuse us until we enrol again', { notAfter: facts.notAfter.toISOString() });
  const methods = new MethodTable();
  let server: RpcServer | undefined;
  const srv = () => server as RpcServer;
  methods.addAll(builtinMethods());
  if (o.methods) methods.addAll(o.methods);
  // The manager is the one caller, in bursts (a provisioning, a reconcile pass): a socket kept
  // a minute spares each burst a mutual-TLS handshake (~6 ms, far more on a loaded host).
  server = await RpcServer.start({ host: o.host, port: o.port, tls, methods, log: o.log, allow: ['manager'], keepAliveMs: 60_000, ...(o.files ? { files: o.files } : {}) });
  o.log.info('stormd ready', { name: id.name, listen: `${o.host}:${srv().address().port}`, crl: srv().crlNumber });
  return {
    name: id.name,
    server: srv(),
    methods,
    tls: () => ({ key, cert, ca: tls.ca }),
    stop: () => srv().close(),
  };

  function builtinMethods(): StormdMethod<any, any>[] {
    return [
      {
        name: METHODS.hostInfo,
        summary: 'CPU, memory, disk, libvirt and KVM facts and health',
        handler: (): Promise<HostInfo> => {
          const f = certFacts(cert);
          return hostInfo({ name: id.name, state: o.state, libvirtUri: o.libvirtUri, path: o.path, crlNumber: () => srv().crlNumber, cert: () => f });
        },
      },
      {
        name: METHODS.crlUpdate,
        summary: 'install a newer CRL signed by our CA',
        handler: async (p: Record<string, unknown>): Promise<CrlUpdateResult> => {
          const r = srv().updateCrl(reqString(p, 'crl', METHODS.crlUpdate, 4 << 20));
          saveCrl(o.state, p.crl as string);
          return r;
        },
      },
      {
        name: METHODS.tlsCsr,
        summary: 'renewal: make a new key and return its CSR',
        handler: async (): Promise<CsrResult> => {
          const keys = await newKeyPairAsync();
          savePendingKey(o.state, keys.privateKeyPem);
          return { csr: makeCsr(keys, id.name) };
        },
      },
      {
        name: METHODS.tlsInstall,
        summary: 'renewal: install the certificate for the pending key',
        handler: async (p: Record<string, unknown>): Promise<{ notAfter: string }> => {
          const pem = reqString(p, 'cert', METHODS.tlsInstall, 64 << 10);
          const pending = readPendingKey(o.state);
          if (!pending) throw invalid('no renewal in progress (call tls.csr first)');
          let x: X509Certificate;
          try {
            x = new X509Certificate(pem);
          } catch {
            throw invalid('tls.install: not a PEM certificate');
          }
          const ca = new X509Certificate(tls.ca);
          if (!x.checkIssued(ca) || !x.verify(ca.publicKey)) throw unauthorized('tls.install: the certificate is not issued by our CA');
          const f = certFacts(x);
          if (f.role !== 'stormd' || f.commonName !== id.name) throw invalid(`tls.install: expected a stormd certificate for ${id.name}, got ${f.role ?? 'none'} for ${f.commonName}`);
          if (!x.checkPrivateKey(createPrivateKey(pending))) throw invalid('tls.install: the certificate is not for the pending key');
          installRenewed(o.state, pending, pem);
          cert = pem;
          key = pending;
          srv().updateCert(pending, pem);
          o.log.info('installed a renewed certificate', { serial: f.serial, notAfter: f.notAfter.toISOString() });
          return { notAfter: f.notAfter.toISOString() };
        },
      },
      {
        name: METHODS.methodsList,
        summary: 'the methods this stormd serves',
        handler: async () => methods.names(),
      },
    ];
  }
}
