import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseHostPort } from '../../../lib/config.ts';
import { conflict, invalid } from '../../../lib/errors.ts';
import type { PublishResult } from '../../../manager/channels/publish.ts';
import type { ChannelView } from '../../../manager/services/channels.ts';
import { bytes, channelRows } from '../../render/channels.ts';
import type { CommandDef } from '../command.ts';

/** A key given as a file path (read here) or as PEM text. */
function readKey(arg: string, what: string): string {
  if (arg.startsWith('-----BEGIN')) return arg;
  try {
    return readFileSync(arg, 'utf8');
  } catch (e) {
    throw invalid(`${what} ${arg}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export const channelCommands: CommandDef[] = [
  {
    noun: 'channel',
    verb: 'add',
    summary: 'subscribe to a channel feed (URL of feed.xml); --trust KEY rejects feeds not signed by that key',
    args: ['URL'],
    options: {
      name: { type: 'string', doc: 'a short name for the channel (default: from the host)' },
      trust: { type: 'string', doc: "the publisher's public key (.pub file or PEM)" },
    },
    run: async (ctx) => {
      const params: Record<string, unknown> = { url: ctx.args[0] };
      if (typeof ctx.opts.name === 'string') params.name = ctx.opts.name;
      if (typeof ctx.opts.trust === 'string') params.trust = readKey(ctx.opts.trust, '--trust');
      const data = await (await ctx.api()).call<ChannelView>('channel.add', params);
      return { data, rows: channelRows };
    },
  },
  {
    noun: 'channel',
    verb: 'list',
    summary: 'subscribed channels: status, appliances, trust, last refresh (-o wide shows the last error)',
    run: async (ctx) => ({ data: await (await ctx.api()).call<ChannelView[]>('channel.list'), rows: channelRows }),
  },
  {
    noun: 'channel',
    verb: 'refresh',
    summary: 'refresh one channel now (or all); a failing channel keeps its last good catalog',
    args: ['[NAME]'],
    run: async (ctx) => {
      const data = await (await ctx.api()).call<ChannelView[]>('channel.refresh', ctx.args[0] ? { name: ctx.args[0] } : {});
      for (const c of data) if (c.lastError) ctx.progress(`warning: channel ${c.name}: ${c.lastError.message}`);
      return { data, rows: channelRows };
    },
  },
  {
    noun: 'channel',
    verb: 'remove',
    summary: 'unsubscribe from a channel (its appliances leave the catalog; storm image gc frees their layers); refused while it is the only source of instances\' appliances, unless --force',
    args: ['NAME'],
    options: { force: { type: 'boolean', doc: 'unsubscribe even then (those instances keep running, but cannot be migrated, provisioned again or updated)' } },
    dangerous: true,
    run: async (ctx) => {
      const data = await (await ctx.api()).call<{ name: string; removed: number }>('channel.remove', { name: ctx.args[0], ...(ctx.opts.force ? { force: true } : {}) });
      return { data, text: `removed channel ${data.name} (${data.removed} appliance versions)\n` };
    },
  },
  {
    noun: 'channel',
    verb: 'keygen',
    summary: 'make a publisher key pair: OUT.key (private, 0600) and OUT.pub (give it to subscribers)',
    args: ['OUT'],
    hostOnly: true,
    run: async (ctx) => {
      const out = resolve(ctx.args[0]!);
      for (const f of [`${out}.key`, `${out}.pub`]) if (existsSync(f)) throw conflict(`${f} already exists`, { hint: 'pick another name; an existing key is never overwritten' });
      // Signing, publishing and serving load only for these commands (node-forge and the XML code cost every other CLI call ~0.3 s).
      const { fingerprint, generatePublisherKey } = await import('../../../manager/channels/sign.ts');
      const k = generatePublisherKey();
      writeFileSync(`${out}.key`, k.privatePem, { mode: 0o600, flag: 'wx' });
      writeFileSync(`${out}.pub`, k.publicPem, { mode: 0o644, flag: 'wx' });
      const data = { private: `${out}.key`, public: `${out}.pub`, fingerprint: fingerprint(k.publicPem) };
      return { data, text: `wrote ${data.private} and ${data.public}\nfingerprint ${data.fingerprint}\n` };
    },
  },
  {
    noun: 'channel',
    verb: 'publish',
    summary: 'generate feed.xml and every appliance XML from DIR (layers + appliances/*.json), signed with --key',
    args: ['DIR'],
    hostOnly: true,
    options: {
      'base-url': { type: 'string', doc: 'the URL DIR will be served at (for the feed links)' },
      key: { type: 'string', doc: 'publisher private key (from storm channel keygen) to sign the feed' },
    },
    run: async (ctx) => {
      if (typeof ctx.opts['base-url'] !== 'string') throw invalid('storm channel publish needs --base-url URL', { hint: 'the URL the folder will be served at, e.g. http://channel.example/stable/' });
      const opts: { baseUrl: string; privateKeyPem?: string } = { baseUrl: ctx.opts['base-url'] };
      if (typeof ctx.opts.key === 'string') opts.privateKeyPem = readKey(ctx.opts.key, '--key');
      const { publishChannel } = await import('../../../manager/channels/publish.ts');
      const data: PublishResult = await publishChannel(resolve(ctx.args[0]!), opts);
      const lines = [`published ${data.appliances.length} appliance versions to ${data.feed}${data.signed ? ' (signed)' : ' (unsigned)'}`];
      for (const a of data.appliances) lines.push(`  ${a.id}@${a.version}  ${a.file}`);
      for (const f of data.files) lines.push(`  ${f.sha256.slice(0, 16)}  ${bytes(f.size).padStart(10)}  ${f.path}`);
      return { data, text: lines.join('\n') + '\n' };
    },
  },
  {
    noun: 'channel',
    verb: 'serve',
    summary: 'serve DIR over HTTP (HEAD, Range, ETag) until interrupted',
    args: ['DIR'],
    hostOnly: true,
    options: { listen: { type: 'string', doc: 'HOST:PORT to listen on (default 127.0.0.1:8080)' } },
    run: async (ctx) => {
      const listen = typeof ctx.opts.listen === 'string' ? ctx.opts.listen : '127.0.0.1:8080';
      const hp = parseHostPort(listen);
      if (!hp) throw invalid(`--listen ${listen}: expected HOST:PORT`);
      const dir = resolve(ctx.args[0]!);
      if (!existsSync(dir)) throw invalid(`${dir}: no such folder`);
      const { ChannelServer } = await import('../../../manager/channels/server.ts');
      const server = new ChannelServer({ root: dir });
      const a = await server.listen(hp.host, hp.port).catch((e: NodeJS.ErrnoException) => {
        throw invalid(`cannot listen on ${listen}: ${e.code ?? e.message}`, { hint: 'pick a free port with --listen' });
      });
      ctx.io.stdout(`storm channel server ready: ${a.url} serving ${dir}\n`);
      await new Promise<void>((done) => {
        const stop = () => void server.close().then(done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    },
  },
];
