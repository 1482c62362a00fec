import type { IncomingMessage } from 'node:http';
import { StormError } from './errors.ts';

/**
 * Read a request or response body, refusing more than `limit` bytes (by
 * Content-Length up front, or while streaming). Rejects with `invalid` and
 * `details.status = 413` so a server can answer before closing.
 */
export function readBody(msg: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(msg.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      msg.resume();
      return reject(new StormError('invalid', `body of ${declared} bytes exceeds the limit of ${limit}`, { details: { status: 413 } }));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    msg.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new StormError('invalid', `body exceeds the limit of ${limit} bytes`, { details: { status: 413 } }));
        return;
      }
      chunks.push(c);
    });
    msg.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    msg.on('error', (e) => {
      if (!over) (over = true), reject(new StormError('unreachable', `connection failed while reading: ${e.message}`));
    });
    msg.on('aborted', () => {
      if (!over) (over = true), reject(new StormError('unreachable', 'peer closed the connection mid-body'));
    });
  });
}
