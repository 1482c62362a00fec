/**
 * The embedded default's example channel: fixtures/build/channel/ served
 * in-process on loopback, the manager subscribed to it as "example"
 * (trusting the fixture publisher key), and its appliances pulled in the
 * background so the first provisioning does not wait for a download.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/logger.ts';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { ChannelServer } from '../manager/channels/server.ts';
import type { CatalogEntry } from '../manager/channels/catalog.ts';
import type { Manager } from '../manager/main.ts';
import type { ChannelView } from '../manager/services/channels.ts';

export const EXAMPLE_CHANNEL = 'example';
export const EXAMPLE_DIR = join(PACKAGE_ROOT, 'fixtures', 'build', 'channel');
export const EXAMPLE_KEY = join(PACKAGE_ROOT, 'fixtures', 'build', 'publisher.pub');

/** Listen on the port used last time (so the subscription's URL stays valid), else any free one. */
async function listen(server: ChannelServer, portFile: string): Promise<string> {
  let last = 0;
  try {
    last = Number(JSON.parse(readFileSync(portFile, 'utf8')).port) || 0;
  } catch {
    /* first run */
  }
  const a = await server.listen('127.0.0.1', last).catch(() => server.listen('127.0.0.1', 0));
  writeFileSync(portFile, JSON.stringify({ port: a.port }) + '\n');
  return a.url;
}

export async function startExampleChannel(m: Manager, log: Logger): Promise<{ url: string; stop: () => Promise<void> }> {
  if (!existsSync(join(EXAMPLE_DIR, 'feed.xml'))) throw new Error(`${EXAMPLE_DIR}/feed.xml is missing: run sh scripts/build-fixtures`);
  const server = new ChannelServer({ root: EXAMPLE_DIR });
  const base = await listen(server, join(m.config.state, 'example-channel.json'));
  const url = `${base}feed.xml`;
  const stop = () => server.close();
  try {
    const api = m.api({ actor: 'storm-up', readOnly: false });
    const trust = readFileSync(EXAMPLE_KEY, 'utf8');
    const sub = (await api.call<ChannelView[]>('channel.list')).find((c) => c.name === EXAMPLE_CHANNEL);
    // A subscription at another port (it was taken) is replaced; catalog entries are rebuilt from the feed.
    if (sub && sub.url !== url) await api.call('channel.remove', { name: EXAMPLE_CHANNEL });
    if (!sub || sub.url !== url) await api.call('channel.add', { url, name: EXAMPLE_CHANNEL, trust });
    else await api.call('channel.refresh', { name: EXAMPLE_CHANNEL });
    const apps = await api.call<CatalogEntry[]>('appliance.list', { channel: EXAMPLE_CHANNEL });
    for (const a of apps) await api.call('appliance.pull', { ref: `${a.id}@${a.version}`, channel: EXAMPLE_CHANNEL, wait: false });
    log.info('example channel serving', { url, appliances: apps.length });
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, stop };
}
