/**
 * One-time join tokens. The manager keeps only a SHA-256 of each secret; a
 * token is consumed at first use (marked before the certificate is issued, so
 * two racing joins cannot both succeed) and refused after its expiry.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { StormError, unauthorized } from '../../lib/errors.ts';
import { formatToken, parseToken } from '../../stormd/api/join.ts';
import type { Collection, Store } from '../store/store.ts';

export interface TokenRecord {
  id: string;
  host: string;
  secretSha256: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export class JoinTokens {
  readonly #c: Collection<TokenRecord>;
  readonly #inFlight = new Set<string>();
  readonly #now: () => Date;

  constructor(store: Store, now: () => Date = () => new Date()) {
    this.#c = store.collection<TokenRecord>('hosts.tokens');
    this.#now = now;
  }

  async create(host: string, ttlSeconds: number, pin: string): Promise<{ token: string; expiresAt: string }> {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = this.#now();
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000).toISOString();
    await this.#c.put(id, { id, host, secretSha256: sha(secret), createdAt: now.toISOString(), expiresAt });
    return { token: formatToken({ id, secret, pin }), expiresAt };
  }

  /** Check a token without spending it (so unauthenticated callers cost no further work). */
  async check(token: string): Promise<TokenRecord> {
    return this.#validate(token, false);
  }

  /** Check and burn a token; returns the host it enrols. Every refusal is `unauthorized` with the reason. */
  consume(token: string): Promise<TokenRecord> {
    return this.#validate(token, true);
  }

  async #validate(token: string, burn: boolean): Promise<TokenRecord> {
    let t;
    try {
      t = parseToken(token);
    } catch (e) {
      throw unauthorized((e as StormError).message, { hint: (e as StormError).hint ?? '' });
    }
    if (this.#inFlight.has(t.id)) throw unauthorized('join token already used', { hint: 'each token enrols once: run `storm host add` again for a new one' });
    if (burn) this.#inFlight.add(t.id);
    try {
      const rec = await this.#c.get(t.id);
      const a = Buffer.from(sha(t.secret), 'hex');
      if (!rec || !timingSafeEqual(a, Buffer.from(rec.secretSha256, 'hex'))) throw unauthorized('unknown join token', { hint: 'copy the token printed by `storm host add` on this manager' });
      if (rec.usedAt) throw unauthorized(`join token already used (at ${rec.usedAt})`, { hint: `each token enrols once: \`storm host remove ${rec.host}\` and \`storm host add\` again for a new one` });
      if (new Date(rec.expiresAt) <= this.#now()) throw unauthorized(`join token expired at ${rec.expiresAt}`, { hint: `\`storm host remove ${rec.host}\` and \`storm host add\` again for a new token` });
      if (!burn) return rec;
      const used = { ...rec, usedAt: this.#now().toISOString() };
      await this.#c.put(t.id, used);
      return used;
    } finally {
      if (burn) this.#inFlight.delete(t.id);
    }
  }

  async removeFor(host: string): Promise<void> {
    for (const { id, value } of await this.#c.list()) if (value.host === host) await this.#c.del(id);
  }
}
