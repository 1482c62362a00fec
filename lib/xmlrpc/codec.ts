/**
 * XML-RPC encoding through the `xmlrpc` package's own serializer and SAX
 * deserializer, fed from bodies we have already read within a size bound
 * (the package reads sockets without any limit). Never throws: a malformed
 * document is a rejected promise with an `invalid` error.
 */
import { createRequire } from 'node:module';
import { invalid } from '../errors.ts';

interface DeserializerInstance {
  deserializeMethodCall(s: NodeJS.ReadableStream, cb: (err: Error | null | undefined, method?: string, params?: unknown[]) => void): void;
  deserializeMethodResponse(s: NodeJS.ReadableStream, cb: (err: (Error & { faultCode?: unknown; faultString?: unknown }) | null | undefined, value?: unknown) => void): void;
}
const require = createRequire(import.meta.url);
const Deserializer = require('xmlrpc/lib/deserializer') as new (encoding?: string) => DeserializerInstance;
const Serializer = require('xmlrpc/lib/serializer') as {
  serializeMethodCall(method: string, params: unknown[]): string;
  serializeMethodResponse(value: unknown): string;
  serializeFault(fault: unknown): string;
};

/**
 * What the deserializer needs of a stream (setEncoding, on, pipe), fed at once: the body is
 * already in memory, and a real stream costs a few event-loop turns per call.
 */
function streamOf(body: Buffer): NodeJS.ReadableStream {
  const s = {
    setEncoding: () => s,
    on: () => s,
    pipe: (dest: NodeJS.WritableStream) => {
      dest.write(body.toString('utf8'));
      dest.end();
      return dest;
    },
  };
  return s as unknown as NodeJS.ReadableStream;
}

export function encodeCall(method: string, params: unknown[]): string {
  return Serializer.serializeMethodCall(method, params);
}

/** Results cross as JSON-shaped data: drop undefined fields, turn Dates into ISO strings. */
export function encodeResponse(value: unknown): string {
  return Serializer.serializeMethodResponse(value === undefined ? null : JSON.parse(JSON.stringify(value)));
}

export function encodeFault(faultCode: number, faultString: string): string {
  return Serializer.serializeFault({ faultCode, faultString });
}

/** XML-RPC has no use for a DTD: refusing one rules out entity expansion and external entities outright. */
const DTD = /<!(DOCTYPE|ENTITY)/i;

export function decodeCall(body: Buffer): Promise<{ method: string; params: unknown[] }> {
  if (DTD.test(body.toString('latin1'))) return Promise.reject(invalid('malformed XML-RPC call: a DOCTYPE or ENTITY declaration is not allowed'));
  return new Promise((resolve, reject) => {
    let done = false;
    try {
      new Deserializer().deserializeMethodCall(streamOf(body), (err, method, params) => {
        if (done) return;
        done = true;
        if (err || typeof method !== 'string') reject(invalid(`malformed XML-RPC call: ${err?.message ?? 'no method name'}`));
        else resolve({ method, params: Array.isArray(params) ? params : [] });
      });
    } catch (e) {
      if (!done) (done = true), reject(invalid(`malformed XML-RPC call: ${(e as Error).message}`));
    }
  });
}

export type DecodedResponse = { ok: true; value: unknown } | { ok: false; fault: { faultCode?: unknown; faultString?: unknown } };

export function decodeResponse(body: Buffer): Promise<DecodedResponse> {
  if (DTD.test(body.toString('latin1'))) return Promise.reject(invalid('malformed XML-RPC response: a DOCTYPE or ENTITY declaration is not allowed'));
  return new Promise((resolve, reject) => {
    let done = false;
    try {
      new Deserializer().deserializeMethodResponse(streamOf(body), (err, value) => {
        if (done) return;
        done = true;
        if (err && err.faultCode !== undefined) resolve({ ok: false, fault: { faultCode: err.faultCode, faultString: err.faultString } });
        else if (err) reject(invalid(`malformed XML-RPC response: ${err.message}`));
        else resolve({ ok: true, value });
      });
    } catch (e) {
      if (!done) (done = true), reject(invalid(`malformed XML-RPC response: ${(e as Error).message}`));
    }
  });
}
