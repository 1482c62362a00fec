/**
 * Channels: download-and-verify throughput of a 1 GiB layer against `curl -o`
 * of the same file from the same server in the same run, and bytes stored for
 * a channel against the sum of its unique files.
 *
 * Both return with the bytes in the page cache: curl leaves them dirty, the
 * store enters a verified layer at once and flushes it in the background
 * (a flushed marker makes a crash before that flush re-verify it, see
 * manager/images/store.ts). The flush is waited for between runs, untimed,
 * like the `sync` after curl. `curl -o` followed by `sync -d` is printed too.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../lib/logger.ts';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { publishChannel, hashFile } from '../manager/channels/publish.ts';
import { ChannelServer } from '../manager/channels/server.ts';
import { managerConfig } from '../manager/config/config.ts';
import { Downloader } from '../manager/images/download.ts';
import { ImageStore } from '../manager/images/store.ts';
import { startManager } from '../manager/main.ts';
import { makeTestChannel, sha256 } from '../test/helpers/channel-fixture.ts';
import { freePort } from '../test/helpers/ports.ts';
import { median, result, type BenchResult } from './result.ts';

const GIB = 1 << 30;
const RUNS = 5;

/** 1 GiB of random bytes, written once. */
function bigFile(path: string): void {
  const block = Buffer.allocUnsafe(64 << 20);
  const fd = openSync(path, 'w');
  for (let off = 0; off < GIB; off += block.length) {
    randomFillSync(block);
    writeSync(fd, block);
  }
  closeSync(fd);
}

async function throughput(work: string): Promise<BenchResult> {
  const chan = join(work, 'chan');
  mkdirSync(join(chan, 'layers'), { recursive: true });
  const big = join(chan, 'layers', 'big.img');
  bigFile(big);
  const { sha256: digest, size } = await hashFile(big);
  const port = await freePort();
  // The server runs in its own process, as a real channel server would.
  const server = spawn(process.execPath, [join(PACKAGE_ROOT, 'bin', 'storm.js'), 'channel', 'serve', chan, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', (d: Buffer) => /ready/.test(d.toString()) && resolve());
      server.once('exit', (c) => reject(new Error(`channel server exited (${c})`)));
    });
    const url = `http://127.0.0.1:${port}/layers/big.img`;
    const ours: number[] = [];
    const curls: number[] = [];
    const durable: number[] = [];
    // Each run starts with no dirty pages (`sync`, untimed) so no one pays for another's writeback; the order rotates.
    const runCurl = (sync: boolean) => {
      const out = join(work, 'curl.bin');
      const t0 = process.hrtime.bigint();
      const c = spawnSync('curl', ['-sS', '-o', out, url]);
      if (c.status !== 0) throw new Error(`curl failed: ${c.stderr}`);
      if (sync && spawnSync('sync', ['-d', out]).status !== 0) throw new Error('sync -d failed');
      (sync ? durable : curls).push(Number(process.hrtime.bigint() - t0) / 1e9);
      rmSync(out);
      spawnSync('sync');
    };
    const runOurs = async (i: number) => {
      const store = new ImageStore(join(work, `store-${i}`));
      const d = new Downloader({ store, reserveBytes: 0 });
      const t0 = process.hrtime.bigint();
      await d.ensure({ sha256: digest, size, urls: [url] });
      ours.push(Number(process.hrtime.bigint() - t0) / 1e9);
      await store.flushed();
      rmSync(store.root, { recursive: true, force: true });
      spawnSync('sync');
    };
    spawnSync('sync');
    for (let i = 0; i < RUNS; i++) {
      const steps = [() => runOurs(i), () => runCurl(true), () => runCurl(false)];
      for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
    }
    const mibs = (s: number) => size / (1 << 20) / s;
    const fmt = (xs: number[]) => xs.map((s) => s.toFixed(2)).join(' ');
    console.log(`  runs (s): ours ${fmt(ours)}; curl -o + fdatasync ${fmt(durable)}; curl -o ${fmt(curls)}; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(`  curl -o + sync -d of the file: ${mibs(median(durable)).toFixed(0)} MiB/s (ours ${(median(durable) / median(ours)).toFixed(2)}× that)`);
    return result({
      name: 'download-and-verify 1 GiB layer, into the store',
      value: mibs(median(ours)),
      unit: 'MiB/s',
      peer: 'curl -o',
      peerValue: mibs(median(curls)),
      bar: 'ratio >= 0.9',
      pass: (ratio) => ratio !== null && ratio >= 0.9,
    });
  } finally {
    server.kill('SIGTERM');
  }
}

async function dedup(work: string): Promise<BenchResult> {
  const root = join(work, 'fixture');
  const ch = makeTestChannel(join(root, 'stable'), { substrateSize: 8 << 20 });
  const srv = new ChannelServer({ root });
  const { url } = await srv.listen('127.0.0.1', 0);
  await publishChannel(join(root, 'stable'), { baseUrl: url + 'stable/' });
  const state = join(work, 'state');
  const m = await startManager({ config: managerConfig({}, { state, 'ssh-listen': `127.0.0.1:${await freePort()}` }), log: silentLogger, path: '' });
  try {
    const api = m.api({ actor: 'bench', readOnly: false });
    await api.call('channel.add', { url: url + 'stable/feed.xml', name: 'fixture' });
    for (const a of ['web', 'mail', 'legacy']) await api.call('appliance.pull', { ref: a });
    const stored = await m.images.store.usage();
    const unique = [...new Map(Object.values(ch.files).map((b) => [sha256(b), b.length])).values()].reduce((a, b) => a + b, 0);
    return result({
      name: 'bytes stored for the fixture channel',
      value: stored,
      unit: 'bytes',
      peer: 'sum of unique files',
      peerValue: unique,
      bar: 'ratio = 1.00',
      pass: (ratio) => ratio === 1,
    });
  } finally {
    await m.stop();
    await srv.close();
  }
}

export default async function (): Promise<BenchResult[]> {
  const work = mkdtempSync(join(tmpdir(), 'storm-bench-channels-'));
  try {
    return [await throughput(work), await dedup(work)];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
