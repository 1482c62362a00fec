// LDAP equality searches per second with concurrent clients: our server vs
// OpenLDAP slapd (mdb, eq index on uid) serving the same 1,000 users in the
// same run. The load generator speaks raw BER over N connections, each bound
// as a user and keeping one search in flight, for a bounded time.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, which } from '../lib/exec.ts';
import { parseFilter, writeFilter } from '../manager/netsvc/ldap/filter.ts';
import { bindRequest, searchRequest, splitMessages } from '../manager/netsvc/ldap/protocol.ts';
import { result, median, type BenchResult } from './result.ts';
import { BENCH_BASE, BENCH_PASSWORD, BENCH_USERS, benchEntries, toLdif } from './ldap/entries.ts';

const WARMUP_MS = 1000;
const MEASURE_MS = 4000;
const ROUNDS = 3;

interface Target {
  port: number;
  bindDn: string;
  password: string;
}

/** Read the op tag and result code of a response frame without a full decode. */
function opOf(frame: Buffer): { tag: number; code: number } {
  let p = 1;
  const l = frame[p]!;
  p += l & 0x80 ? 1 + (l & 0x7f) : 1;
  // messageID INTEGER
  p += 2 + frame[p + 1]!;
  const tag = frame[p]!;
  let q = p + 1;
  const ol = frame[q]!;
  q += ol & 0x80 ? 1 + (ol & 0x7f) : 1;
  const code = tag === 0x64 ? 0 : frame[q + 2]!;
  return { tag, code };
}

/** One client connection: bind, then search in a loop until told to stop. */
async function clientLoop(t: Target, filters: Buffer[], state: { counting: boolean; stop: boolean; done: number; errors: number }, seed: number): Promise<void> {
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = connect(t.port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  sock.setNoDelay(true);
  let buf: Buffer = Buffer.alloc(0);
  let wake: ((f: Buffer) => void) | undefined;
  const frames: Buffer[] = [];
  sock.on('data', (d: Buffer) => {
    const split = splitMessages(buf.length ? Buffer.concat([buf, d]) : d);
    frames.push(...split.frames);
    buf = split.rest;
    while (wake && frames.length) {
      const w = wake;
      wake = undefined;
      w(frames.shift()!);
    }
  });
  const next = () => (frames.length ? Promise.resolve(frames.shift()!) : new Promise<Buffer>((r) => (wake = r)));
  let id = 1;
  sock.write(bindRequest(id++, t.bindDn, t.password));
  const b = opOf(await next());
  if (b.code !== 0) throw new Error(`bench bind failed with LDAP code ${b.code}`);
  let x = seed;
  while (!state.stop) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    sock.write(searchRequest(id++, BENCH_BASE, 2, filters[x % filters.length]!));
    for (;;) {
      const r = opOf(await next());
      if (r.tag === 0x65) {
        if (r.code !== 0) state.errors++;
        else if (state.counting) state.done++;
        break;
      }
    }
  }
  sock.destroy();
}

/** Searches per second over MEASURE_MS with `conns` connections. */
async function measure(t: Target, conns: number): Promise<number> {
  const filters = Array.from({ length: BENCH_USERS }, (_, i) => writeFilter(parseFilter(`(uid=user${i})`)));
  const state = { counting: false, stop: false, done: 0, errors: 0 };
  const loops = Array.from({ length: conns }, (_, i) => clientLoop(t, filters, state, i + 1));
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  state.counting = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, MEASURE_MS));
  state.counting = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const done = state.done;
  state.stop = true;
  await Promise.all(loops);
  if (state.errors) throw new Error(`${state.errors} searches failed`);
  return done / secs;
}

function waitLine(child: ChildProcess, re: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${out}`)), ms);
    const on = (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (c) => reject(new Error(`exited (${c}) before ${re}: ${out}`)));
  });
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitConnect(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function startSlapd(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const slapd = await which('slapd', process.env.PATH ?? '');
  const slapadd = await which('slapadd', process.env.PATH ?? '');
  if (!slapd || !slapadd) throw new Error('slapd not installed (apt-get install slapd)');
  mkdirSync(join(dir, 'db'));
  const conf = join(dir, 'slapd.conf');
  writeFileSync(
    conf,
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/nis.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      `pidfile ${dir}/slapd.pid`,
      `argsfile ${dir}/slapd.args`,
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'database mdb',
      'maxsize 104857600',
      `suffix "${BENCH_BASE}"`,
      `rootdn "cn=admin,${BENCH_BASE}"`,
      `rootpw ${BENCH_PASSWORD}`,
      `directory ${dir}/db`,
      'index objectClass eq',
      'index uid eq',
      'access to * by * read',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'users.ldif'), toLdif(benchEntries()));
  const add = await run(slapadd, ['-q', '-f', conf, '-l', join(dir, 'users.ldif')], { timeoutMs: 60_000 });
  if (add.code !== 0) throw new Error(`slapadd failed: ${add.stderr}`);
  const port = await freePort();
  const child = spawn(slapd, ['-f', conf, '-h', `ldap://127.0.0.1:${port}/`, '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await waitConnect(port, 15_000);
  return { child, port };
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const k = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => (clearTimeout(k), resolve()));
    child.kill('SIGTERM');
  });
}

export default async function ldapBench(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'storm-ldap-bench-'));
  let ours: ChildProcess | undefined;
  let slapd: ChildProcess | undefined;
  try {
    const serve = fileURLToPath(new URL('./ldap/serve.ts', import.meta.url));
    ours = spawn(process.execPath, ['--import', 'tsx', serve], { stdio: ['ignore', 'pipe', 'pipe'] });
    const oursPort = Number((await waitLine(ours, /ready (\d+)/, 30_000)).split(' ')[1]);
    const s = await startSlapd(dir);
    slapd = s.child;
    const oursT: Target = { port: oursPort, bindDn: `uid=user0,ou=people,${BENCH_BASE}`, password: BENCH_PASSWORD };
    const slapdT: Target = { port: s.port, bindDn: `cn=admin,${BENCH_BASE}`, password: BENCH_PASSWORD };
    const out: BenchResult[] = [];
    for (const conns of [16, 1]) {
      const a: number[] = [];
      const b: number[] = [];
      // Alternate so that a noisy neighbour hurts both sides alike.
      for (let i = 0; i < ROUNDS; i++) {
        a.push(await measure(oursT, conns));
        b.push(await measure(slapdT, conns));
      }
      out.push(
        result({
          name: `ldap equality searches/s, ${conns} connection${conns > 1 ? 's' : ''} (1,000 users)`,
          value: median(a),
          unit: 'searches/s',
          peer: 'slapd (mdb, eq index on uid)',
          peerValue: median(b),
          bar: '>= 0.5',
          pass: (ratio) => ratio !== null && ratio >= 0.5,
        }),
      );
    }
    return out;
  } finally {
    await Promise.all([stop(ours), stop(slapd)]);
    rmSync(dir, { recursive: true, force: true });
  }
}
