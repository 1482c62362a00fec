/**
 * The host's CPU usage from /proc/stat: busy time over the time since the
 * previous reading, as a percentage of all CPUs (what host.info reports as
 * `cpuPercent`, and what the console's sparkline draws).
 */
import { readFile } from 'node:fs/promises';

/** Aggregate jiffies of all CPUs. */
export interface CpuTimes {
  busy: number;
  total: number;
}

/** The first line of /proc/stat is all we read; a longer one is not /proc/stat. */
const MAX_LINE = 512;

/**
 * Parse the aggregate `cpu` line of /proc/stat
 * (`cpu user nice system idle iowait irq softirq steal guest guest_nice`).
 * Idle is idle + iowait; guest time is already counted in user, so only the
 * first eight fields add up to the total. Undefined for anything else.
 */
export function parseProcStat(text: string): CpuTimes | undefined {
  const nl = text.indexOf('\n');
  const line = nl < 0 ? text : text.slice(0, nl);
  if (line.length > MAX_LINE) return undefined;
  const m = /^cpu +(\d+(?: +\d+){3,9}) *$/.exec(line);
  if (!m) return undefined;
  const f = m[1]!.split(/ +/).map(Number).slice(0, 8);
  if (!f.every(Number.isSafeInteger)) return undefined;
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3]! + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** Busy share between two readings, 0..100; undefined when no time passed (or the counters went back). */
export function usagePercent(a: CpuTimes, b: CpuTimes): number | undefined {
  const dt = b.total - a.total;
  const db = b.busy - a.busy;
  if (dt <= 0 || db < 0) return undefined;
  return Math.round(Math.min(100, (db / dt) * 100) * 10) / 10;
}

/**
 * Usage since the previous call. The first call (or one right after the
 * previous, when too few ticks passed) samples twice `firstSampleMs` apart.
 */
export class CpuSampler {
  #last: CpuTimes | undefined;
  readonly #read: () => Promise<string>;
  readonly #firstSampleMs: number;

  constructor(o: { read?: () => Promise<string>; firstSampleMs?: number } = {}) {
    this.#read = o.read ?? (() => readFile('/proc/stat', 'utf8'));
    this.#firstSampleMs = o.firstSampleMs ?? 200;
  }

  async percent(): Promise<number | undefined> {
    const now = await this.#sample();
    if (!now) return undefined;
    let prev = this.#last;
    // Fewer than ~10 ticks (0.1 s of one CPU) is too short a window to mean anything.
    if (!prev || now.total - prev.total < 10) {
      prev = now;
      await new Promise((r) => setTimeout(r, this.#firstSampleMs));
      const again = await this.#sample();
      if (!again) return undefined;
      this.#last = again;
      return usagePercent(prev, again);
    }
    this.#last = now;
    return usagePercent(prev, now);
  }

  async #sample(): Promise<CpuTimes | undefined> {
    try {
      return parseProcStat(await this.#read());
    } catch {
      return undefined; // no /proc (not Linux): the figure is simply absent
    }
  }
}
